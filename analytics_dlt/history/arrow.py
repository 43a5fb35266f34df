"""History rows as pyarrow tables: dlt writes them as parquet without normalizing dicts row by
row (where `analytics_dlt.arrow.arrow_matches_dicts` allows it).

* `opening_table`: the open rows of new versions, from the arrow table of their batch (as the
  engine hands it to dlt) plus four columns;
* `rows_table`: rows read back from the destination (closing rows), converted column by column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analytics_dlt.hints import SEQUENCE_COLUMN, destination_column_name
from analytics_dlt.history.tables import VALID_FROM, VALID_TO, VERSION_HASH

if TYPE_CHECKING:
    import pyarrow as pa

    from analytics_dlt.history.report import Changes

_OURS = (VALID_FROM, VALID_TO, VERSION_HASH, SEQUENCE_COLUMN)


def opening_table(
    table: pa.Table, batch: Changes, version: str, columns: Mapping[str, Any]
) -> pa.Table | None:
    """`batch.opened`'s rows of `table` (the batch's records) with the history table's columns
    (`columns`, the history hints' columns in order); None when `table` lacks a record column
    (use the dicts)."""
    import pyarrow as pa

    record_columns = [name for name in columns if name not in _OURS]
    names = set(table.column_names)
    if version not in names or not all(name in names for name in record_columns):
        return None
    if len(batch.opened) == table.num_rows:
        rows = table
    else:
        rows = table.take(pa.array(batch.opened, pa.int64()))
    since = rows.column(version)
    fields = [rows.schema.field(name) for name in record_columns]
    arrays = [rows.column(name) for name in record_columns]
    fields += [
        pa.field(VALID_FROM, since.type, nullable=False),
        pa.field(VALID_TO, since.type, nullable=True),
        pa.field(VERSION_HASH, pa.int64(), nullable=True),
        pa.field(SEQUENCE_COLUMN, pa.int64(), nullable=False),
    ]
    arrays += [
        since,
        pa.nulls(rows.num_rows, since.type),
        pa.array(batch.digests, pa.int64()),
        pa.array(batch.numbers, pa.int64()),
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


_ARROW_TYPES = {"text": "string", "bigint": "int64", "double": "float64", "bool": "bool_"}


def rows_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, Any]) -> pa.Table | None:
    """History rows read back from the destination (column names, datetimes, decoded JSON) as a
    pyarrow table with the history hints' columns (`columns`); None when a row holds a column the
    hints do not declare, or a value arrow does not take as the hint's type (use the dicts)."""
    import pyarrow as pa

    from analytics_dlt.compat import dlt_json_dumps

    stored = {destination_column_name(name): name for name in columns}
    if not rows or any(not row.keys() <= stored.keys() for row in rows):
        return None
    arrays, fields = [], []
    try:
        for column, name in stored.items():
            kind = columns[name].get("data_type")
            values = [row.get(column) for row in rows]
            if kind == "timestamp":
                arrow_type = pa.timestamp("us", tz="UTC")
            elif kind == "json":
                arrow_type = pa.string()
                values = [None if v is None else dlt_json_dumps(v) for v in values]
            elif kind in _ARROW_TYPES:
                arrow_type = getattr(pa, _ARROW_TYPES[kind])()
            else:
                return None
            arrays.append(pa.array(values, arrow_type))
            fields.append(pa.field(name, arrow_type, nullable=columns[name].get("nullable", True)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        return None
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
