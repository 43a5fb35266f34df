"""A batch's history rows as items for dlt: arrow tables where possible, else dicts.

Arrow tables skip dlt's row-by-row normalize (see `analytics_dlt.arrow`); an engine that may hand
them (`arrow_matches_dicts`) gives `batch_items` the batch as the arrow table it hands dlt. Anything
arrow cannot take as the history table's columns goes as dicts, which load the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analytics_dlt.hints import SEQUENCE_COLUMN
from analytics_dlt.history.arrow import opening_table, rows_table
from analytics_dlt.history.tables import VALID_FROM, VALID_TO, VERSION_HASH

if TYPE_CHECKING:
    import pyarrow as pa

    from analytics_dlt.history.report import Changes
    from analytics_dlt.history.tracker import StreamHistory

Row = dict[str, Any]


def batch_items(
    tracker: StreamHistory, records: Sequence[Mapping[str, Any]], table: pa.Table | None = None
) -> list[Any]:
    """Items for dlt with the history rows of a batch of records: the new versions' open rows
    and the rows closing the versions they replace (`tracker.changes`). `table`: the same batch
    as an arrow table, if the engine made one."""
    batch = tracker.changes(records)
    columns = tracker.hints["columns"]
    opened = None
    if table is not None and batch.opened:
        opened = opening_table(table, batch, tracker.version, columns)
    if opened is None:  # dicts: dlt normalizes them
        rows = batch.closing + opening_rows(records, batch, tracker.version)
        return [tracker.item(rows)] if rows else []
    items = [tracker.item(opened)]
    if batch.closing:
        closing = rows_table(batch.closing, columns)
        items.append(tracker.item(batch.closing if closing is None else closing))
    return items


def opening_rows(records: Sequence[Mapping[str, Any]], batch: Changes, version: str) -> list[Row]:
    """The open rows of the new versions `batch` found, as dicts (`version`: the replication
    key, the new `_valid_from`)."""
    out = []
    for index, digest, number in zip(batch.opened, batch.digests, batch.numbers, strict=True):
        row = dict(records[index])
        row[VALID_FROM] = row[version]
        row[VALID_TO] = None
        row[VERSION_HASH] = digest
        row[SEQUENCE_COLUMN] = number
        out.append(row)
    return out
