"""Errors of the API contract, shared by both engines.

Every message names the stream, the request path and what to do; none carries the API key or a
whole response body (see `analytics_api.redact`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar


class AnalyticsAPIError(Exception):
    """A request or response that cannot be used; retrying will not help.

    `status` is the HTTP status of the response that caused it (the last one, after retries),
    or None when there was no response (a connection error, a record rule): callers branch on
    it instead of reading the message.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthenticationError(AnalyticsAPIError):
    """401 or 403: the key is wrong or lacks permission."""


class RedirectRefusedError(AnalyticsAPIError):
    """A 3xx answer: never followed, so the key only ever goes to `base_url`."""


class ResponseFormatError(AnalyticsAPIError):
    """A 2xx response whose JSON does not have the list envelope's shape."""


class PaginationError(AnalyticsAPIError):
    """The API's cursor went in a circle or stopped without `done`."""


class RecordError(AnalyticsAPIError):
    """A record without its primary key or replication key, or with an unreadable timestamp."""


class ParentNotFoundError(AnalyticsAPIError):
    """404 on a child path (`/v1/app/{app_id}/endpoint`): the parent was deleted after it was
    listed. Its children are gone; this is not an error of the run."""


class RetryBudgetExhaustedError(AnalyticsAPIError):
    """A transient failure persisted through every retry."""


class TransientAPIError(Exception):
    """A failure worth retrying (429, 5xx, a broken or unparsable body)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


E = TypeVar("E", bound=BaseException)


def wrapped_errors(
    exc: BaseException, *, through: tuple[str, ...] = ("exception",), arguments: bool = False
) -> Iterator[BaseException]:
    """`exc` and every exception it wraps, each once, the nearest first: causes, contexts, the
    attributes named in `through` (by default `exception`, which a framework's step failure
    carries: dlt's `PipelineStepFailed`) and, with `arguments`, exceptions among its arguments
    (requests wraps urllib3's errors there, urllib3 the socket's in `reason`)."""
    seen: set[int] = set()
    queue: list[object] = [exc]
    while queue:
        current = queue.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue += [current.__cause__, current.__context__]
        queue += [getattr(current, name, None) for name in through]
        if arguments:
            queue += list(current.args)


def find_error(exc: BaseException, cls: type[E]) -> E | None:
    """The first exception of class `cls` among `exc` and those it wraps, or None."""
    return next((e for e in wrapped_errors(exc) if isinstance(e, cls)), None)
