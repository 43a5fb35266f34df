"""`StreamHistory`: one stream's history during one run (see `analytics_dlt.history`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from analytics_dlt.deletions import DELETED_AT_COLUMN
from analytics_dlt.hints import SEQUENCE_COLUMN, SequenceGenerator, destination_column_name
from analytics_dlt.history.report import HistoryCounts
from analytics_dlt.history.tables import (
    VALID_FROM,
    VALID_TO,
    VERSION_HASH,
    history_hints,
    history_table_name,
)
from analytics_dlt.history.values import VersionHasher, instant

log = logging.getLogger("analytics_dlt.history")

_CHUNK = 500
"""Keys per `IN (...)` list when reading stored versions back."""
_FETCH = 5000
"""Rows fetched at a time when reading a whole table."""

Row = dict[str, Any]


class StreamHistory:
    """One stream's `<table>_history` during one run: the rows that record its versions.

    `versions(records)` for every batch of records the current table receives (after any
    incremental filter), `gone(keys, at)` after a complete scan in deletion mode, `finish()`
    once at the end of the stream. Each returns history rows (dicts, possibly empty) for
    `item(rows)`, to be loaded in the same package as the records.
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
    ) -> None:
        self.pipeline = pipeline
        self.table = table
        self.history_table = history_table_name(table)
        self.key = key
        self.version = version
        self.hints = history_hints(table, columns, key)
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
        self._open: dict[Any, tuple[dt.datetime, int | None]] | None = None
        self._exists: bool | None = None
        self._starting = False
        """No history table at the start of the run: versions come from the current table."""
        self._start_pending: dict[Any, dt.datetime] = {}
        """Start run: (key, `_valid_from`) of current rows not written to history yet."""
        self._fresh: set[Any] = set()
        """Keys whose open version was written by this run (not in the destination yet)."""
        self._finished = False

    # -- public ----------------------------------------------------------------------------------

    def take_over(self, earlier: StreamHistory) -> None:
        """Continue the run of `earlier` (the same stream, its columns changed mid-run)."""
        for name in ("counts", "_open", "_exists", "_starting", "_start_pending", "_fresh"):
            setattr(self, name, getattr(earlier, name))

    def item(self, rows: list[Row]) -> Any:
        """`rows` as an item for dlt: tagged with the history table's name and hints."""
        hints = dlt.mark.make_hints(**self.hints)
        return dlt.mark.with_hints(rows, hints, create_table_variant=True)

    def versions(self, records: Iterable[Mapping[str, Any]]) -> list[Row]:
        """History rows for a batch of records: new versions, and the versions they close."""
        out = self._prepare()
        assert self._open is not None
        open_versions, fresh, counts = self._open, self._fresh, self.counts
        key, version, of_record = self.key, self.version, self._hasher.of_record
        opened: list[Row] = []
        closing: dict[Any, dt.datetime | None] = {}
        for record in records:
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
                elif since < current_since:
                    counts.older.append(k)
                    continue
                elif k in fresh:
                    counts.repeated.append(k)
                else:
                    closing[k] = since
            row = dict(record)
            row[VALID_FROM] = value
            row[VALID_TO] = None
            row[VERSION_HASH] = digest
            opened.append(row)
            open_versions[k] = (since, digest)
            fresh.add(k)
            self._written(k, since)
        if closing:
            closed = self._closing_rows(closing)
            counts.closed += len(closed)
            out.extend(closed)
        counts.opened += len(opened)
        out.extend(opened)
        return self._numbered(out)

    def gone(self, keys: Iterable[Any], at: dt.datetime) -> list[Row]:
        """Rows closing, at `at`, the open versions of `keys`, found deleted by a complete scan."""
        out = self._prepare()
        assert self._open is not None
        targets: dict[Any, dt.datetime | None] = {}
        for k in keys:
            if k in self._open and k not in self._fresh:
                targets[k] = at
                del self._open[k]
        closed = self._closing_rows(targets)
        self.counts.gone += len(closed)
        return self._numbered(out + closed)

    def finish(self) -> list[Row]:
        """At the end of the stream: the versions that start history, if this run starts it;
        logs what the run did."""
        if self._finished:
            return []
        self._finished = True
        out: list[Row] = []
        if self._open is None:  # no record this run: a missing table, or a repair, matters
            several = self._keys_open_more_than_once()
            if several is None:
                self._starting = True
                out = [self._from_current(row) for row in self._read_rows(self.table, None)]
                self.counts.started += len(out)
            else:
                out = self._closing_rows(dict.fromkeys(several))
        elif self._starting and self._start_pending:
            out = self._start_rows()
            self.counts.started += len(out)
        self.report()
        return self._numbered(out)

    @property
    def starts_history(self) -> bool:
        """Whether `<table>_history` did not exist when this run first looked."""
        return self._exists is False

    def report(self) -> None:
        """What this run did to the stream's history, in the log (`HistoryCounts.report`)."""
        self.counts.report(self._log, self.table, self.version)

    # -- reading the destination --------------------------------------------------------------

    def _prepare(self) -> list[Row]:
        """First look at the destination: the open versions, or, when the history table does not
        exist, the current table's rows as the versions that start history. Returns rows that
        repair history (a key left with several open versions gets the earlier ones closed)."""
        if self._open is not None:
            return []
        found = self._read_open_versions()
        self._exists = found is not None
        if found is not None:
            self._open, several = found
            return self._closing_rows(dict.fromkeys(several))
        self._open = {}
        self._starting = True
        self._read_current_versions()
        return []

    def _keys_open_more_than_once(self) -> list[Any] | None:
        """Keys with several open versions (a run that saw two versions of a key leaves them);
        None when the history table does not exist."""
        with self.pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(self.history_table)
            key, until = (client.escape_column_name(c) for c in (self._key_column, VALID_TO))
            try:
                rows = client.execute_sql(
                    f"SELECT {key} FROM {qualified} WHERE {until} IS NULL"
                    f" GROUP BY {key} HAVING count(*) > 1"
                )
            except DatabaseUndefinedRelation:
                self._exists = False
                return None
        self._exists = True
        return [row[0] for row in rows or []]

    def _read_open_versions(
        self,
    ) -> tuple[dict[Any, tuple[dt.datetime, int | None]], set[Any]] | None:
        """`key -> (_valid_from, _version_hash)` of the open versions, and the keys with more
        than one; None when the history table does not exist."""
        with self.pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(self.history_table)
            k, since, digest, until = (
                client.escape_column_name(c)
                for c in (self._key_column, VALID_FROM, VERSION_HASH, VALID_TO)
            )
            try:
                rows = client.execute_sql(
                    f"SELECT {k}, {since}, {digest} FROM {qualified} WHERE {until} IS NULL"
                )
            except DatabaseUndefinedRelation:
                return None
        versions: dict[Any, tuple[dt.datetime, int | None]] = {}
        several: set[Any] = set()
        for key, valid_from, version_hash in rows or []:
            earlier = versions.get(key)
            if earlier is not None:
                several.add(key)
                if earlier[0] > valid_from:
                    continue
            versions[key] = (valid_from, version_hash)
        return versions, several

    def _read_current_versions(self) -> None:
        """The run that starts history: the current table's rows as the versions so far."""
        assert self._open is not None
        for row in self._read_rows(self.table, None):
            k, since = row[self._key_column], row[self._version_column]
            self._start_pending[k] = since
            if row.get(DELETED_AT_COLUMN) is None:
                self._open[k] = (since, self._hasher.of_stored(row))

    def _read_rows(self, table: str, keys: Collection[Any] | None) -> Iterable[Row]:
        """Rows of `table` (`keys` only, if given; open versions only, for the history table),
        dlt's own columns left out and JSON decoded."""
        history = table == self.history_table
        with self.pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(table)
            key = client.escape_column_name(self._key_column)
            until = client.escape_column_name(VALID_TO)
            literal = client.capabilities.escape_literal
            where = [f"{until} IS NULL"] if history else []
            if keys is None:
                queries = [" AND ".join(where)]
            else:
                ordered = list(keys)
                queries = []
                for i in range(0, len(ordered), _CHUNK):
                    listed = ", ".join(literal(k) for k in ordered[i : i + _CHUNK])
                    queries.append(" AND ".join([*where, f"{key} IN ({listed})"]))
            for condition in queries:
                sql = f"SELECT * FROM {qualified}" + (f" WHERE {condition}" if condition else "")
                try:
                    with client.execute_query(sql) as cursor:
                        names = [d[0] for d in cursor.description]
                        while batch := cursor.fetchmany(_FETCH):
                            for values in batch:
                                yield self._decoded(names, values)
                except DatabaseUndefinedRelation:
                    return  # no current table yet: nothing to start history with

    def _decoded(self, names: list[str], values: Sequence[Any]) -> Row:
        row: Row = {}
        json_columns = self._json
        for name, value in zip(names, values, strict=True):
            if name.startswith("_dlt_"):
                continue
            if name in json_columns and isinstance(value, str):
                value = json.loads(value)
            row[name] = value
        return row

    # -- rows ------------------------------------------------------------------------------------

    def _closing_rows(self, targets: Mapping[Any, dt.datetime | None]) -> list[Row]:
        """For each key of `targets`: its open versions closed, each at the next one's
        `_valid_from`, the latest at `targets[key]` (None: the latest stays open)."""
        if not targets:
            return []
        found: dict[Any, list[Row]] = {}
        source = self.table if self._starting else self.history_table
        for row in self._read_rows(source, list(targets)):
            if self._starting:
                row = self._from_current(row)
                if row[VALID_TO] is not None:
                    continue  # marked deleted in the current table: already a closed version
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
                self._written(k, row[VALID_FROM])
        return out

    def _from_current(self, row: Row) -> Row:
        """A current table's row as its history row (open, or closed at `_sdc_deleted_at`)."""
        out = {n: v for n, v in row.items() if n not in (DELETED_AT_COLUMN, SEQUENCE_COLUMN)}
        out[VALID_FROM] = row[self._version_column]
        out[VALID_TO] = row.get(DELETED_AT_COLUMN)
        out[VERSION_HASH] = self._hasher.of_stored(row)
        return out

    def _start_rows(self) -> list[Row]:
        """The current table's rows not yet written by this run, as the versions so far."""
        pending = self._start_pending
        out = []
        for row in self._read_rows(self.table, None):
            k = row[self._key_column]
            if k in pending and pending[k] == row[self._version_column]:
                out.append(self._from_current(row))
        pending.clear()
        return out

    def _written(self, key: Any, since: Any) -> None:
        """A row with primary key (key, since) is in this run's package."""
        pending = self._start_pending
        if pending and key in pending and pending[key] == since:
            del pending[key]

    def _numbered(self, rows: list[Row]) -> list[Row]:
        """`_sdc_sequence` in the order the rows were made (the later copy of a version wins)."""
        for row, number in zip(rows, self._sequence.take(len(rows)), strict=True):
            row[SEQUENCE_COLUMN] = number
        return rows
