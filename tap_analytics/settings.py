"""The tap's settings: their JSON schema and checks whose messages never echo a value.

The SDK's own config validation quotes the offending value ("12345 is not of type 'string'"),
which leaks a mistyped API key into logs. Every message here names the setting and the rule.
"""

from __future__ import annotations

import decimal
import logging
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft7Validator
from singer_sdk import typing as th

from analytics_api.config import (
    api_key_problem,
    base_url_problem,
    is_plain_http_to_remote,
    start_date_problem,
)
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
    MAX_CONCURRENCY_LIMIT,
    MAX_PAGE_SIZE,
    MAX_RETRIES_LIMIT,
    MAX_RETRY_WAIT,
)

EMIT_ACTIVATE_VERSION = "emit_activate_version_messages"
"""The SDK-standard setting (built into singer-sdk from 0.55; declared here for 0.54)."""

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType(min_length=1),
        required=True,
        secret=True,
        title="API key",
        description="Bearer token for the analytics API (sent as `Authorization: Bearer ...`).",
    ),
    th.Property(
        "base_url",
        th.StringType(min_length=1),
        required=True,
        title="Base URL",
        description="API root, scheme included, e.g. `https://api.example.com` (no `/v1`).",
        examples=["https://api.example.com"],
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description="Emit only records whose replication key is at or after this ISO 8601 "
        "timestamp. Without state and without start date, everything is synced.",
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
        default=DEFAULT_PAGE_SIZE,
        title="Page size",
        description="Records per request (`limit`), 1..250.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=MAX_RETRIES_LIMIT),
        default=DEFAULT_MAX_RETRIES,
        title="Max retries",
        description="Retries after the first attempt on 429/500/502/503/504, connection "
        "errors, read timeouts and broken bodies.",
    ),
    th.Property(
        "backoff_factor",
        th.NumberType(minimum=0),
        default=DEFAULT_BACKOFF_FACTOR,
        title="Backoff factor",
        description="Before retry n the tap waits backoff_factor x 2^(n-1) seconds (2, 4, 8 s "
        "with the default 2); a `Retry-After` header on the response takes precedence. Every "
        f"wait is capped at {MAX_RETRY_WAIT:g} s.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=DEFAULT_TIMEOUT,
        title="Request timeout",
        description="Seconds to wait for a connection or a response before retrying.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=MAX_CONCURRENCY_LIMIT),
        default=DEFAULT_MAX_CONCURRENCY,
        title="Max concurrency",
        description="Most HTTP requests in flight at once, counted over every stream and "
        "thread. A run starts sequential and, once responses are slow (a few ms of waiting "
        "each), fetches ahead on threads the pages of the independent top-level streams and "
        "the children of the next parents, all within this bound. 1 is strictly sequential; "
        "the output (records, order, state) is the same for every value.",
    ),
    th.Property(
        "user_agent",
        th.StringType,
        title="User agent",
        description="`User-Agent` header; defaults to `tap-analytics/<version>`.",
    ),
    th.Property(
        EMIT_ACTIVATE_VERSION,
        th.BooleanType,
        default=False,
        title="Emit `ACTIVATE_VERSION` messages",
        description="For streams the catalog sets to `replication-method: FULL_TABLE`: every "
        "record carries the run's table version and one `ACTIVATE_VERSION` per stream follows "
        "its complete scan, so a target can delete the records that are gone upstream. Never "
        "sent for a stream whose scan failed. INCREMENTAL streams are not affected. See "
        "docs/deletions.md.",
    ),
).to_dict()

TAP_SETTING_NAMES: tuple[str, ...] = tuple(CONFIG_SCHEMA["properties"])
"""The tap's own settings, fixed at import: singer-sdk appends its standard settings to the
class's schema in place when a tap is created, so `CONFIG_SCHEMA` grows within a process."""

_TYPE_NAMES = {
    decimal.Decimal: "number",  # the SDK reads JSON numbers with a fraction as Decimal
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def config_errors(config: Mapping[str, Any], logger: logging.Logger | None = None) -> list[str]:
    """Every problem with `config`, each naming the setting and never quoting its value."""
    errors: list[str] = []
    for error in sorted(Draft7Validator(CONFIG_SCHEMA).iter_errors(dict(config)), key=str):
        errors.append(_describe(error))
    base_url = config.get("base_url")
    if isinstance(base_url, str):
        errors.extend(_base_url_errors(base_url, logger))
    start_date = config.get("start_date")
    if isinstance(start_date, str):
        errors.extend(filter(None, [start_date_problem(start_date)]))
    api_key = config.get("api_key")
    if isinstance(api_key, str) and api_key:
        errors.extend(filter(None, [api_key_problem(api_key, env_hint="TAP_ANALYTICS_API_KEY")]))
    return errors


def _describe(error: Any) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in str(error.message) else "?"
        hint = " (env TAP_ANALYTICS_API_KEY)" if missing == "api_key" else ""
        return f"setting '{missing}': is required but missing{hint}."
    if error.validator == "type":
        got = _TYPE_NAMES.get(type(error.instance), type(error.instance).__name__)
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"setting '{path}': must be of type {wanted}, got {got}."
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        rule = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[str(error.validator)]
        return f"setting '{path}': must be {rule} {error.validator_value}."
    if error.validator == "minLength":
        return f"setting '{path}': must not be empty."
    if error.validator == "format":
        return f"setting '{path}': must be a {error.validator_value} value."
    return f"setting '{path}': fails the '{error.validator}' rule."


def _base_url_errors(base_url: str, logger: logging.Logger | None) -> list[str]:
    problem = base_url_problem(base_url)
    if problem:
        return [problem]
    if logger and is_plain_http_to_remote(base_url):
        logger.warning(
            "setting 'base_url' uses plain http to a non-loopback host: the API key would "
            "cross the network unencrypted. Use https://."
        )
    return []
