"""Rules for records, shared by both engines: required keys, and fields outside the schema.

A record without its primary key cannot be merged and one without its replication key cannot be
placed by incremental sync: both stop the run with a clear error instead of loading a bad row.
Fields the stream's schema does not declare (upstream drift such as `throttleRate`) are dropped,
with one warning per stream and field, so both engines create the same columns.
"""

from __future__ import annotations

import logging
from typing import Any

from analytics_api.errors import RecordError
from analytics_api.streams import StreamDefinition


def check_keys(definition: StreamDefinition, record: dict[str, Any], path: str) -> None:
    """Raise `RecordError` when the primary key or the replication key is missing or null."""
    pk, rk = definition.primary_key, definition.replication_key
    if record.get(pk) is None:
        raise RecordError(
            f"stream '{definition.name}', GET {path}: a record has no primary key '{pk}' "
            f"(fields present: {sorted(record)[:12]}). Refusing to load a row that cannot be "
            "merged; report this to the API provider."
        )
    if record.get(rk) is None:
        raise RecordError(
            f"stream '{definition.name}', GET {path}: record {pk}={record[pk]!r} has no "
            f"replication key '{rk}'; incremental sync cannot place it. Report this to the API "
            "provider."
        )


class FieldFilter:
    """Drops fields outside a stream's schema, warning once per field."""

    def __init__(
        self, definition: StreamDefinition, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        self.stream = definition.name
        self.known = frozenset(definition.schema["properties"])
        self.logger = logger
        self.warned: set[str] = set()

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record itself when every field is known (the common case), else a trimmed copy."""
        if self.known.issuperset(record):
            return record
        for name in record:
            if name not in self.known and name not in self.warned:
                self.warned.add(name)
                self.logger.warning(
                    "stream '%s': field %r is not in the stream's schema; it is dropped "
                    "(this warning is shown once per field)",
                    self.stream,
                    name,
                )
        return {k: v for k, v in record.items() if k in self.known}
