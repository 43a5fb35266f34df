"""Batches of checked records -> pyarrow tables with the same columns dlt would make from dicts.

dlt normalizes lists of dicts row by row in Python (type coercion, timestamp parsing, json
serialization): ~2.5 s per 100,000 records, the largest part of a bridge run. Arrow tables skip
that step: dlt writes them to parquet at extract and normalize only adds `_dlt_load_id` and
`_dlt_id` (`normalize.parquet_normalizer.add_dlt_*`, defaults of `analytics_dlt.defaults`;
`arrow_matches_dicts` says whether a pipeline has them). Both engines hand their batches this way
(the bridge as they come, the native source after dlt's incremental filter), and their history
rows (`analytics_dlt.history`).

The tables must come out identical to the dict path's, so a batch becomes an arrow table only
when every value converts the way dlt's own normalizer would convert it:

* columns of types `text`, `bigint`, `double`, `bool`, `json`, `timestamp` (with time zone) and
  `date` only (a stream with another column type keeps the dict path);
* no field outside the stream's declared columns (dlt infers those: dict path);
* json columns hold only objects, arrays or null (dlt turns a string or number in a json column
  into a variant column: dict path); they are serialized with dlt's own `json.dumps`, as its
  parquet writer does;
* timestamps are parsed by arrow to nanoseconds, floored to microseconds (dlt truncates the 7th-9th
  fractional digits, which is the same) and kept in UTC; a string arrow cannot parse sends the
  batch down the dict path, where dlt parses it (or makes the variant column it always made);
* any other conversion error (a bigint too large for an exact double, a non-string in a text
  key column, ...) also sends the batch down the dict path.

`to_arrow` returns None whenever the dict path must be used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dlt

from analytics_dlt.compat import dlt_json_dumps
from analytics_dlt.defaults import default_for

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ArrowBatcher", "arrow_matches_dicts"]

_SUPPORTED = {"text", "bigint", "double", "bool", "json", "timestamp", "date"}
_JSON_TYPES = (dict, list)


@functools.cache
def _arrow_types() -> dict[str, Any]:
    """Arrow types of the dlt data types converted directly (pyarrow is imported on first use:
    a run without rows never needs it)."""
    import pyarrow as pa

    return {
        "text": pa.string(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "ts_ns": pa.timestamp("ns", tz="UTC"),
        "ts_us": pa.timestamp("us", tz="UTC"),
    }


class ArrowBatcher:
    """Converts lists of records of one stream (one set of column hints) to pyarrow tables."""

    __slots__ = ("_direct_schema", "_fields", "_json", "_names", "_post", "_schema", "enabled")

    def __init__(self, columns: Mapping[str, Mapping[str, Any]]) -> None:
        self.enabled = all(
            c.get("data_type") in _SUPPORTED
            and (c.get("data_type") != "timestamp" or c.get("timezone", True))
            and not c.get("precision")
            and not c.get("scale")
            for c in columns.values()
        )
        import pyarrow as pa

        types = _arrow_types()
        self._names = frozenset(columns)
        fields: list[pa.Field] = []
        direct: list[pa.Field] = []
        self._json: list[str] = []
        self._post: list[tuple[str, str]] = []
        for name, column in columns.items():
            data_type = str(column.get("data_type"))
            nullable = bool(column.get("nullable", True))
            if data_type in ("text", "bigint", "double", "bool"):
                arrow_type = types[data_type]
                direct.append(pa.field(name, arrow_type, nullable=nullable))
            elif data_type == "json":
                arrow_type = pa.string()
                self._json.append(name)
            elif data_type == "timestamp":
                arrow_type = types["ts_us"]
                direct.append(pa.field(name, pa.string(), nullable=nullable))
                self._post.append((name, data_type))
            elif data_type == "date":
                arrow_type = pa.date32()
                direct.append(pa.field(name, pa.string(), nullable=nullable))
                self._post.append((name, data_type))
            else:
                arrow_type = pa.null()
            fields.append(pa.field(name, arrow_type, nullable=nullable))
        self._fields = fields
        self._schema = pa.schema(fields)
        self._direct_schema = pa.schema(direct)

    def to_arrow(self, rows: Sequence[Mapping[str, Any]]) -> pa.Table | None:
        """The batch as a table in column-hint order, or None: use the dict path for it."""
        if not self.enabled or not rows:
            return None
        import pyarrow as pa
        import pyarrow.compute as pc

        if not set().union(*rows) <= self._names:
            return None  # a field outside the declared columns: dlt infers its type
        try:
            direct = pa.Table.from_pylist(rows, schema=self._direct_schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            return None
        arrays: dict[str, pa.Array | pa.ChunkedArray] = {
            name: direct.column(name) for name in direct.column_names
        }
        dumps = dlt_json_dumps
        for name in self._json:
            values: list[str | None] = []
            append = values.append
            for row in rows:
                value = row.get(name)
                if value is None:
                    append(None)
                elif type(value) in _JSON_TYPES:
                    append(dumps(value))
                else:
                    return None  # dlt makes a variant column of a scalar in a json column
            arrays[name] = pa.array(values, pa.string())
        try:
            for name, data_type in self._post:
                if data_type == "timestamp":
                    parsed = pc.cast(arrays[name], _arrow_types()["ts_ns"])
                    arrays[name] = pc.cast(
                        pc.floor_temporal(parsed, unit="microsecond"),
                        _arrow_types()["ts_us"],
                        safe=False,
                    )
                else:
                    arrays[name] = pc.cast(arrays[name], pa.date32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return pa.Table.from_arrays([arrays[f.name] for f in self._fields], schema=self._schema)


def arrow_matches_dicts(pipeline: Any) -> bool:
    """Whether rows handed to `pipeline` as arrow tables load as the same rows handed as dicts.

    dlt adds `_dlt_load_id` and `_dlt_id` to arrow tables only when
    `normalize.parquet_normalizer.add_dlt_load_id` and `add_dlt_id` are true (the defaults
    `analytics_dlt.defaults` gives the pipelines it makes; dlt's own are false), and only in this
    process: subprocesses (`normalize.workers` above 1) see dlt's config sources, not those
    defaults. Otherwise an engine hands dicts only.
    """
    name = pipeline.pipeline_name
    workers = _setting(name, "normalize.workers")
    try:
        if workers is not None and int(workers) > 1:
            return False
    except (TypeError, ValueError):
        return False  # unparsable: dlt reports it in normalize
    return all(
        _setting(name, f"normalize.parquet_normalizer.{flag}") in (True, "true", "True")
        for flag in ("add_dlt_load_id", "add_dlt_id")
    )


def _setting(pipeline_name: str, key: str) -> Any:
    """A dlt setting as dlt resolves it for the pipeline: under its name first, then plain, then
    the bridge's default for it (`analytics_dlt.defaults`)."""
    for candidate in (f"{pipeline_name}.{key}", key):
        try:
            value: Any = dlt.config.get(candidate)
        except Exception:  # unparsable: dlt reports it where it reads it
            continue
        if value is not None:
            return value
    return default_for(pipeline_name, key)
