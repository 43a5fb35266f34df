"""The tap's settings: their JSON schema and checks whose messages never echo a value.

The SDK's own config validation quotes the offending value ("12345 is not of type 'string'"),
which leaks a mistyped API key into logs. Every message here names the setting and the rule.
"""

from __future__ import annotations

import decimal
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft7Validator
from singer_sdk import typing as th

from tap_analytics.timestamps import TimestampError, canonical

MAX_PAGE_SIZE = 250  # the API answers 422 above this, it does not clamp

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
        default=MAX_PAGE_SIZE,
        title="Page size",
        description="Records per request (`limit`), 1..250.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=20),
        default=3,
        title="Max retries",
        description="Retries after the first attempt on 429/500/502/503/504, connection "
        "errors, read timeouts and broken bodies.",
    ),
    th.Property(
        "backoff_factor",
        th.NumberType(minimum=0),
        default=2,
        title="Backoff factor",
        description="Wait factor x 2^n seconds before retry n (2, 4, 8 s by default); a "
        "`Retry-After` header takes precedence.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=60,
        title="Request timeout",
        description="Seconds to wait for a connection or a response before retrying.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=64),
        default=8,
        title="Max concurrency",
        description="Requests in flight at once: children of the next parents and pages of "
        "independent streams are fetched ahead on threads. Output (records, order, state) is "
        "identical to 1, which is strictly sequential.",
    ),
    th.Property(
        "user_agent",
        th.StringType,
        title="User agent",
        description="`User-Agent` header; defaults to `tap-analytics/<version>`.",
    ),
).to_dict()

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
        try:
            canonical(start_date)
        except TimestampError:
            errors.append(
                "setting 'start_date': not an ISO 8601 timestamp; use e.g. 2024-01-31T00:00:00Z."
            )
    api_key = config.get("api_key")
    if isinstance(api_key, str) and api_key and not api_key.strip():
        errors.append("setting 'api_key': is blank; set the API key (TAP_ANALYTICS_API_KEY).")
    elif isinstance(api_key, str) and not _is_header_token(api_key):
        # requests would reject the header and quote it, key included, in its exception.
        errors.append(
            "setting 'api_key': contains whitespace, control or non-ASCII characters (a "
            "trailing newline from a file or a copy-paste?); give the key alone."
        )
    return errors


def _is_header_token(value: str) -> bool:
    """Printable ASCII without spaces: what a bearer token can be, and safe in a header."""
    return all("!" <= ch <= "~" for ch in value)


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
    parts = urlsplit(base_url.strip())
    example = "e.g. https://api.example.com"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"setting 'base_url': needs an http:// or https:// URL with a host, {example}."]
    if any(ch.isspace() for ch in base_url):
        return [f"setting 'base_url': must not contain whitespace, {example}."]
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number (`:8080v1`)
    except ValueError:
        return [f"setting 'base_url': the port is not a number 0..65535, {example}."]
    if parts.query or parts.fragment:
        return [f"setting 'base_url': must not carry a query or fragment, {example}."]
    path = parts.path.rstrip("/")
    segments = [s for s in path.split("/") if s]
    if segments and segments[0].lower() in {"v1", "v2", "ingest", "api"}:
        return [
            f"setting 'base_url': ends in the API path '{path}'; give the API root only "
            f"({example}); the tap adds /v1/... itself."
        ]
    if parts.scheme == "http" and not _is_loopback(parts.hostname or "") and logger:
        logger.warning(
            "setting 'base_url' uses plain http to a non-loopback host: the API key would "
            "cross the network unencrypted. Use https://."
        )
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
