"""The settings of the analytics API's engines, declared once.

`SETTINGS` is the one table: each setting's name, type, default, bounds, help, whether it is a
secret, whether it is required, and which engines take it. Every entry point is built from it
or checked against it by a test: the tap's JSON schema (`tap_analytics.settings`), the arguments
of `analytics_source()`, the flags of `dlt-bridge native`, the fields of the environments file
(`analytics_dlt.environments`), `meltano.yml` and the README's settings table. The numbers
themselves are the contract's (`analytics_api.limits`).

`setting_problems` checks values against the table the same way for every entry point: every
problem at once, each naming the setting and the rule, never the value (a mistyped API key must
not end up in a log). No singer-sdk, no dlt here.
"""

from __future__ import annotations

import contextlib
import decimal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from analytics_api import __version__
from analytics_api.config import api_key_problem, base_url_problem, start_date_problem
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
    DELETE_MODES,
    MAX_CONCURRENCY_LIMIT,
    MAX_PAGE_SIZE,
    MAX_RETRIES_LIMIT,
    MAX_RETRY_WAIT,
    MAX_TIMEOUT,
)

Kind = Literal["string", "integer", "number", "boolean", "datetime", "options"]
"""`datetime`: an ISO 8601 timestamp string; `options`: one string of `Setting.options`."""

Engine = Literal["tap", "source"]
TAP: Engine = "tap"
"""The Singer tap (`tap-analytics`, and `meltano.yml`'s tap-analytics)."""
SOURCE: Engine = "source"
"""The dlt side: `analytics_source()`, `dlt-bridge native`'s flags, the environments file."""

Check = Callable[[str, str], str | None]
"""An extra rule for a string value: (value, where to set it) -> a problem or None."""


@dataclass(frozen=True)
class Setting:
    """One user setting, the same for every entry point that takes it."""

    name: str
    kind: Kind
    title: str
    help: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    """The minimum itself is refused (`request_timeout` > 0)."""
    unit: str = ""
    options: tuple[str, ...] = ()
    secret: bool = False
    required: bool = False
    engines: frozenset[Engine] = frozenset({TAP, SOURCE})
    check: Check | None = None

    @property
    def bounds(self) -> str:
        """The allowed range as text (`1..250`, `> 0 and <= 3600`), or ''."""
        if self.minimum is None and self.maximum is None:
            return ""
        low = "" if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='} "
        low += "" if self.minimum is None else f"{self.minimum:g}"
        high = "" if self.maximum is None else f"<= {self.maximum:g}"
        return " and ".join(part for part in (low, high) if part)

    def problems(self, value: Any, where: str = "") -> list[str]:
        """What is wrong with `value` for this setting (empty when nothing is)."""
        label = f"setting '{self.name}'"
        wanted = _WANTED[self.kind]
        if not _has_kind(value, self.kind):
            return [f"{label}: must be {wanted}, got {_type_name(value)}."]
        if self.kind == "options" and value not in self.options:
            return [f"{label}: must be one of {', '.join(self.options)}."]
        if self.kind in ("integer", "number") and not self._within(value):
            unit = f" {self.unit}" if self.unit else ""
            return [f"{label}: must be {self.bounds}{unit}."]
        if isinstance(value, str) and self.required and not value:
            return [f"{label}: must not be empty."]
        if isinstance(value, str) and self.check is not None:
            problem = self.check(value, where)
            return [problem] if problem else []
        return []

    def _within(self, value: float) -> bool:
        if value != value:  # NaN is within nothing
            return False
        if self.minimum is not None and (
            value <= self.minimum if self.exclusive_minimum else value < self.minimum
        ):
            return False
        return self.maximum is None or value <= self.maximum


_WANTED: dict[Kind, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "datetime": "a string, an ISO 8601 timestamp such as 2024-01-31T00:00:00Z",
    "options": "a string",
}


def _has_kind(value: Any, kind: Kind) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):  # a bool is an int to Python, never a number here
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, (int, float, decimal.Decimal))  # JSON reads 2.5 as Decimal
    return isinstance(value, str)


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", decimal.Decimal: "number"}
    names |= {str: "string", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _base_url(value: str, where: str) -> str | None:
    return base_url_problem(value)


def _api_key(value: str, where: str) -> str | None:
    return api_key_problem(value, env_hint=where)


def _start_date(value: str, where: str) -> str | None:
    return start_date_problem(value)


def default_user_agent() -> str:
    """The tap's `User-Agent` when `user_agent` is not set: `tap-analytics/<version>`."""
    return f"tap-analytics/{__version__}"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "api_key",
        "string",
        "API key",
        "Bearer token for the analytics API (sent as `Authorization: Bearer ...`).",
        secret=True,
        required=True,
        check=_api_key,
    ),
    Setting(
        "base_url",
        "string",
        "Base URL",
        "API root, scheme included, e.g. `https://api.example.com` (no `/v1`).",
        required=True,
        check=_base_url,
    ),
    Setting(
        "start_date",
        "datetime",
        "Start date",
        "Only records whose replication key is at or after this ISO 8601 timestamp. Without "
        "state and without start date, everything is synced.",
        check=_start_date,
    ),
    Setting(
        "page_size",
        "integer",
        "Page size",
        f"Records per request (`limit`); the API answers 422 above {MAX_PAGE_SIZE}.",
        default=DEFAULT_PAGE_SIZE,
        minimum=1,
        maximum=MAX_PAGE_SIZE,
    ),
    Setting(
        "max_retries",
        "integer",
        "Max retries",
        "Retries after the first attempt on 429/500/502/503/504, connection errors, read "
        "timeouts and broken bodies.",
        default=DEFAULT_MAX_RETRIES,
        minimum=0,
        maximum=MAX_RETRIES_LIMIT,
    ),
    Setting(
        "backoff_factor",
        "number",
        "Backoff factor",
        "Before retry n the wait is backoff_factor x 2^(n-1) seconds (2, 4, 8 s with the "
        "default 2); a `Retry-After` header on the response takes precedence. Every wait is "
        f"capped at {MAX_RETRY_WAIT:g} s.",
        default=DEFAULT_BACKOFF_FACTOR,
        minimum=0,
        maximum=MAX_RETRY_WAIT,
        unit="seconds",
    ),
    Setting(
        "request_timeout",
        "number",
        "Request timeout",
        "Seconds to wait for a connection or a response before retrying.",
        default=DEFAULT_TIMEOUT,
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_TIMEOUT,
        unit="seconds",
    ),
    Setting(
        "max_concurrency",
        "integer",
        "Max concurrency",
        "Most HTTP requests in flight at once, over the whole run (every stream and thread). "
        "1 is strictly sequential; the output (records, order, state) is the same for every "
        "value.",
        default=DEFAULT_MAX_CONCURRENCY,
        minimum=1,
        maximum=MAX_CONCURRENCY_LIMIT,
    ),
    Setting(
        "user_agent",
        "string",
        "User agent",
        "`User-Agent` header; defaults to `tap-analytics/<version>`.",
        engines=frozenset({TAP}),
    ),
    Setting(
        "emit_activate_version_messages",
        "boolean",
        "Emit `ACTIVATE_VERSION` messages",
        "For streams the catalog sets to `replication-method: FULL_TABLE`: every record "
        "carries the run's table version and one `ACTIVATE_VERSION` per stream follows its "
        "complete scan, so a target can delete the records that are gone upstream. Never sent "
        "for a stream whose scan failed. INCREMENTAL streams are not affected. See "
        "docs/deletions.md.",
        default=False,
        engines=frozenset({TAP}),
    ),
    Setting(
        "deletes",
        "options",
        "Deletions",
        "After each stream's complete scan, rows the API no longer returns: off (kept), soft "
        "(`_sdc_deleted_at` set) or hard (deleted), in the same load as the run's rows. Such a "
        "run reads every record. See docs/deletions.md.",
        default="off",
        options=DELETE_MODES,
        engines=frozenset({SOURCE}),
    ),
    Setting(
        "history",
        "boolean",
        "History tables",
        "Also keep every version of every record in `<stream>_history`, valid from its "
        "replication key value (`updatedAt`) to the next version's, or to the run that found it "
        "deleted; committed with the run's rows. See docs/history.md.",
        default=False,
        engines=frozenset({SOURCE}),
    ),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
"""Each setting's default (None: unset)."""


def settings_for(engine: Engine) -> Iterator[Setting]:
    """The settings `engine` takes, in table order."""
    return (s for s in SETTINGS if engine in s.engines)


def numbers_from_text(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with number settings given as text ("1.5") read as numbers, as the tap takes
    them: singer-sdk reads integer and boolean variables as such but leaves number ones as text
    (`TAP_ANALYTICS_BACKOFF_FACTOR=1.5` with `--config ENV`), and Meltano passes them as text
    (its `decimal` kind crashes on a value from a variable, so meltano.yml says `string`). Text
    that is no number stays text, which `setting_problems` reports."""
    out = dict(values)
    for setting in SETTINGS:
        text = out.get(setting.name)
        if setting.kind == "number" and isinstance(text, str):
            with contextlib.suppress(ValueError):
                out[setting.name] = float(text)
    return out


def setting_problems(
    values: Mapping[str, Any],
    engine: Engine,
    *,
    where: Callable[[str], str] | None = None,
    require: bool = True,
) -> list[str]:
    """Every problem of `values` (setting -> value; None or absent is unset) for `engine`.

    Each problem names the setting and the rule, never the value. `where(name)` says where a
    setting is set (e.g. `env TAP_ANALYTICS_API_KEY`) for the messages of a missing or unusable
    one; `require=False` leaves required settings that are unset alone (a caller that checks
    them itself). Settings the table does not know are left to the caller.
    """
    problems: list[str] = []
    for setting in settings_for(engine):
        value = values.get(setting.name)
        hint = where(setting.name) if where is not None else ""
        if value is None:
            if setting.required and require:
                problems.append(
                    f"setting '{setting.name}': is required but missing"
                    + (f" ({hint})." if hint else ".")
                )
            continue
        problems.extend(setting.problems(value, hint))
    return problems
