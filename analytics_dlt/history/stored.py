"""What the destination holds of a stream's history (or current table), read with the
pipeline's SQL client: the statements of `analytics_dlt.history.tracker`."""

from __future__ import annotations

import datetime as dt
import json
import weakref
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import dlt
import orjson
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from analytics_dlt.history.tables import VALID_FROM, VALID_TO, VERSION_HASH

Row = dict[str, Any]
OpenVersions = dict[Any, tuple[dt.datetime, int | None]]

_CHUNK = 2000
"""Keys per `IN (...)` list."""
_FETCH = 5000
"""Rows fetched at a time."""


class Missing(Exception):
    """The table does not exist (yet)."""


_CLIENTS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def sql_client(pipeline: dlt.Pipeline) -> Any:
    """The pipeline's SQL client, made once per pipeline, destination and dataset (dlt resolves
    the destination's configuration for each `pipeline.sql_client()`: ~30 ms); each `with` opens
    and closes its own connection."""
    place = (pipeline.destination, pipeline.dataset_name)
    cached = _CLIENTS.get(pipeline)
    if cached is None or cached[0] != place:
        cached = _CLIENTS[pipeline] = (place, pipeline.sql_client())
    return cached[1]


def _in_lists(client: Any, column: str, keys: Sequence[Any]) -> Iterator[str]:
    literal = client.capabilities.escape_literal
    for i in range(0, len(keys), _CHUNK):
        yield f"{column} IN ({', '.join(literal(k) for k in keys[i : i + _CHUNK])})"


def open_versions(
    pipeline: dlt.Pipeline, table: str, key_column: str, keys: Sequence[Any] | None
) -> tuple[OpenVersions, set[Any]]:
    """`key -> (_valid_from, _version_hash)` of the open versions of `keys` (None: all) in the
    history `table`, and the keys with more than one (the latest is kept). Raises `Missing`."""
    versions: OpenVersions = {}
    several: set[Any] = set()
    with sql_client(pipeline) as client:
        qualified = client.make_qualified_table_name(table)
        k, since, digest, until = (
            client.escape_column_name(c) for c in (key_column, VALID_FROM, VERSION_HASH, VALID_TO)
        )
        sql = f"SELECT {k}, {since}, {digest} FROM {qualified} WHERE {until} IS NULL"
        queries = [sql] if keys is None else [f"{sql} AND {c}" for c in _in_lists(client, k, keys)]
        for query in queries:
            try:
                rows = client.execute_sql(query)
            except DatabaseUndefinedRelation:
                raise Missing(table) from None
            for key, valid_from, version_hash in rows or []:
                earlier = versions.get(key)
                if earlier is not None:
                    several.add(key)
                    if earlier[0] > valid_from:
                        continue
                versions[key] = (valid_from, version_hash)
    return versions, several


def keys_open_more_than_once(pipeline: dlt.Pipeline, table: str, key_column: str) -> list[Any]:
    """Keys with several open versions in the history `table`. Raises `Missing`."""
    with sql_client(pipeline) as client:
        qualified = client.make_qualified_table_name(table)
        key, until = (client.escape_column_name(c) for c in (key_column, VALID_TO))
        try:
            rows = client.execute_sql(
                f"SELECT {key} FROM {qualified} WHERE {until} IS NULL"
                f" GROUP BY {key} HAVING count(*) > 1"
            )
        except DatabaseUndefinedRelation:
            raise Missing(table) from None
    return [row[0] for row in rows or []]


def rows_of(
    pipeline: dlt.Pipeline,
    table: str,
    key_column: str,
    keys: Collection[Any] | None,
    *,
    open_only: bool,
    json_columns: Collection[str],
) -> Iterator[Row]:
    """Rows of `table` (`keys` only, if given; `_valid_to` null only, with `open_only`), dlt's
    own columns left out, `json_columns` decoded. Raises `Missing` before the first row."""
    with sql_client(pipeline) as client:
        qualified = client.make_qualified_table_name(table)
        key = client.escape_column_name(key_column)
        where = [f"{client.escape_column_name(VALID_TO)} IS NULL"] if open_only else []
        if keys is None:
            queries = [" AND ".join(where)]
        else:
            queries = [" AND ".join([*where, c]) for c in _in_lists(client, key, list(keys))]
        for condition in queries:
            sql = f"SELECT * FROM {qualified}" + (f" WHERE {condition}" if condition else "")
            try:
                with client.execute_query(sql) as cursor:
                    names = [d[0] for d in cursor.description]
                    while batch := cursor.fetchmany(_FETCH):
                        for values in batch:
                            yield _decoded(names, values, json_columns)
            except DatabaseUndefinedRelation:
                raise Missing(table) from None


def _decoded(names: list[str], values: Sequence[Any], json_columns: Collection[str]) -> Row:
    row: Row = {}
    for name, value in zip(names, values, strict=True):
        if name.startswith("_dlt_"):
            continue
        if name in json_columns and isinstance(value, str):
            value = _json_loads(value)
        row[name] = value
    return row


def _json_loads(text: str) -> Any:
    try:
        return orjson.loads(text)  # several times faster than json's
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits
        return json.loads(text)
