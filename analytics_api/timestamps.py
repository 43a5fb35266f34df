"""Timestamps in one canonical form, so that string order is time order.

The API sends RFC 3339 UTC timestamps with 0 to 9 fractional digits. Compared as raw strings,
``...:00Z`` sorts after ``...:00.5Z`` (``Z`` > ``.``), so bookmarks go wrong. Every comparison in
either engine goes through :func:`canonical`, which yields a fixed-width UTC form with nanoseconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from typing import Any

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\d*"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)


class TimestampError(ValueError):
    """A value that is not an RFC 3339 / ISO 8601 timestamp."""


_UTC_FORM = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
    r"(?:\.([0-9]{1,9}))?Z"
)
"""What the API sends: UTC, `T`, `Z`, 0-9 fractional digits; the time's ranges in the pattern."""
_VALID_DATES: set[str] = set()
_MAX_VALID_DATES = 8192


def _valid_date(date: str) -> bool:
    """`YYYY-MM-DD` is a real date (remembered: a run sees a few hundred distinct dates)."""
    if date in _VALID_DATES:
        return True
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        return False
    if len(_VALID_DATES) < _MAX_VALID_DATES:
        _VALID_DATES.add(date)
    return True


def canonical(value: str) -> str:
    """Return ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC, 9 digits) for an ISO 8601 timestamp.

    A missing offset is read as UTC. A date alone (``2024-01-31``) is midnight UTC.
    """
    match = _UTC_FORM.fullmatch(value) if type(value) is str else None
    if match is not None:  # the common form, once per record: checked without a datetime
        date, time, fraction = match.groups()
        if _valid_date(date):
            return f"{date}T{time}.{fraction.ljust(9, '0') if fraction else '000000000'}Z"
    return _canonical(value)


def _canonical(value: str) -> str:
    """`canonical` for every other form (offsets, lower-case, space, > 9 digits, errors)."""
    if not isinstance(value, str):
        raise TimestampError(f"expected a timestamp string, got {type(value).__name__}")
    match = _RFC3339.match(value)
    if match is None:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            _check_fields(value, "00:00:00", value)  # 2024-13-45 is not a date
            return f"{value}T00:00:00.000000000Z"
        raise TimestampError(f"not an ISO 8601 timestamp: {value[:40]!r}")
    date, time, fraction, zulu, sign, off_h, off_m = match.groups()
    nanos = (fraction or "").ljust(9, "0")
    if zulu or sign is None or (off_h == "00" and off_m == "00"):
        _check_fields(date, time, value)
        return f"{date}T{time}.{nanos}Z"
    offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
    if sign == "-":
        offset = -offset
    try:
        local = dt.datetime.fromisoformat(f"{date}T{time}")
    except ValueError as exc:
        raise TimestampError(f"not a valid timestamp: {value[:40]!r}") from exc
    utc = local - offset
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{nanos}Z"


def _check_fields(date: str, time: str, original: str) -> None:
    """Reject impossible dates such as 2024-13-45 (the regex only checks the shape)."""
    try:
        dt.datetime.fromisoformat(f"{date}T{time}")
    except ValueError as exc:
        raise TimestampError(f"not a valid timestamp: {original[:40]!r}") from exc


def canonical_from_datetime(value: dt.datetime) -> str:
    """Canonical form of an aware (or naive = UTC) datetime."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}000Z"


def latest_timestamp(values: Sequence[Any]) -> str:
    """The latest of some timestamps by time, in canonical form (a dlt `last_value_func`)."""
    return max(canonical_cached(v) for v in values)


@functools.lru_cache(maxsize=4096)
def canonical_cached(value: str) -> str:
    """`canonical`, remembered: the same raw value is often compared several times per row."""
    if len(value) == 30 and value[19] == "." and value[29] == "Z":
        return value  # already canonical
    return canonical(value)
