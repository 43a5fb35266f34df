"""The history tables' names, columns and hints (see `analytics_dlt.history`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from analytics_dlt.deletions import DELETED_AT_COLUMN
from analytics_dlt.hints import MERGE_STRATEGY, SEQUENCE_COLUMN

HISTORY_SUFFIX = "_history"
VALID_FROM = "_valid_from"
VALID_TO = "_valid_to"
VERSION_HASH = "_version_hash"
NOT_RECORD = (SEQUENCE_COLUMN, DELETED_AT_COLUMN, VALID_FROM, VALID_TO, VERSION_HASH)


def history_table_name(table: str) -> str:
    """`applications` -> `applications_history`."""
    return table + HISTORY_SUFFIX


def is_history_table(table: str) -> bool:
    return table.endswith(HISTORY_SUFFIX)


def without_resource_columns(resource: Any, table: str) -> None:
    """Give `resource` a `<table>_history` variant whose columns are only the history rows' own.

    dlt starts a table variant from its resource's hints and merges the columns it is given into
    them: the history table of a resource with column hints would get every column the resource
    declares (`_sdc_deleted_at` in deletion mode). Empty columns set first replace them.
    """
    resource.apply_hints(
        table_name=history_table_name(table), columns={}, create_table_variant=True
    )


def version_column(
    stream: str, properties: Collection[str], bookmark_properties: Sequence[str] | None = None
) -> str | None:
    """The property whose value dates a version of `stream`'s records, or None.

    The stream's replication key: the one a Singer SCHEMA names (`bookmark_properties`), else the
    contract's (`analytics_api.streams`), provided the schema has that property.
    """
    from analytics_api.streams import STREAMS_BY_NAME

    candidates = list(bookmark_properties or [])
    if stream in STREAMS_BY_NAME:
        candidates.append(STREAMS_BY_NAME[stream].replication_key)
    for name in candidates:
        if name in properties:
            return name
    return None


def history_hints(table: str, columns: Mapping[str, TColumnSchema], key: str) -> dict[str, Any]:
    """`make_hints` arguments of `<table>_history`, from the current table's column hints.

    The record's columns as the current table has them (keyed by property name, `key` NOT NULL),
    then `_valid_from`, `_valid_to`, `_version_hash` and `_sdc_sequence`; primary key (`key`,
    `_valid_from`), merged with `delete-insert` (the last copy of a version in a load wins).
    """
    out: TTableSchemaColumns = {}
    for name, column in columns.items():
        if name in NOT_RECORD:
            continue
        copy: TColumnSchema = {**column}  # type: ignore[typeddict-item]
        copy.pop("primary_key", None)
        if name == key:
            copy["nullable"] = False
            copy["primary_key"] = True
        out[name] = copy
    out[VALID_FROM] = {
        "name": VALID_FROM,
        "data_type": "timestamp",
        "timezone": True,
        "nullable": False,
        "primary_key": True,
        "description": "when this version was made upstream (its replication key value)",
    }
    out[VALID_TO] = {
        "name": VALID_TO,
        "data_type": "timestamp",
        "timezone": True,
        "nullable": True,
        "description": "when the next version was made, or the record found deleted; null: current",
    }
    out[VERSION_HASH] = {"name": VERSION_HASH, "data_type": "bigint", "nullable": True}
    out[SEQUENCE_COLUMN] = {
        "name": SEQUENCE_COLUMN,
        "data_type": "bigint",
        "nullable": False,
        "dedup_sort": "desc",
    }
    return {
        "table_name": history_table_name(table),
        "columns": out,
        "primary_key": [key, VALID_FROM],
        "write_disposition": {"disposition": "merge", "strategy": MERGE_STRATEGY},
    }
