"""Per-stream bookkeeping of the bridge's loader (`dlt_bridge.loader`)."""

from __future__ import annotations

import logging
from typing import Any

from analytics_api.validate import RecordValidator
from analytics_dlt.arrow import ArrowBatcher

log = logging.getLogger("dlt_bridge")


class StreamBuffer:
    """One stream's SCHEMA-derived checks and hints, and its rows not yet handed to dlt."""

    __slots__ = (
        "arrow",
        "arrow_checked",
        "arrow_off",
        "buffer",
        "declared",
        "hints",
        "hints_dirty",
        "key_properties",
        "known_fields",
        "name",
        "records",
        "schema",
        "validator",
        "warned_fields",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema: dict[str, Any] = {}
        self.key_properties: list[str] = []
        self.validator: RecordValidator | None = None
        self.hints: dict[str, Any] = {}
        self.hints_dirty = True
        self.buffer: list[dict[str, Any]] = []
        self.records = 0
        self.warned_fields: set[str] = set()
        self.known_fields: frozenset[str] = frozenset()
        self.arrow: ArrowBatcher | None = None
        """Converts batches to arrow tables; None: dicts only (see `_arrow_allowed`)."""
        self.arrow_checked = False
        self.arrow_off = False
        self.declared: dict[str, Any] = {}
        """Column -> data type declared by this run's SCHEMA messages so far."""

    def warn_unknown_fields(self, line: int, record: dict[str, Any]) -> None:
        """One warning per field the SCHEMA does not declare; dlt infers its type."""
        assert self.validator is not None
        declared, warned = self.validator.property_names, self.warned_fields
        new = [k for k in record if k not in declared and k not in warned]
        if new:
            self.warned_fields.update(new)
            self.known_fields = self.known_fields.union(new)
            log.warning(
                "line %d: stream %r: field(s) %s not in its SCHEMA; dlt infers their type",
                line,
                self.name,
                ", ".join(repr(k) for k in new),
            )
