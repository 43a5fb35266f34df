"""History tables for both engines: every version of every record, valid from its own change time.

With history on, a stream's table `<stream>` stays exactly what it is without history, and the same
load package also writes `<stream>_history`: one row per version of a record, with all the
record's columns (the parent id on child streams) plus

* `_valid_from` (timestamp with time zone): the version's replication key value (`updatedAt`;
  `createdAt` for tokens), i.e. when it changed upstream;
* `_valid_to` (timestamp with time zone): the next version's `_valid_from`; null while the version
  is current; for a record that a complete scan in deletion mode found gone, the deletion time
  that run gives the current table (`_sdc_deleted_at`, the run's start);
* `_version_hash` (bigint): a hash of the version's values as the destination holds them, so a
  change that arrives with an unchanged replication key is noticed (counted and reported);
* `_sdc_sequence`, as on every table, with `dedup_sort: desc`.

A version is identified by (primary key, `_valid_from`), the table's primary key, and the table is
merged on it (`delete-insert`): loading a version again (a rerun, at-least-once delivery, a
FULL_TABLE scan) never adds a row. Closing a version is writing its row again with `_valid_to` set.

`StreamHistory` is the one tracker both engines use (the bridge's loader, the native source's
resources). Per run and stream it reads the open versions (`key -> _valid_from, _version_hash`)
from the destination when the first records arrive, and for each batch of records returns the
history rows to load with them: a new open row per new version, and a closing row (the earlier
version's stored values, `_valid_to` = the new `_valid_from`) for the version it replaces. After a
stream's complete scan in deletion mode, `gone(keys, at)` closes the open versions of the keys the
deletion tracker (`analytics_dlt.deletions`) found gone; `hard` deletions never touch history.
The rows go into the run's load package with its other rows and its state, so a failed run
changes no history row.

History starts on an existing dataset by itself: when `<stream>_history` does not exist yet, the
stream's current table (as stored before the run) is taken as the open versions, written at
`finish()` (soft-deleted rows as versions closed at their `_sdc_deleted_at`), and closed by the
run's newer versions like any other.

Kept as they arrive, never silently: a record with the open version's `_valid_from` and other
values (the API should never do this) overwrites that version and is counted and reported; a
record older than its open version (a replay of old input) is not a new version and is counted and
reported; a key with two new versions in one run keeps both open until the next history run
closes the earlier one (its values are not kept in memory), reported too.

Modules: `tables` (names, columns, hints), `values` (a version's instant and hash), `tracker`
(`StreamHistory`), `stored` (its SQL), `items` (a batch's rows as items for dlt), `arrow` (rows as
arrow tables), `report` (counts and log lines); `RunHistory` here, the trackers of a run by stream
for the bridge.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema

from analytics_dlt.hints import SequenceGenerator
from analytics_dlt.history.items import batch_items
from analytics_dlt.history.report import HistoryCounts
from analytics_dlt.history.tables import (
    HISTORY_SUFFIX,
    VALID_FROM,
    VALID_TO,
    VERSION_HASH,
    history_hints,
    history_table_name,
    is_history_table,
    version_column,
    without_resource_columns,
)
from analytics_dlt.history.tracker import StreamHistory
from analytics_dlt.history.values import VersionHasher, instant, microsecond_text

__all__ = [
    "HISTORY_SUFFIX",
    "VALID_FROM",
    "VALID_TO",
    "VERSION_HASH",
    "HistoryCounts",
    "RunHistory",
    "StreamHistory",
    "VersionHasher",
    "batch_items",
    "history_hints",
    "history_table_name",
    "instant",
    "is_history_table",
    "microsecond_text",
    "version_column",
    "without_resource_columns",
]

log = logging.getLogger(__name__)


class RunHistory:
    """The history trackers of one run by stream, for an engine that sees records stream by
    stream as they come (the Singer bridge): `on_schema` per SCHEMA, `on_batch` for every batch
    handed to dlt (its rows wait in `pending` until `drain` yields them after that batch), then
    `finish` at the end of a complete input."""

    def __init__(
        self,
        pipeline: dlt.Pipeline,
        sequence: SequenceGenerator,
        logger: logging.Logger | None = None,
        *,
        every_record: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.sequence = sequence
        self.every_record = every_record
        """The input has every record (deletion mode): see `StreamHistory.every_record`."""
        self.streams: dict[str, StreamHistory] = {}
        self.pending: list[Any] = []
        self._log = logger or log
        self._merge_checked = False
        self._warned: set[str] = set()

    def on_schema(
        self,
        stream: str,
        key_properties: Sequence[str],
        bookmark_properties: Sequence[str] | None,
        hints: Mapping[str, Any],
    ) -> str | None:
        """Track `stream` (again, with these table hints); a problem that stops the run, or None."""
        columns: Mapping[str, TColumnSchema] = hints["columns"]
        version = version_column(stream, columns, bookmark_properties)
        if len(key_properties) != 1 or version is None:
            self.streams.pop(stream, None)
            if stream not in self._warned:
                self._warned.add(stream)
                self._log.warning(
                    "stream %r: no history table: history needs exactly one key property (it"
                    " has %d) and a replication key (%s)",
                    stream,
                    len(key_properties),
                    "bookmark_properties in its SCHEMA" if version is None else version,
                )
            return None
        if not self._merge_checked:
            from analytics_dlt.deletions import merge_problem

            if problem := merge_problem(self.pipeline):
                return f"--history: {problem}"
            self._merge_checked = True
        tracker = StreamHistory(
            self.pipeline,
            stream,
            key_properties[0],
            version,
            columns,
            self.sequence,
            self._log,
            every_record=self.every_record,
        )
        earlier = self.streams.get(stream)
        if earlier is not None and earlier.key == tracker.key and earlier.version == version:
            tracker.take_over(earlier)
        self.streams[stream] = tracker
        return None

    def on_batch(
        self, stream: str, records: Sequence[Mapping[str, Any]], table: Any = None
    ) -> None:
        """A batch handed to dlt (`table`: the same batch as a pyarrow table, if it is one)."""
        tracker = self.streams.get(stream)
        if tracker is not None and records:
            self.pending.extend(batch_items(tracker, records, table))

    def drain(self, items: Iterable[Any]) -> Iterator[Any]:
        """`items` (one load package's), each followed by the history rows its batch made."""
        for tracker in self.streams.values():
            tracker.hinted = False  # a new package, a new resource: hints again
        pending = self.pending
        for item in items:
            yield item
            if pending:
                yield from pending
                pending.clear()

    def finish(self, gone: Mapping[str, Collection[Any]], at: dt.datetime | None) -> Iterator[Any]:
        """At the end of a complete input: versions of `gone` keys closed at `at` (deletion
        mode), the versions that start history where it starts, and each stream's report."""
        for name, tracker in self.streams.items():
            rows = tracker.gone(gone[name], at) if name in gone and at is not None else []
            rows += tracker.finish()
            if rows:
                yield tracker.item(rows)
