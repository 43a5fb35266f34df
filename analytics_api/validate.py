"""Record checks compiled from a stream's JSON schema (fast enough to run on every record).

dlt would not reject a value of the wrong type: it adds a variant column (`version__v_text`) or
coerces silently. The bridge checks each record against the SCHEMA it was announced with instead,
and fails with the stream, the field and the reason.

Checked: key properties present and not null; declared types (exact: `true` is not an integer,
`1.0` is not an integer); `null` only where the schema allows it; date-time / date strings
parseable; integers within bigint; object values and array items when the schema types them.
Not checked: `required` for non-key properties (a missing field loads as NULL), string formats
other than date-time/date, numeric bounds, patterns, enums.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

__all__ = ["RecordValidator", "SchemaViolation", "json_schema_types"]


def json_schema_types(prop: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The non-null JSON types a property allows, and whether it allows null.

    Understands `type` as a string or a list, and `anyOf` / `oneOf` lists of alternatives (each
    with its own `type`). No `type` at all means "anything" and returns `([], True)`.
    """
    types: list[str] = []
    nullable = False
    alternatives = prop.get("anyOf") or prop.get("oneOf")
    if alternatives:
        for alt in alternatives:
            sub_types, sub_nullable = json_schema_types(alt)
            nullable = nullable or sub_nullable
            for t in sub_types:
                if t not in types:
                    types.append(t)
        if not types and not any(isinstance(a, Mapping) and "type" in a for a in alternatives):
            return [], True
        return types, nullable
    declared = prop.get("type")
    if declared is None:
        if "enum" in prop or "const" in prop:
            values = list(prop.get("enum", [])) + ([prop["const"]] if "const" in prop else [])
            return _types_of_values(values)
        return [], True
    for t in [declared] if isinstance(declared, str) else list(declared):
        if t == "null":
            nullable = True
        elif t not in types:
            types.append(t)
    return types, nullable


def _types_of_values(values: Iterable[Any]) -> tuple[list[str], bool]:
    types: list[str] = []
    nullable = False
    for v in values:
        if v is None:
            nullable = True
            continue
        t = (
            "boolean"
            if isinstance(v, bool)
            else "integer"
            if isinstance(v, int)
            else "number"
            if isinstance(v, float)
            else "string"
            if isinstance(v, str)
            else "array"
            if isinstance(v, list)
            else "object"
        )
        if t not in types:
            types.append(t)
    return types, nullable


_MISSING = object()
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))"
)
_fromisoformat = datetime.fromisoformat
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

Extra = Callable[[Any], "str | None"]
"""Further check of a value whose Python type already matched; returns an error text or None."""


class SchemaViolation(ValueError):
    """A record does not match its stream's schema. `field` is None for whole-record problems."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_datetime(value: str) -> str | None:
    m = _DATETIME_RE.fullmatch(value)
    if m is None:
        return f"expected an RFC 3339 date-time string, got {_short(value)}"
    try:
        _fromisoformat(value)  # C fast path (Python 3.11+ reads "Z" and 9 fractional digits)
        return None
    except ValueError:
        pass
    try:  # fallback: range-check the parts
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        datetime(y, mo, d, h, mi, sec)
    except ValueError as exc:
        return f"invalid date-time {_short(value)}: {exc}"
    tz_h, tz_m = m.group(7), m.group(8)
    if tz_h is not None and (int(tz_h) > 23 or int(tz_m) > 59):
        return f"invalid date-time {_short(value)}: bad UTC offset"
    return None


def _check_date(value: str) -> str | None:
    m = _DATE_RE.fullmatch(value)
    if m is None:
        return f"expected a date string (YYYY-MM-DD), got {_short(value)}"
    try:
        date(*(int(g) for g in m.groups()))
    except ValueError as exc:
        return f"invalid date {_short(value)}: {exc}"
    return None


def _check_int_range(value: int) -> str | None:
    if _INT64_MIN <= value <= _INT64_MAX:
        return None
    return f"integer {value} does not fit a bigint"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Compiled:
    """One property: accepted Python types, nullability and an optional extra check."""

    __slots__ = ("expected", "extra", "nullable", "py_types")

    def __init__(self, prop: Mapping[str, Any]) -> None:
        types, nullable = json_schema_types(prop)
        self.nullable = nullable or not types
        self.expected = " or ".join(types) if types else "any"
        py: set[type] = set()
        if not types:
            self.py_types: frozenset[type] | None = None
        else:
            for t in types:
                py.update(_PY_TYPES.get(t, ()))
            self.py_types = frozenset(py) if py else None
        self.extra = _build_extra(prop, types)

    def check(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"null is not allowed (expected {self.expected})"
        if self.py_types is not None and type(value) not in self.py_types:
            return f"expected {self.expected}, got {_type_name(value)} {_short(value)}"
        if self.extra is not None:
            return self.extra(value)
        return None


def _only_for_str(fn: Callable[[str], str | None]) -> Extra:
    def check(value: Any) -> str | None:
        return fn(value) if type(value) is str else None

    return check


def _build_extra(prop: Mapping[str, Any], types: Sequence[str]) -> Extra | None:
    checks: list[Extra] = []
    fmt = prop.get("format")
    if fmt is None:
        for alt in prop.get("anyOf") or prop.get("oneOf") or ():
            if isinstance(alt, Mapping) and "format" in alt:
                fmt = alt["format"]
    if "string" in types and fmt in ("date-time", "date"):
        fn = _check_datetime if fmt == "date-time" else _check_date
        if list(types) == ["string"]:
            checks.append(fn)  # the type check already ran: the value is a str
        else:
            checks.append(_only_for_str(fn))
    if "integer" in types:
        checks.append(lambda v: _check_int_range(v) if type(v) is int else None)
    obj = _object_schema(prop)
    if "object" in types and obj is not None:
        checks.append(obj)
    arr = _array_schema(prop)
    if "array" in types and arr is not None:
        checks.append(arr)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def run_all(value: Any) -> str | None:
        for c in checks:
            err = c(value)
            if err is not None:
                return err
        return None

    return run_all


def _sub_schema(prop: Mapping[str, Any], key: str) -> Any:
    if key in prop:
        return prop[key]
    for alt in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(alt, Mapping) and key in alt:
            return alt[key]
    return None


def _object_schema(prop: Mapping[str, Any]) -> Extra | None:
    properties = _sub_schema(prop, "properties")
    additional = _sub_schema(prop, "additionalProperties")
    named = (
        {k: _Compiled(v) for k, v in properties.items() if isinstance(v, Mapping)}
        if isinstance(properties, Mapping)
        else {}
    )
    rest = _Compiled(additional) if isinstance(additional, Mapping) and additional else None
    if not named and rest is None:
        return None

    def check(value: Any) -> str | None:
        if type(value) is not dict:
            return None
        for k, v in value.items():
            c = named.get(k, rest)
            if c is not None:
                err = c.check(v)
                if err is not None:
                    return f"[{k!r}]: {err}"
        return None

    return check


def _array_schema(prop: Mapping[str, Any]) -> Extra | None:
    items = _sub_schema(prop, "items")
    if not isinstance(items, Mapping) or not items:
        return None
    item = _Compiled(items)

    def check(value: Any) -> str | None:
        if type(value) is not list:
            return None
        for i, v in enumerate(value):
            err = item.check(v)
            if err is not None:
                return f"[{i}]: {err}"
        return None

    return check


class RecordValidator:
    """Checks records of one stream against its SCHEMA message."""

    def __init__(self, schema: Mapping[str, Any], key_properties: Sequence[str]) -> None:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        self.key_properties = tuple(key_properties)
        self.property_names = frozenset(properties)
        self._checks = [
            (name, compiled.py_types, compiled.nullable, compiled.extra, compiled)
            for name, prop in properties.items()
            for compiled in [_Compiled(prop if isinstance(prop, Mapping) else {})]
            if compiled.py_types is not None or not compiled.nullable or compiled.extra
        ]

    def validate(self, record: Mapping[str, Any]) -> None:
        """Raise `SchemaViolation` for the first problem found."""
        for key in self.key_properties:
            if record.get(key) is None:
                state = "null" if key in record else "missing"
                raise SchemaViolation(f"key property {key!r} is {state}", key)
        for name, py_types, nullable, extra, compiled in self._checks:
            value = record.get(name, _MISSING)
            if value is _MISSING:
                continue
            if value is None:
                if nullable:
                    continue
            elif (py_types is None or type(value) in py_types) and (
                extra is None or extra(value) is None
            ):
                continue
            raise SchemaViolation(f"field {name!r}: {compiled.check(value)}", name)

    def unknown_fields(self, record: Mapping[str, Any]) -> list[str]:
        """Fields of `record` that the schema does not declare (cheap when there are none)."""
        keys = record.keys()
        if keys <= self.property_names:
            return []
        return [k for k in keys if k not in self.property_names]
