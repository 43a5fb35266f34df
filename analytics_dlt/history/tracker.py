"""`StreamHistory`: one stream's history during one run (see `analytics_dlt.history`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema

from analytics_dlt.deletions import DELETED_AT_COLUMN
from analytics_dlt.hints import SEQUENCE_COLUMN, SequenceGenerator, destination_column_name
from analytics_dlt.history import stored
from analytics_dlt.history.report import Changes, HistoryCounts
from analytics_dlt.history.tables import (
    VALID_FROM,
    VALID_TO,
    VERSION_HASH,
    history_hints,
    history_table_name,
)
from analytics_dlt.history.values import VersionHasher, instant

log = logging.getLogger("analytics_dlt.history")


Row = dict[str, Any]

REPAIR_KEY = "history_repair"
"""Source state: `{history table: True}` when a run left a key with two open versions (it saw
two new versions of it); the next run of that stream closes the earlier. Committed with the run."""


_RUN_STATE: tuple[str, ...] = ("counts", "_open", "_looked", "_all_looked", "_exists")
_RUN_STATE += ("_starting", "_written", "_no_current", "_fresh")


def _source_state() -> dict[str, Any] | None:
    """The dlt source state of the extraction running now; None outside one."""
    try:
        return dlt.current.source_state()  # type: ignore[no-any-return]
    except Exception:  # not inside a source's extraction
        return None


class StreamHistory:
    """One stream's `<table>_history` during one run: the rows that record its versions.

    `changes(records)` for every batch of records the current table receives (after any
    incremental filter; `analytics_dlt.history.items.batch_items` makes its rows), `gone(keys,
    at)` after a complete scan in deletion mode, `finish()` once at the end of the stream. Each
    gives history rows for `item(rows)`, to be loaded in the same package as the records.
    """

    def __init__(
        self,
        pipeline: dlt.Pipeline,
        table: str,
        key: str,
        version: str,
        columns: Mapping[str, TColumnSchema],
        sequence: SequenceGenerator,
        logger: logging.Logger | None = None,
        *,
        every_record: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.every_record = every_record  # a deletion-mode scan: read every open version at once
        self.table = table
        self.history_table = history_table_name(table)
        self.key = key
        self.version = version
        self.hints = history_hints(table, columns, key)
        self._merged_hints = self.hints
        self.counts = HistoryCounts()
        self._key_column = destination_column_name(key)
        self._version_column = destination_column_name(version)
        self._json = frozenset(
            destination_column_name(n)
            for n, c in self.hints["columns"].items()
            if c.get("data_type") == "json"
        )
        self._hasher = VersionHasher(columns)
        self._sequence = sequence
        self._log = logger or log
        # the open version of each key looked up (or written by this run)
        self._open: dict[Any, tuple[dt.datetime, int | None]] = {}
        self._looked: set[Any] = set()  # keys read from the destination (found or not)
        self._held: dict[Any, list[Row]] = {}  # the batch's open versions, whole (to close)
        self._all_looked = False  # every open version read (`every_record`)
        self._exists: bool | None = None  # the history table
        self._starting = False  # no history table: versions come from the current table
        self._written: set[tuple[Any, dt.datetime]] = set()  # start run: (key, since) written
        self._no_current = False  # no current table either: nothing to look up
        self._fresh: set[Any] = set()  # keys whose open version this run wrote
        self._finished = False
        self._known: set[str] | None = None  # tables of the pipeline's schemas at the start
        self.hinted = False  # the resource extracting this run has the history hints

    # -- public ----------------------------------------------------------------------------------

    def take_over(self, earlier: StreamHistory) -> None:
        """Continue the run of `earlier` (the same stream, its columns changed mid-run)."""
        for name in _RUN_STATE:
            setattr(self, name, getattr(earlier, name))

    def item(self, rows: Any) -> Any:
        """`rows` (dicts or an arrow table) as an item for dlt: the history table's hints on the
        first item of a resource (`hinted` False), its name after (dlt keeps the hints)."""
        if self.hinted:
            return dlt.mark.with_table_name(rows, self.history_table)
        self.hinted = True
        hints = dlt.mark.make_hints(**self.hints)
        return dlt.mark.with_hints(rows, hints, create_table_variant=True)

    def changes(self, records: Sequence[Mapping[str, Any]]) -> Changes:
        """What a batch of records changes: the rows closing earlier versions, and which records
        are new versions (`analytics_dlt.history.items` makes their rows)."""
        closing_rows = self._look_up(record.get(self.key) for record in records)
        open_versions, fresh, counts = self._open, self._fresh, self.counts
        key, version, of_record = self.key, self.version, self._hasher.of_record
        opened: list[int] = []
        digests: list[int] = []
        closing: dict[Any, dt.datetime | None] = {}
        for index, record in enumerate(records):
            k = record.get(key)
            value = record.get(version)
            if k is None or value is None:
                continue  # refused upstream (check_keys / key properties); never a version
            since = instant(value)
            digest = of_record(record)
            current = open_versions.get(k)
            if current is not None:
                current_since, current_digest = current
                if since == current_since:
                    if digest == current_digest:
                        counts.unchanged += 1
                        continue
                    counts.changed_in_place.append(k)
                    if k in fresh:  # its version twice in this package: dedupe it
                        self._merge_this_run()
                elif since < current_since:
                    counts.older.append(k)
                    continue
                elif k in fresh:
                    counts.repeated.append(k)
                else:
                    closing[k] = since
            opened.append(index)
            digests.append(digest)
            open_versions[k] = (since, digest)
            fresh.add(k)
            if self._starting and not self._no_current:
                self._written.add((k, since))
        if closing:
            closed = self._closing_rows(closing)
            counts.closed += len(closed)
            closing_rows.extend(closed)
        counts.opened += len(opened)
        self._held = {}
        self._numbered(closing_rows)
        numbers = self._sequence.take(len(opened))
        return Changes(closing_rows, opened, digests, numbers)

    def gone(self, keys: Iterable[Any], at: dt.datetime) -> list[Row]:
        """Rows closing, at `at`, the open versions of `keys`, found deleted by a complete scan."""
        keys = list(keys)
        out = self._look_up(keys)
        targets: dict[Any, dt.datetime | None] = {}
        for k in keys:
            if k in self._open and k not in self._fresh:
                targets[k] = at
                del self._open[k]
        closed = self._closing_rows(targets)
        self._held = {}
        self.counts.gone += len(closed)
        return self._numbered(out + closed)

    def finish(self) -> list[Row]:
        """At the end of the stream: the versions that start history, if this run starts it;
        logs what the run did."""
        if self._finished:
            return []
        self._finished = True
        out: list[Row] = []
        if self._exists is None and not self._in_schema(self.history_table):
            self._start()  # no record this run, and no history table
            self._no_current = not self._in_schema(self.table)
        state = _source_state()
        flags = (state or {}).get(REPAIR_KEY) or {}
        several: list[Any] | None = None  # None: no history table
        if self._starting:
            pass
        elif self._all_looked or (state is not None and not flags.get(self.history_table)):
            several = []  # every open version was read; or no earlier run left two open
        else:
            several = self._keys_open_more_than_once()
        if several is None:  # no history table: the current rows start it (those not written)
            self._start()
            written = self._written
            for row in [] if self._no_current else self._read_rows(self.table, None):
                if (row[self._key_column], row[self._version_column]) not in written:
                    out.append(self._from_current(row))
            self.counts.started += len(out)
        else:  # keys this run did not look up may have several open versions: repair them
            out = self._closing_rows(dict.fromkeys(k for k in several if k not in self._looked))
        if state is not None and (self.counts.repeated or flags.get(self.history_table)):
            # committed with this run: the next one repairs what this one leaves open twice
            state.setdefault(REPAIR_KEY, {})[self.history_table] = bool(self.counts.repeated)
        self.report()
        return self._numbered(out)

    def report(self) -> None:
        """What this run did to the stream's history, in the log (`HistoryCounts.report`)."""
        self.counts.report(self._log, self.table, self.version)

    # -- reading the destination --------------------------------------------------------------

    def _look_up(self, keys: Iterable[Any]) -> list[Row]:
        """Read the open versions of `keys` not looked up yet: from the history table, or, when
        it does not exist, from the current table (the versions that start history). Returns rows
        that repair history (a key left with several open versions gets the earlier closed)."""
        if self._starting and self._no_current:
            return []  # a new dataset: nothing stored to look up
        if self._all_looked:
            return []
        todo: list[Any] | None = list({k for k in keys if k is not None and k not in self._looked})
        if not todo:
            return []
        self._looked.update(todo)
        if self.every_record:
            todo, self._all_looked = None, True
        if self._exists is None and not self._in_schema(self.history_table):
            self._start()  # not created by this pipeline yet
            self._no_current = not self._in_schema(self.table)
        if not self._starting and todo is None:  # all of them: (key, since, hash) only
            try:
                versions, several = stored.open_versions(
                    self.pipeline, self.history_table, self._key_column, None
                )
            except stored.Missing:
                self._start()
            else:
                self._exists = True
                self._open.update(versions)
                return self._closing_rows(dict.fromkeys(several))
        elif not self._starting:  # a batch's keys: whole rows, held to close them
            try:
                held = self._hold(self._read_rows(self.history_table, todo, missing=True))
            except stored.Missing:
                self._start()
            else:
                self._exists = True
                twice = [k for k, rows in held.items() if len(rows) > 1]
                repairs = self._closing_rows(dict.fromkeys(twice))
                for k in twice:
                    held[k] = held[k][-1:]  # the latest, still open
                return repairs
        if self._no_current:
            return []
        current = (self._from_current(r) for r in self._read_rows(self.table, todo))
        if todo is not None:
            self._hold(r for r in current if r[VALID_TO] is None)
            return []
        for row in current:  # every record: too many to hold
            if row[VALID_TO] is None:
                self._open[row[self._key_column]] = (row[VALID_FROM], row[VERSION_HASH])
        return []

    def _hold(self, rows: Iterable[Row]) -> dict[Any, list[Row]]:
        """Open versions read back, by key, oldest first, as `_held` and in `_open`."""
        held: dict[Any, list[Row]] = {}
        for row in rows:
            held.setdefault(row[self._key_column], []).append(row)
        for k, versions in held.items():
            versions.sort(key=lambda r: r[VALID_FROM])  # type: ignore[no-any-return]
            self._open[k] = (versions[-1][VALID_FROM], versions[-1][VERSION_HASH])
        self._held = held
        return held

    def _start(self) -> None:
        """No history table: this run starts it. Each version is written once at most (see
        `changes`), so the table is appended to, without dlt's merge; later runs merge."""
        self._exists, self._starting = False, True
        if not self.hinted:  # (without `dedup_sort`, which dlt only applies when merging)
            columns = self.hints["columns"]
            sequence = {k: v for k, v in columns[SEQUENCE_COLUMN].items() if k != "dedup_sort"}
            columns = {**columns, SEQUENCE_COLUMN: sequence}
            self.hints = {**self.hints, "write_disposition": "append", "columns": columns}

    def _merge_this_run(self) -> None:
        """A version is written twice in this run: dlt must merge (and dedupe) after all."""
        if self.hints["write_disposition"] == "append":
            self.hints = self._merged_hints
            self.hinted = False  # the next item carries the hints again

    def _in_schema(self, table: str) -> bool:
        """Whether a schema of the pipeline knows `table`. One none knows was never created by
        it (its schemas are synced from the destination before a run): no query needed."""
        if self._known is None:
            self._known = {t for schema in self.pipeline.schemas.values() for t in schema.tables}
        return table in self._known

    def _keys_open_more_than_once(self) -> list[Any] | None:
        """Keys with several open versions (a run that saw two versions of a key leaves them);
        None when the history table does not exist."""
        try:
            several = stored.keys_open_more_than_once(
                self.pipeline, self.history_table, self._key_column
            )
        except stored.Missing:
            self._exists = False
            return None
        self._exists = True
        return several

    def _read_rows(
        self, table: str, keys: Collection[Any] | None, *, missing: bool = False
    ) -> Iterable[Row]:
        """Rows of `table` (`keys` only, if given; open versions only, for the history table);
        none when the current table does not exist (`missing`: raise `stored.Missing`)."""
        history = table == self.history_table
        rows = stored.rows_of(
            self.pipeline, table, self._key_column, keys, open_only=history, json_columns=self._json
        )
        try:
            yield from rows
        except stored.Missing:
            if missing:
                raise
            self._no_current = not history  # no current table: nothing to start history with

    # -- rows ------------------------------------------------------------------------------------

    def _closing_rows(self, targets: Mapping[Any, dt.datetime | None]) -> list[Row]:
        """For each key of `targets`: its open versions closed, each at the next one's
        `_valid_from`, the latest at `targets[key]` (None: the latest stays open)."""
        if not targets:
            return []
        found = {k: self._held[k] for k in targets if k in self._held}
        if len(found) < len(targets):
            unread = [k for k in targets if k not in found]
            source = self.table if self._starting else self.history_table
            for row in self._read_rows(source, unread):
                if self._starting:
                    row = self._from_current(row)
                    if row[VALID_TO] is not None:
                        continue  # marked deleted in the current table: a closed version already
                found.setdefault(row[self._key_column], []).append(row)
        out: list[Row] = []
        for k, rows in found.items():
            rows.sort(key=lambda r: r[VALID_FROM])  # type: ignore[no-any-return]
            for i, row in enumerate(rows):
                until = rows[i + 1][VALID_FROM] if i + 1 < len(rows) else targets[k]
                if until is None:
                    continue
                row[VALID_TO] = until
                out.append(row)
                if self._starting:
                    self._written.add((k, row[VALID_FROM]))
        return out

    def _from_current(self, row: Row) -> Row:
        """A current table's row as its history row (open, or closed at `_sdc_deleted_at`)."""
        out = {n: v for n, v in row.items() if n not in (DELETED_AT_COLUMN, SEQUENCE_COLUMN)}
        out[VALID_FROM] = row[self._version_column]
        out[VALID_TO] = row.get(DELETED_AT_COLUMN)
        out[VERSION_HASH] = self._hasher.of_stored(row)
        return out

    def _numbered(self, rows: list[Row]) -> list[Row]:
        """`_sdc_sequence` in the order the rows were made (the later copy of a version wins)."""
        for row, number in zip(rows, self._sequence.take(len(rows)), strict=True):
            row[SEQUENCE_COLUMN] = number
        return rows
