"""Deletions for both engines: the `_sdc_deleted_at` column and the rows that delete or mark.

Shared by the Singer bridge (`dlt_bridge.deletes`, on ACTIVATE_VERSION) and the native source
(`analytics_source.helpers`, after a stream's complete scan), so both make the same tables:

* `off` (default): nothing is deleted; tables have no `_sdc_deleted_at` column added.
* `soft`: every table with a key gets a nullable `_sdc_deleted_at` timestamp column. A key that
  is live in the destination but absent from the run's complete set is loaded again with its
  stored values and `_sdc_deleted_at` = the run's time. A row sent again later has it null.
* `hard`: the same column carries dlt's `hard_delete` hint; a key absent from the run's set is
  loaded as a tombstone (key, `_sdc_sequence`, `_sdc_deleted_at`), which dlt's `delete-insert`
  merge deletes from the table and never inserts.

The tombstones are ordinary rows of the run's load package, so they are committed with the run's
other rows and its state, or not at all. The live keys are read from the destination before the
tombstones are made (`live_keys`), with the destination's SQL client.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.exceptions import DatabaseException, DatabaseUndefinedRelation

from analytics_api.limits import DELETE_MODES as CONTRACT_DELETE_MODES
from analytics_dlt.hints import MERGE_STRATEGY, SEQUENCE_COLUMN, destination_column_name

__all__ = [
    "DELETED_AT_COLUMN",
    "DELETE_MODES",
    "DeleteMode",
    "check_delete_mode",
    "deleted_at_column",
    "live_keys",
    "merge_problem",
    "tombstones",
    "with_deleted_at",
]

DeleteMode = Literal["off", "soft", "hard"]
DELETE_MODES = CONTRACT_DELETE_MODES
DELETED_AT_COLUMN = "_sdc_deleted_at"
"""Timestamp (UTC) at which a row was found deleted upstream; null for live rows."""

_CHUNK = 500
"""Keys per `IN (...)` list when reading back the rows to mark."""


def check_delete_mode(mode: str) -> DeleteMode:
    if mode not in DELETE_MODES:
        raise ValueError(f"deletes must be one of {', '.join(DELETE_MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


def deleted_at_column(mode: DeleteMode) -> TColumnSchema:
    """The `_sdc_deleted_at` column hint: `hard_delete` in hard mode (explicitly off in soft)."""
    return {
        "name": DELETED_AT_COLUMN,
        "data_type": "timestamp",
        "timezone": True,
        "nullable": True,
        "hard_delete": mode == "hard",
    }


def with_deleted_at(hints: Mapping[str, Any], mode: DeleteMode) -> dict[str, Any]:
    """`table_hints(...)` plus the `_sdc_deleted_at` column (merge tables, soft/hard mode only)."""
    out = dict(hints)
    if mode == "off" or not out.get("primary_key"):
        return out
    out["columns"] = {**out["columns"], DELETED_AT_COLUMN: deleted_at_column(mode)}
    return out


def merge_problem(pipeline: dlt.Pipeline) -> str | None:
    """Why the pipeline's destination cannot apply deletions (None when it can)."""
    destination = pipeline.destination
    if destination is None:
        return "no destination is configured"
    strategies = destination.capabilities().supported_merge_strategies or []
    if MERGE_STRATEGY not in strategies:
        return (
            f"destination {destination.destination_name!r} cannot merge with the"
            f" {MERGE_STRATEGY!r} strategy that deletions need (it supports:"
            f" {', '.join(strategies) or 'none'})"
        )
    return None


def live_keys(pipeline: dlt.Pipeline, table: str, key: str, mode: DeleteMode) -> set[Any]:
    """Keys of `table` the run may delete or mark: soft, those not marked yet; hard, all.

    Empty when the table does not exist yet (a first run deletes nothing).
    """
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(destination_column_name(table))
        column = client.escape_column_name(destination_column_name(key))
        every = f"SELECT {column} FROM {qualified}"
        deleted = client.escape_column_name(DELETED_AT_COLUMN)
        try:
            rows = client.execute_sql(
                every if mode == "hard" else f"{every} WHERE {deleted} IS NULL"
            )
        except DatabaseUndefinedRelation:
            return set()  # no table yet: nothing to delete
        except DatabaseException:  # the table has no _sdc_deleted_at column yet: all are live
            rows = client.execute_sql(every)
    return {row[0] for row in rows or []}


def tombstones(
    pipeline: dlt.Pipeline,
    table: str,
    key: str,
    missing: Collection[Any],
    mode: DeleteMode,
    deleted_at: dt.datetime,
    sequence: Iterable[int],
    json_columns: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The rows that delete (`hard`) or mark (`soft`) the keys `missing` of `table`.

    Hard: key, `_sdc_sequence`, `_sdc_deleted_at` only. Soft: the stored row read back (dlt's
    own `_dlt_*` columns left out), with a new `_sdc_sequence` and `_sdc_deleted_at` set;
    `json_columns` (destination names) are decoded so they load as the same JSON again.
    """
    if not missing:
        return []
    key_column = destination_column_name(key)
    numbers = iter(sequence)
    if mode == "hard":
        return [
            {key_column: k, SEQUENCE_COLUMN: next(numbers), DELETED_AT_COLUMN: deleted_at}
            for k in missing
        ]
    rows: list[dict[str, Any]] = []
    keys = list(missing)
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(destination_column_name(table))
        column = client.escape_column_name(key_column)
        literal = client.capabilities.escape_literal
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            values = ", ".join(literal(k) for k in chunk)
            with client.execute_query(
                f"SELECT * FROM {qualified} WHERE {column} IN ({values})"
            ) as cursor:
                names = [d[0] for d in cursor.description]
                for values_row in cursor.fetchall():
                    row = {
                        n: _decoded(n, v, json_columns)
                        for n, v in zip(names, values_row, strict=True)
                        if not n.startswith("_dlt_")
                    }
                    row[SEQUENCE_COLUMN] = next(numbers)
                    row[DELETED_AT_COLUMN] = deleted_at
                    rows.append(row)
    return rows


def _decoded(name: str, value: Any, json_columns: Collection[str]) -> Any:
    if name in json_columns and isinstance(value, str):
        return json.loads(value)
    return value


def json_columns_of(columns: Mapping[str, Any]) -> frozenset[str]:
    """Destination names of the `json` columns among table hints' `columns`."""
    return frozenset(
        destination_column_name(name)
        for name, column in columns.items()
        if column.get("data_type") == "json"
    )


def run_time() -> dt.datetime:
    """The run's deletion time: now, UTC, to the microsecond (what the destination stores)."""
    return dt.datetime.now(dt.timezone.utc)
