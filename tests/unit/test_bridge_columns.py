"""JSON schema -> dlt column hints (`analytics_dlt.hints`) and record checks."""

from __future__ import annotations

from typing import Any

import pytest

from analytics_api.streams import STREAMS
from analytics_api.validate import RecordValidator, SchemaViolation
from analytics_dlt.hints import (
    SEQUENCE_COLUMN,
    SequenceGenerator,
    column_from_property,
    columns_from_json_schema,
    destination_column_name,
    table_hints,
    write_disposition_for,
)


@pytest.mark.parametrize(
    ("prop", "data_type"),
    [
        ({"type": "string"}, "text"),
        ({"type": ["string", "null"]}, "text"),
        ({"type": ["null", "string"]}, "text"),
        ({"type": "integer"}, "bigint"),
        ({"type": ["integer", "null"]}, "bigint"),
        ({"type": "number"}, "double"),
        ({"type": ["number", "null"]}, "double"),
        ({"type": ["integer", "number", "null"]}, "double"),
        ({"type": "boolean"}, "bool"),
        ({"type": ["boolean", "null"]}, "bool"),
        ({"type": "string", "format": "date-time"}, "timestamp"),
        ({"type": ["string", "null"], "format": "date-time"}, "timestamp"),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, "timestamp"),
        ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, "bigint"),
        ({"oneOf": [{"type": "boolean"}, {"type": "null"}]}, "bool"),
        ({"type": "string", "format": "date"}, "date"),
        ({"type": "string", "format": "time"}, "time"),
        ({"type": "string", "format": "email"}, "text"),
        ({"type": ["object", "null"], "additionalProperties": {"type": "string"}}, "json"),
        ({"type": ["object", "null"], "additionalProperties": True}, "json"),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, "json"),
        ({"type": ["array", "null"], "items": {"type": "string"}}, "json"),
        ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}, "json"),
        ({"type": ["string", "integer"]}, "json"),
        ({}, "json"),
        ({"enum": ["a", "b", None]}, "text"),
    ],
)
def test_column_types(prop: dict[str, Any], data_type: str) -> None:
    column = column_from_property("x", prop)
    assert column["data_type"] == data_type
    assert column["nullable"] is True
    assert column["name"] == "x"
    if data_type == "timestamp":
        assert column["timezone"] is True


def test_key_columns_not_null_and_primary_key() -> None:
    schema = {"properties": {"id": {"type": ["string", "null"]}, "n": {"type": "integer"}}}
    columns = columns_from_json_schema(schema, ["id"])
    assert columns["id"] == {
        "name": "id",
        "data_type": "text",
        "nullable": False,
        "primary_key": True,
    }
    assert columns["n"]["nullable"] is True
    assert "primary_key" not in columns["n"]


def test_sequence_column_last_and_dedup_sort_only_with_keys() -> None:
    schema = {"properties": {"id": {"type": "string"}}}
    merged = columns_from_json_schema(schema, ["id"])
    assert list(merged)[-1] == SEQUENCE_COLUMN
    assert merged[SEQUENCE_COLUMN] == {
        "name": SEQUENCE_COLUMN,
        "data_type": "bigint",
        "nullable": False,
        "dedup_sort": "desc",
    }
    appended = columns_from_json_schema(schema, [])
    assert "dedup_sort" not in appended[SEQUENCE_COLUMN]
    assert SEQUENCE_COLUMN not in columns_from_json_schema(schema, ["id"], sequence_column=False)


def test_key_missing_from_properties_still_declared() -> None:
    columns = columns_from_json_schema({"properties": {}}, ["uuid"])
    assert columns["uuid"]["primary_key"] is True
    assert columns["uuid"]["nullable"] is False


def test_write_disposition_and_table_hints() -> None:
    assert write_disposition_for(["id"]) == {"disposition": "merge", "strategy": "delete-insert"}
    assert write_disposition_for([]) == {"disposition": "append"}
    hints = table_hints("apps", {"properties": {"id": {"type": "string"}}}, ["id"])
    assert hints["table_name"] == "apps"
    assert hints["primary_key"] == ["id"]
    assert hints["write_disposition"]["disposition"] == "merge"
    assert table_hints("log", {"properties": {}}, [])["primary_key"] is None


def test_destination_names_are_snake_case() -> None:
    assert destination_column_name("updatedAt") == "updated_at"
    assert destination_column_name("featureFlags") == "feature_flags"
    assert destination_column_name("rateLimit") == "rate_limit"
    assert destination_column_name("app_id") == "app_id"
    assert destination_column_name(SEQUENCE_COLUMN) == SEQUENCE_COLUMN


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_every_tap_schema_maps(stream: Any) -> None:
    """The tap's own schemas: expected types, no fallbacks to json for scalars."""
    columns = columns_from_json_schema(stream.schema, [stream.primary_key])
    expected = {
        "metadata": "json",
        "config": "json",
        "featureFlags": "json",
        "filterTypes": "json",
        "createdAt": "timestamp",
        "updatedAt": "timestamp",
        "version": "bigint",
        "rateLimit": "bigint",
        "disabled": "bool",
        "archived": "bool",
        "deprecated": "bool",
    }
    for name, column in columns.items():
        if name == SEQUENCE_COLUMN:
            continue
        assert column["data_type"] == expected.get(name, "text"), name
        assert column["nullable"] is (name != stream.primary_key)
    assert columns[stream.primary_key]["primary_key"] is True


def test_sequence_generator_increases() -> None:
    gen = SequenceGenerator(start=10)
    assert [gen(), gen()] == [10, 11]
    assert list(gen.take(3)) == [12, 13, 14]
    assert gen.next_value == 15
    a, b = SequenceGenerator(), SequenceGenerator()
    assert b() >= a() > 1_600_000_000 * 10**9


# -- record checks ------------------------------------------------------------------------------

SCHEMA = {
    "properties": {
        "id": {"type": "string"},
        "n": {"type": ["integer", "null"]},
        "x": {"type": ["number", "null"]},
        "ok": {"type": ["boolean", "null"]},
        "ts": {"type": ["string", "null"], "format": "date-time"},
        "meta": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
        "conf": {"type": ["object", "null"], "additionalProperties": True},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "strict": {"type": "integer"},
        "maybe": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
    }
}


@pytest.mark.parametrize(
    "record",
    [
        {"id": "a"},
        {"id": "a", "n": None, "x": None, "ok": None, "ts": None, "meta": None, "tags": None},
        {"id": "a", "n": 2**63 - 1, "x": 1, "ok": False, "ts": "2024-01-01T00:00:00Z"},
        {"id": "a", "x": 1.5, "ts": "2024-01-01T00:00:00.123456789Z"},
        {"id": "a", "ts": "2024-02-29T23:59:59.1+02:00", "maybe": "2024-01-01T00:00:00.5Z"},
        {"id": "a", "meta": {"k": "v"}, "conf": {"a": [1, {"b": None}]}, "tags": ["x", "y"]},
        {"id": "a", "extra": "not in the schema"},
    ],
)
def test_valid_records(record: dict[str, Any]) -> None:
    RecordValidator(SCHEMA, ["id"]).validate(record)


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        ({"n": 1}, "id", "key property 'id' is missing"),
        ({"id": None}, "id", "key property 'id' is null"),
        ({"id": "a", "n": "7"}, "n", "expected integer, got string '7'"),
        ({"id": "a", "n": True}, "n", "expected integer, got boolean"),
        ({"id": "a", "n": 1.0}, "n", "expected integer, got number"),
        ({"id": "a", "n": 2**63}, "n", "does not fit a bigint"),
        ({"id": "a", "x": "1.5"}, "x", "expected number"),
        ({"id": "a", "ok": 1}, "ok", "expected boolean"),
        ({"id": "a", "ts": "yesterday"}, "ts", "RFC 3339"),
        ({"id": "a", "ts": "2024-13-01T00:00:00Z"}, "ts", "invalid date-time"),
        ({"id": "a", "ts": "2024-01-01"}, "ts", "RFC 3339"),
        ({"id": "a", "maybe": "2024-01-01 noon"}, "maybe", "RFC 3339"),
        ({"id": "a", "meta": {"k": 1}}, "meta", "['k']: expected string"),
        ({"id": "a", "meta": ["k"]}, "meta", "expected object"),
        ({"id": "a", "tags": ["x", 2]}, "tags", "[1]: expected string"),
        ({"id": "a", "tags": "x"}, "tags", "expected array"),
        ({"id": "a", "strict": None}, "strict", "null is not allowed"),
        ({"id": 5}, "id", "expected string"),
    ],
)
def test_invalid_records(record: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SchemaViolation) as info:
        RecordValidator(SCHEMA, ["id"]).validate(record)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_unknown_fields() -> None:
    v = RecordValidator(SCHEMA, ["id"])
    assert v.unknown_fields({"id": "a", "n": 1}) == []
    assert v.unknown_fields({"id": "a", "new": 1}) == ["new"]
