"""Recognising a run that brings nothing new, before dlt extracts anything."""

from __future__ import annotations

from dlt_bridge.args import tap_flags
from dlt_bridge.messages import RecordMessage, SchemaMessage, StateMessage
from dlt_bridge.state import STATE_KEY
from dlt_bridge.unchanged import SCHEMAS_KEY, SchemaFingerprint, nothing_new, read_ahead

SCHEMA = SchemaMessage(
    stream="s", schema={"properties": {"id": {"type": "string"}}}, key_properties=["id"]
)


def _fingerprint(*schemas: SchemaMessage) -> str:
    fingerprint = SchemaFingerprint()
    for message in schemas:
        fingerprint.add(message.stream, message.schema, list(message.key_properties or []))
    return fingerprint.value


def test_read_ahead_stops_at_the_first_message_with_rows() -> None:
    messages = [(1, SCHEMA), (2, RecordMessage(stream="s", record={"id": "a"})), (3, SCHEMA)]
    iterator = iter(messages)
    held, ended = read_ahead(iterator)
    assert held == messages[:2] and not ended
    assert list(iterator) == messages[2:]
    assert read_ahead(iter(messages[:1])) == (messages[:1], True)
    assert read_ahead(iter([(1, SCHEMA)] * 5), limit=3)[1] is False


def test_nothing_new_needs_the_stored_state_and_schemas() -> None:
    held = [(1, SCHEMA), (2, StateMessage(value={"b": 1}))]
    stored = {STATE_KEY: {"b": 1}, SCHEMAS_KEY: _fingerprint(SCHEMA)}
    assert nothing_new(held, stored) == {"b": 1}
    assert nothing_new(held, {**stored, STATE_KEY: {"b": 0}}) is None
    assert nothing_new(held, {**stored, SCHEMAS_KEY: "older"}) is None
    assert nothing_new(held[:1], stored) is None  # no STATE at all
    assert nothing_new(held, None) is None  # nothing stored yet


def test_the_fingerprint_follows_schemas_and_keys_not_order() -> None:
    other = SchemaMessage(stream="t", schema={"properties": {}}, key_properties=["id"])
    assert _fingerprint(SCHEMA, other) == _fingerprint(other, SCHEMA)
    assert _fingerprint(SCHEMA) != _fingerprint(SCHEMA, other)
    rekeyed = SchemaMessage(stream="s", schema=SCHEMA.schema, key_properties=["name"])
    assert _fingerprint(SCHEMA) != _fingerprint(rekeyed)


def test_tap_flags_are_read_early_only_for_a_plain_run() -> None:
    flags = tap_flags(["run", "--config", "c.json", "--deletes", "soft", "--pipeline-name", "x"])
    assert flags is not None and (flags.config, flags.deletes) == ("c.json", "soft")
    assert tap_flags(["load", "--input", "f"]) is None
    assert tap_flags(["run", "--environment", "prod"]) is None
    assert tap_flags(["run", "--config", "c.json", "--deletes", "bogus"]) is None
    assert tap_flags([]) is None
