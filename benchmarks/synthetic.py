"""Synthetic Singer output shaped like tap-analytics (for tests and the benchmark).

`synthetic_messages(n)` yields encoded lines: a SCHEMA per stream (taken from
`analytics_api/schemas`), `n` RECORD lines spread over the streams (the child streams' SCHEMA
re-sent once per parent, as singer-sdk does) and a STATE every `state_every` records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["schema_line", "stream_schemas", "synthetic_messages", "synthetic_record"]


def stream_schemas() -> dict[str, tuple[dict[str, Any], list[str]]]:
    """`{stream: (json_schema, key_properties)}` of tap-analytics."""
    from analytics_api.streams import STREAMS

    return {s.name: (s.schema, [s.primary_key]) for s in STREAMS}


def schema_line(stream: str, schema: dict[str, Any], keys: list[str]) -> bytes:
    return (
        orjson.dumps({"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": keys})
        + b"\n"
    )


def _value(name: str, prop: dict[str, Any], i: int) -> Any:
    types = prop.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if prop.get("format") == "date-time":
        day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        return f"{day}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
    if "integer" in types:
        return 65536 + i
    if "number" in types:
        return i / 7
    if "boolean" in types:
        return i % 2 == 0
    if "object" in types:
        return {"team": f"t{i % 10}", "tier": "gold" if i % 3 else "free"}
    if "array" in types:
        return [f"type.{i % 5}", f"type.{i % 7}"]
    return f"{name}-{i}"


def synthetic_record(stream: str, schema: dict[str, Any], key: str, i: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name == key:
            record[name] = f"{stream[:3]}_{i:027d}"
        elif i % 11 == 0 and name not in ("updatedAt",) and "null" in json.dumps(prop):
            continue  # omitted optional field
        else:
            record[name] = _value(name, prop, i)
    return record


def synthetic_messages(n: int, *, state_every: int = 1000) -> Iterator[bytes]:
    schemas = stream_schemas()
    names = list(schemas)
    for name in names:
        schema, keys = schemas[name]
        yield schema_line(name, schema, keys)
    child_schema_lines = {
        name: schema_line(name, *schemas[name])
        for name in ("endpoints", "integrations", "ingest_source_endpoint")
        if name in schemas
    }
    for i in range(n):
        name = names[i % len(names)]
        schema, keys = schemas[name]
        if name in child_schema_lines and i % 40 < len(names):
            yield child_schema_lines[name]  # singer-sdk re-sends child schemas per parent
        yield (
            orjson.dumps(
                {
                    "type": "RECORD",
                    "stream": name,
                    "record": synthetic_record(name, schema, keys[0], i),
                }
            )
            + b"\n"
        )
        if (i + 1) % state_every == 0:
            yield (
                orjson.dumps(
                    {"type": "STATE", "value": {"bookmarks": {name: {"replication_key_value": i}}}}
                )
                + b"\n"
            )
    yield orjson.dumps({"type": "STATE", "value": {"bookmarks": {"done": n}}}) + b"\n"
