"""What a bridge run loaded (`LoadSummary`) and its human-readable lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadSummary", "format_summary"]


@dataclass
class LoadSummary:
    records: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    state_committed: bool = False
    last_state: Any = None
    destination: str = ""
    dataset_name: str = ""
    location: str = ""
    seconds: float = 0.0
    unknown_messages: int = 0


def format_summary(summary: LoadSummary) -> str:
    """Human-readable summary lines."""
    lines = []
    ids = ", ".join(summary.load_ids) or "none"
    where = summary.destination
    if summary.location:
        where += f" at {summary.location}"
    lines.append(f"loaded to {where}, dataset {summary.dataset_name!r}, load id(s) {ids}")
    width = max((len(t) for t in summary.rows_by_table), default=0)
    for table, rows in sorted(summary.rows_by_table.items()):
        lines.append(f"  {table:<{width}}  {rows:>10,} rows")
    rate = summary.records / summary.seconds if summary.seconds > 0 else 0.0
    lines.append(
        f"{summary.records:,} records in {summary.seconds:.1f} s ({rate:,.0f} rec/s);"
        f" state {'committed' if summary.state_committed else 'unchanged (no STATE received)'}"
    )
    return "\n".join(lines)
