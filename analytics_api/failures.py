"""What went wrong with a request, in a few words: the API's refusals (`fatal_status_error`,
`error_detail`) and the root cause of a failed attempt (`describe_failure`), for the client's
messages. Never the key, never a whole body.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import msgspec
import requests

from analytics_api.errors import (
    AnalyticsAPIError,
    AuthenticationError,
    ParentNotFoundError,
    TransientAPIError,
    wrapped_errors,
)
from analytics_api.redact import excerpt

_STATUS_HINTS = {
    401: "the API key is missing or wrong: check the `api_key` setting",
    403: "the API key lacks permission for this resource: grant it or leave the stream out",
    404: "the path does not exist; check that `base_url` is the API root "
    "(e.g. https://api.example.com)",
    422: "the API rejected the request parameters (is `page_size` within 1..250?)",
}


def fatal_status_error(
    where: str, status: int, body: bytes, secret: str, *, child: bool = False
) -> AnalyticsAPIError:
    """The error for a status that is not retried, with a hint of what to do."""
    detail = error_detail(body, secret)
    if status == 404 and child:
        return ParentNotFoundError(
            f"{where}: HTTP 404 Not Found{detail}: the parent was deleted after it was listed.",
            status=status,
        )
    hint = _STATUS_HINTS.get(status, "the API refused the request; this is not retried")
    kind = AuthenticationError if status in (401, 403) else AnalyticsAPIError
    return kind(f"{where}: HTTP {status}{detail}: {hint}.", status=status)


def error_detail(body: bytes, secret: str) -> str:
    """`(code: detail)` from an error body, short and secret-free; both error shapes handled."""
    if not body:
        return ""
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return f" ({excerpt(body, secret, 120)})"
    if isinstance(parsed, dict):
        detail = parsed.get("detail")
        if isinstance(detail, list):  # 422: [{loc, msg, type}]
            detail = "; ".join(
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
                for d in detail
                if isinstance(d, dict)
            )
        code = parsed.get("code")
        text = f"{code}: {detail}" if code else str(detail)
        return f" ({excerpt(text, secret, 160)})"
    return f" ({excerpt(body, secret, 120)})"


_LATER = "run again later (state up to the last committed record is kept)"


def describe_failure(exc: Exception, secret: str, timeout: float, base_url: str) -> tuple[str, str]:
    """The root cause of a failed attempt in a few words, and what to do if it persists.

    requests wraps the cause two or three levels deep (a `MaxRetryError` whose reason wraps
    the socket's error); its own text is a truncated repr that hides it.
    """
    url = urlsplit(base_url)
    host = url.hostname or base_url
    if isinstance(exc, TransientAPIError):
        if exc.status == 429:
            advice = f"The API is rate-limiting this key; {_LATER}, or raise `max_retries`."
        else:
            advice = f"The API may be down; {_LATER}, or raise `max_retries`."
        return excerpt(str(exc), secret, 200), advice
    if isinstance(exc, requests.Timeout):
        return (
            f"timed out after {timeout:g} s",
            f"The API did not answer in time; {_LATER}, or raise `request_timeout`.",
        )
    causes = list(_causes(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        detail = next((str(c) for c in causes if type(c).__module__ == "ssl"), "")
        return (
            f"TLS failure with {host} ({excerpt(detail or str(exc), secret, 100)})",
            "Check `base_url` (https only where the server speaks TLS) and the server's "
            "certificate (a private CA goes in REQUESTS_CA_BUNDLE).",
        )
    if any(isinstance(c, socket.gaierror) for c in causes):
        return (
            f"cannot resolve host {host}",
            "Check the host name in `base_url` and this machine's DNS / network.",
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        port = url.port or (443 if url.scheme == "https" else 80)
        return (
            f"connection refused by {host}:{port}",
            "Check `base_url` (host and port) and that the API is running there.",
        )
    if any(isinstance(c, ConnectionResetError) for c in causes):
        reason = "connection reset by the server"
    elif any(isinstance(c, http.client.RemoteDisconnected) for c in causes):
        reason = "the server closed the connection without answering"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        reason = "the connection broke before the whole response arrived"
    else:
        reason = f"connection failed ({excerpt(str(causes[-1]), secret, 120)})"
    return reason, f"The API or a proxy on the way dropped it; {_LATER}, or raise `max_retries`."


def untrusted_certificate(exc: BaseException) -> bool:
    """The server's TLS certificate failed verification (not a transient failure)."""
    return isinstance(exc, requests.exceptions.SSLError) and any(
        isinstance(c, ssl.SSLCertVerificationError) for c in _causes(exc)
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps, down to the socket's error, deepest last."""
    return wrapped_errors(exc, through=("reason",), arguments=True)
