"""What a bridge run loaded (`LoadSummary`), per table, and its human-readable lines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dlt.destinations.exceptions import DatabaseUndefinedRelation

__all__ = ["LoadSummary", "TableCounts", "format_summary", "table_row_counts"]


@dataclass
class TableCounts:
    """Rows of one table in a run: new keys, updated keys, and keys marked deleted or deleted."""

    new: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass
class LoadSummary:
    records: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    """Rows written per table (new, updated and deletion rows alike)."""
    tables: dict[str, TableCounts] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    state_committed: bool = False
    last_state: Any = None
    destination: str = ""
    dataset_name: str = ""
    location: str = ""
    seconds: float = 0.0
    unknown_messages: int = 0

    def add(self, table: str, written: int, grown: int, deleted: int, *, removed: bool) -> None:
        """A loaded package's rows of `table`: `written` rows, of them `deleted` deletion rows
        (tombstones that `removed` rows with hard deletes, else rows marked deleted); the table
        `grown` by that many rows. New keys are the growth plus what the tombstones removed."""
        self.rows_by_table[table] = self.rows_by_table.get(table, 0) + written
        counts = self.tables.setdefault(table, TableCounts())
        new = grown + (deleted if removed else 0)
        counts.new += new
        counts.deleted += deleted
        counts.updated += written - deleted - new


def table_row_counts(pipeline: Any, tables: Iterable[str]) -> dict[str, int]:
    """`count(*)` of each table in the pipeline's dataset; 0 for a table not created yet."""
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in tables:
            try:
                rows = client.execute_sql(
                    f"select count(*) from {client.make_qualified_table_name(table)}"
                )
                counts[table] = int(rows[0][0]) if rows else 0
            except DatabaseUndefinedRelation:
                counts[table] = 0
    return counts


def format_summary(summary: LoadSummary) -> str:
    """The summary of a successful run: per table new/updated/deleted rows, then the totals."""
    lines = []
    where = summary.destination + (f" file {summary.location}" if summary.location else "")
    if summary.load_ids:
        ids = ", ".join(summary.load_ids)
        lines.append(f"loaded into {where}, dataset {summary.dataset_name}, load {ids}")
    else:
        lines.append(f"nothing new to load into {where}, dataset {summary.dataset_name}")
    if summary.tables:
        width = max(len("table"), *(len(t) for t in summary.tables))
        lines.append(f"  {'table':<{width}}  {'new':>9}  {'updated':>9}  {'deleted':>9}")
        for table, c in sorted(summary.tables.items()):
            lines.append(f"  {table:<{width}}  {c.new:>9,}  {c.updated:>9,}  {c.deleted:>9,}")
    if not summary.load_ids:
        state = "state unchanged"
    elif summary.state_committed:
        state = "state committed"
    else:
        state = "no STATE received, state unchanged"
    lines.append(f"{summary.records:,} records in {summary.seconds:.1f} s; {state}")
    return "\n".join(lines)
