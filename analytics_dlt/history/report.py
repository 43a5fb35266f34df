"""What a batch (`Changes`) and a run (`HistoryCounts`) do to one stream's history, and how a
run's is reported."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_EXAMPLES = 3
"""Keys named in a warning."""

Row = dict[str, Any]


@dataclass(frozen=True)
class Changes:
    """What one batch of records changes in a stream's history (`StreamHistory.changes`)."""

    closing: list[Row]
    """Rows closing earlier versions (numbered already)."""
    opened: list[int]
    """Positions in the batch of the records that are new versions."""
    digests: list[int]
    """Their `_version_hash`."""
    numbers: range
    """Their `_sdc_sequence`."""


@dataclass
class HistoryCounts:
    """What one run did to one stream's history."""

    opened: int = 0
    """New versions recorded (open rows written)."""
    closed: int = 0
    """Earlier versions closed by a newer one."""
    gone: int = 0
    """Versions closed because a complete scan found the record deleted."""
    started: int = 0
    """Versions taken from the current table (the run that starts history)."""
    unchanged: int = 0
    """Records whose version is already recorded (same `_valid_from`, same values)."""
    changed_in_place: list[Any] = field(default_factory=list)
    """Keys received with their open version's `_valid_from` but other values."""
    older: list[Any] = field(default_factory=list)
    """Keys received with a `_valid_from` before their open version's."""
    repeated: list[Any] = field(default_factory=list)
    """Keys with a second new version in this run (the earlier stays open until next run)."""

    def report(self, logger: logging.Logger, name: str, version: str) -> None:
        """One line of counts (INFO on the run that starts history, else DEBUG: the run's
        summary counts each history table's rows); a WARNING for each kind of unexpected record."""
        c = self
        if c.opened or c.closed or c.gone or c.started:
            logger.log(
                logging.INFO if c.started else logging.DEBUG,
                "stream %r history: %d new version(s), %d closed by a newer one, %d closed as"
                " deleted%s",
                name,
                c.opened,
                c.closed,
                c.gone,
                f", {c.started} taken from the current table (history starts)" if c.started else "",
            )
        if c.changed_in_place:
            logger.warning(
                "stream %r history: %d record(s) changed without a new %r (e.g. %s): the"
                " recorded version was overwritten with the new values; the API should move %r"
                " on every change",
                name,
                len(c.changed_in_place),
                version,
                _examples(c.changed_in_place),
                version,
            )
        if c.older:
            logger.warning(
                "stream %r history: %d record(s) arrived with a %r older than their recorded"
                " version (e.g. %s): not recorded as versions",
                name,
                len(c.older),
                version,
                _examples(c.older),
            )
        if c.repeated:
            logger.warning(
                "stream %r history: %d record(s) had two new versions in this run (e.g. %s):"
                " the earlier one stays open until the next history run closes it",
                name,
                len(c.repeated),
                _examples(c.repeated),
            )


def _examples(keys: Sequence[Any]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_EXAMPLES])
    return shown + (", ..." if len(keys) > _EXAMPLES else "")
