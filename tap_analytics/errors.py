"""Errors the tap raises, with messages that name the stream, the request and what to do.

Messages never carry the API key or a whole response body: see :func:`excerpt`.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

EXCERPT_CHARS = 200


def excerpt(text: str | bytes | None, secret: str | None = None, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, secret-free preview of a response body for error messages."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        if secret:  # redact before cutting: a cut through the key would leave most of it
            text = text.replace(secret.encode(), b"***")
        text = text[: limit * 4].decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    if secret:
        flat = flat.replace(secret, "***")
    return flat if len(flat) <= limit else flat[:limit] + "…"


class AnalyticsAPIError(FatalAPIError):
    """A request or response this tap cannot use; retrying will not help."""


class ResponseFormatError(AnalyticsAPIError):
    """A 2xx response whose JSON does not have the list envelope's shape."""


class PaginationError(AnalyticsAPIError):
    """The API's cursor went in a circle or stopped without `done`."""


class RecordError(AnalyticsAPIError):
    """A record without its primary key or replication key."""


class ParentNotFoundError(AnalyticsAPIError):
    """404 on a child path: the parent was deleted after it was listed."""


class TransientAPIError(RetriableAPIError):
    """A failure worth retrying (429, 5xx, broken or unparsable body)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
