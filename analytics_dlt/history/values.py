"""A version's values as the destination holds them: its instant and its hash."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from dlt.common.schema.typing import TColumnSchema

from analytics_api.timestamps import TimestampError, canonical, canonical_from_datetime
from analytics_dlt.hints import destination_column_name
from analytics_dlt.history.tables import NOT_RECORD


def microsecond_text(value: str) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) of an RFC 3339 timestamp: what a destination keeps.

    dlt truncates a 7th-9th fractional digit; so does this. Raises `TimestampError`.
    """
    if len(value) >= 20 and value[-1] == "Z" and value[19] in ".Z" and value[10] == "T":
        return f"{value[:19]}.{(value[20:-1] + '000000')[:6]}"  # the API's own form
    return canonical(value)[:26]


def _datetime_text(value: dt.datetime) -> str:
    return canonical_from_datetime(value)[:26]


def instant(value: Any) -> dt.datetime:
    """A replication key value (RFC 3339 text or a datetime) as an aware UTC datetime, to the
    microsecond, comparable with what the destination returns."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(dt.timezone.utc)
    return dt.datetime.fromisoformat(microsecond_text(str(value)) + "+00:00")


class VersionHasher:
    """`_version_hash`: 64 bits of BLAKE2b over a version's values as the destination holds them.

    The same for a record as received (`of_record`, property names, RFC 3339 text, JSON values)
    and for a row read back (`of_stored`, column names, datetimes, JSON text or objects), so a
    version recorded from the current table compares with the same record read from the API.
    Timestamps count to the microsecond, numbers of `double` columns as floats, JSON with sorted
    keys; columns of ours (`_sdc_*`, `_valid_*`, `_dlt_*`) and fields outside the hints do not
    count.
    """

    __slots__ = ("_double", "_names", "_stored", "_time")

    def __init__(self, columns: Mapping[str, TColumnSchema]) -> None:
        names = [n for n in columns if n not in NOT_RECORD and not n.startswith("_dlt_")]
        kinds = [columns[n].get("data_type") for n in names]
        self._names = tuple(names)
        self._stored = tuple(destination_column_name(n) for n in names)
        self._time = tuple(i for i, k in enumerate(kinds) if k == "timestamp")
        self._double = tuple(i for i, k in enumerate(kinds) if k == "double")

    def of_record(self, record: Mapping[str, Any]) -> int:
        get = record.get
        values = [get(n) for n in self._names]
        for i in self._time:
            v = values[i]
            if v.__class__ is str:
                if len(v) >= 20 and v[-1] == "Z" and v[10] == "T" and v[19] in ".Z":
                    values[i] = f"{v[:19]}.{(v[20:-1] + '000000')[:6]}"  # microsecond_text
                else:
                    values[i] = _text_or_itself(v)
            elif isinstance(v, dt.datetime):
                values[i] = _datetime_text(v)
        return self._digest(values)

    def of_stored(self, row: Mapping[str, Any]) -> int:
        """A row read back, by column name, JSON columns already decoded."""
        get = row.get
        values = [get(n) for n in self._stored]
        for i in self._time:
            v = values[i]
            if isinstance(v, dt.datetime):
                values[i] = _datetime_text(v)
        return self._digest(values)

    def _digest(self, values: list[Any]) -> int:
        for i in self._double:
            v = values[i]
            if v is not None and not isinstance(v, bool) and isinstance(v, (int, float)):
                values[i] = float(v)
        data = _dumps(values, option=_SORTED, default=str)
        return _from_bytes(_blake2b(data, digest_size=8).digest(), "big", signed=True)


_dumps, _SORTED = orjson.dumps, orjson.OPT_SORT_KEYS
_blake2b, _from_bytes = hashlib.blake2b, int.from_bytes


def _text_or_itself(value: str) -> str:
    """`microsecond_text`, or the value itself when it is not a timestamp (dlt refuses it or
    makes a variant column; hashed as it is)."""
    try:
        return microsecond_text(value)
    except TimestampError:
        return value
