"""JSON schema -> dlt table hints, shared by the native dlt source and the Singer bridge.

Both engines must produce identical tables, so every decision about a stream's table lives here:

* column types (`columns_from_json_schema`),
* the extra sequence column `_sdc_sequence` and how its values are made (`SequenceGenerator`),
* the write disposition, merge strategy and primary key (`table_hints`),
* nesting (`MAX_TABLE_NESTING = 0`: objects and arrays are `json` columns, never child tables).

Column *names* are not rewritten here: hints are keyed by the JSON property names (`updatedAt`)
and dlt's default `snake_case` naming convention turns them into `updated_at` for data and hints
alike. `destination_column_name` shows the result. Do not change the naming convention in one
engine only.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from analytics_api.validate import json_schema_types

__all__ = [
    "MAX_TABLE_NESTING",
    "MERGE_STRATEGY",
    "SEQUENCE_COLUMN",
    "SequenceGenerator",
    "column_from_property",
    "columns_from_json_schema",
    "destination_column_name",
    "json_schema_types",
    "table_hints",
    "write_disposition_for",
]

SEQUENCE_COLUMN = "_sdc_sequence"
"""Extra bigint column on every table: the order in which the loader saw the record.

Merge tables declare it `dedup_sort: desc`, so when a primary key repeats within one load the row
with the highest sequence (the last copy received) is the one kept. Values come from
`SequenceGenerator`: nanoseconds since the epoch at the start of the run plus the record's position
in the run, so they also increase from one run to the next.
"""

MERGE_STRATEGY = "delete-insert"
"""dlt merge strategy for tables with a primary key (the one that honours `dedup_sort`)."""

MAX_TABLE_NESTING = 0
"""Source-level `max_table_nesting`: nested values stay in their `json` column, no child tables."""


@functools.cache
def _naming() -> Any:
    """The naming convention dlt gives a new schema (its `snake_case` unless configured)."""
    return dlt.Schema("analytics").naming


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def destination_column_name(name: str) -> str:
    """The column name dlt's naming convention (`snake_case`) gives a JSON property."""
    return str(_naming().normalize_identifier(name))


def _string_format(prop: Mapping[str, Any]) -> str | None:
    """`format` of the string alternative of a property (top level or inside anyOf/oneOf)."""
    if "format" in prop:
        return str(prop["format"])
    for alt in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(alt, Mapping) and "format" in alt:
            types, _ = json_schema_types(alt)
            if not types or "string" in types:
                return str(alt["format"])
    return None


def column_from_property(name: str, prop: Mapping[str, Any]) -> TColumnSchema:
    """dlt column hint for one JSON-schema property (nullable; key columns are set by the caller).

    | JSON schema                           | dlt type    | DuckDB                    |
    |---------------------------------------|-------------|---------------------------|
    | string                                | text        | VARCHAR                   |
    | string, format date-time              | timestamp   | TIMESTAMP WITH TIME ZONE  |
    | string, format date                   | date        | DATE                      |
    | string, format time                   | time        | TIME                      |
    | integer                               | bigint      | BIGINT                    |
    | number, or integer+number             | double      | DOUBLE                    |
    | boolean                               | bool        | BOOLEAN                   |
    | object, array, several types, no type | json        | JSON                      |

    Timestamps keep microseconds: dlt parses them in Python, so a 7th-9th fractional digit is
    truncated (`.123456789` -> `.123456`), not rounded. `null` in the type list, `anyOf` with a
    `{"type": "null"}` alternative, and no type at all are all nullable.
    """
    types, _nullable = json_schema_types(prop)
    data_type: str
    if len(types) == 1:
        t = types[0]
        if t == "string":
            fmt = _string_format(prop)
            data_type = {"date-time": "timestamp", "date": "date", "time": "time"}.get(
                fmt or "", "text"
            )
        elif t == "integer":
            data_type = "bigint"
        elif t == "number":
            data_type = "double"
        elif t == "boolean":
            data_type = "bool"
        else:  # object, array, or a type dlt cannot hold natively
            data_type = "json"
    elif types and set(types) <= {"integer", "number"}:
        data_type = "double"
    else:
        data_type = "json"
    column: TColumnSchema = {"name": name, "data_type": data_type, "nullable": True}  # type: ignore[typeddict-item]
    if data_type == "timestamp":
        column["timezone"] = True
    description = prop.get("description")
    if isinstance(description, str) and description:
        column["description"] = description
    return column


def columns_from_json_schema(
    schema: Mapping[str, Any],
    key_properties: Sequence[str] = (),
    *,
    sequence_column: bool = True,
) -> TTableSchemaColumns:
    """dlt column hints for a stream's JSON schema, keyed by JSON property name, in schema order.

    * every property becomes a nullable column typed by `column_from_property`;
    * each key property is `primary_key: True, nullable: False` (a key missing from the schema's
      properties is still declared, as `text`);
    * with `sequence_column` (the default) `_sdc_sequence` is appended: bigint, NOT NULL, and
      `dedup_sort: "desc"` when there are key properties (merge tables), so the last copy of a
      repeated key wins. The native dlt source must add the same column, filled by
      `SequenceGenerator`, to get identical tables.

    Columns are keyed by the source property names; dlt's snake_case naming makes the destination
    names (`destination_column_name`).
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    columns: TTableSchemaColumns = {}
    for name, prop in properties.items():
        columns[name] = column_from_property(name, prop if isinstance(prop, Mapping) else {})
    for key in key_properties:
        column = columns.get(key)
        if column is None:
            column = {"name": key, "data_type": "text"}
            columns[key] = column
        column["nullable"] = False
        column["primary_key"] = True
    if sequence_column:
        seq: TColumnSchema = {"name": SEQUENCE_COLUMN, "data_type": "bigint", "nullable": False}
        if key_properties:
            seq["dedup_sort"] = "desc"
        columns[SEQUENCE_COLUMN] = seq
    return columns


def write_disposition_for(key_properties: Sequence[str]) -> dict[str, str]:
    """`merge` (strategy `delete-insert`) when the stream has keys, else `append`."""
    if key_properties:
        return {"disposition": "merge", "strategy": MERGE_STRATEGY}
    return {"disposition": "append"}


def table_hints(
    table_name: str,
    schema: Mapping[str, Any],
    key_properties: Sequence[str] = (),
    *,
    sequence_column: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for `dlt.mark.make_hints` / `resource.apply_hints` / `@dlt.resource`.

    `{"table_name", "columns", "primary_key", "write_disposition"}`. Use them with
    `max_table_nesting=MAX_TABLE_NESTING` on the source (or resource).
    """
    return {
        "table_name": table_name,
        "columns": columns_from_json_schema(
            schema, key_properties, sequence_column=sequence_column
        ),
        "primary_key": list(key_properties) if key_properties else None,
        "write_disposition": write_disposition_for(key_properties),
    }


class SequenceGenerator:
    """Values for `_sdc_sequence`: `time.time_ns()` at creation plus a running count.

    Strictly increasing within a run; across runs they increase as long as a run emits fewer
    records than the nanoseconds between the two runs' starts (always, in practice). Fits a
    bigint until the year 2262.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int | None = None) -> None:
        self._next = time.time_ns() if start is None else start
        if not _INT64_MIN <= self._next <= _INT64_MAX:
            raise ValueError("sequence start out of bigint range")

    def __call__(self) -> int:
        value = self._next
        self._next = value + 1
        return value

    def take(self, count: int) -> range:
        """Reserve `count` consecutive values (for a whole batch of rows)."""
        start = self._next
        self._next = start + count
        return range(start, start + count)

    @property
    def next_value(self) -> int:
        return self._next
