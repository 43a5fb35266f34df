"""Runs that bring nothing new, recognised before dlt is asked to extract anything.

A scheduled run of an incremental tap usually sends its SCHEMA messages, no record and the state
it started from. The loader reads such input ahead (`read_ahead`): when it ends before any message
that carries rows, its last STATE equals the stored one and its schemas are the ones stored with
it (`SchemaFingerprint`, kept next to the Singer state in the same load package), there is nothing
to extract, normalize or load, and dlt's three steps are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from dlt_bridge import __version__
from dlt_bridge.messages import Message, SchemaMessage, StateMessage

SCHEMAS_KEY = "singer_schemas"
"""Key of the schemas' fingerprint in the dlt source state, next to the Singer state."""

READ_AHEAD_LIMIT = 50_000
"""Messages without rows read ahead at most; beyond, the run proceeds as usual."""


class SchemaFingerprint:
    """A digest of the latest SCHEMA (and key properties) of every stream, and the bridge version
    (so an upgraded bridge re-derives its tables once)."""

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}
        self._value: str | None = None

    def add(self, stream: str, schema: Any, key_properties: Any) -> None:
        digest = hashlib.sha256(
            orjson.dumps([schema, key_properties], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        if self._digests.get(stream) != digest:
            self._digests[stream] = digest
            self._value = None

    @property
    def value(self) -> str:
        if self._value is None:
            parts = [__version__, *(f"{s}={d}" for s, d in sorted(self._digests.items()))]
            self._value = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return self._value


def read_ahead(
    messages: Iterator[tuple[int, Message]], limit: int = READ_AHEAD_LIMIT
) -> tuple[list[tuple[int, Message]], bool]:
    """The messages up to the first that is neither SCHEMA nor STATE (included), and whether the
    input ended before one (at most `limit` messages are held)."""
    held: list[tuple[int, Message]] = []
    for item in messages:
        held.append(item)
        if type(item[1]) not in (SchemaMessage, StateMessage) or len(held) >= limit:
            return held, False
    return held, True


def nothing_new(held: list[tuple[int, Message]], stored: Any) -> Any:
    """The state of `held` (input without rows) when it equals the stored source state's Singer
    state and schemas, else None."""
    from dlt_bridge.state import STATE_KEY

    fingerprint = SchemaFingerprint()
    state: Any = None
    for _, message in held:
        if isinstance(message, SchemaMessage):
            fingerprint.add(message.stream, message.schema, list(message.key_properties or []))
        elif isinstance(message, StateMessage):
            state = message.value
    if state is None or not isinstance(stored, dict):
        return None
    if stored.get(STATE_KEY) != state or stored.get(SCHEMAS_KEY) != fingerprint.value:
        return None
    return state
