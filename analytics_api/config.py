"""The rules of the string settings that a type and a range cannot say (URL, key, timestamp).

The settings table (`analytics_api.settings`) applies them for every engine. Each returns a
problem naming the setting, or None, and never quotes the value: a mistyped API key must not
end up in a log.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from analytics_api.timestamps import TimestampError, canonical

_EXAMPLE = "e.g. https://api.example.com"


def base_url_problem(base_url: str, setting: str = "base_url") -> str | None:
    """What is wrong with an API root URL, or None."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"setting '{setting}': needs an http:// or https:// URL with a host, {_EXAMPLE}."
    if any(ch.isspace() for ch in base_url.strip()):
        return f"setting '{setting}': must not contain whitespace, {_EXAMPLE}."
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number (`:8080v1`)
    except ValueError:
        return f"setting '{setting}': the port is not a number 0..65535, {_EXAMPLE}."
    if parts.query or parts.fragment:
        return f"setting '{setting}': must not carry a query or fragment, {_EXAMPLE}."
    path = parts.path.rstrip("/")
    segments = [s for s in path.split("/") if s]
    if segments and segments[0].lower() in {"v1", "v2", "ingest", "api"}:
        return (
            f"setting '{setting}': ends in the API path '{path}'; give the API root only "
            f"({_EXAMPLE}); /v1/... is added to it for each stream."
        )
    return None


def is_plain_http_to_remote(base_url: str) -> bool:
    """True when the key would cross a network unencrypted (http:// to a non-loopback host)."""
    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    if parts.scheme != "http" or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def api_key_problem(api_key: str, setting: str = "api_key", env_hint: str = "") -> str | None:
    """What is wrong with an API key string, or None (it must be usable in a header)."""
    hint = f" ({env_hint})" if env_hint else ""
    if not api_key.strip():
        return f"setting '{setting}': is blank; set the API key{hint}."
    if not all("!" <= ch <= "~" for ch in api_key):
        # requests would reject the header and quote it, key included, in its exception.
        return (
            f"setting '{setting}': contains whitespace, control or non-ASCII characters (a "
            "trailing newline from a file or a copy-paste?); give the key alone."
        )
    return None


def start_date_problem(start_date: str, setting: str = "start_date") -> str | None:
    try:
        canonical(start_date)
    except TimestampError:
        return f"setting '{setting}': not an ISO 8601 timestamp; use e.g. 2024-01-31T00:00:00Z."
    return None
