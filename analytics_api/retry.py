"""The retry policy of the contract: which failures are retried, how often, and how long to wait.

* Retried: HTTP 429, 500, 502, 503, 504; connection errors and read timeouts; a 2xx body that is
  not JSON (truncated, or a proxy's HTML page). Every other status fails at once.
* `max_retries` retries after the first attempt (default 3, so 4 attempts in all).
* Before retry n (1, 2, 3, ...) the wait is `backoff_factor * 2**(n-1)` seconds (2, 4, 8 s by
  default), unless the response carried `Retry-After`: then exactly that (delta-seconds or an
  HTTP date; `0` means at once). Every wait is capped at `max_wait` (300 s by default).
* A 429 pauses every request of the run, not only the one that got it (see
  `analytics_api.client`).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_RETRY_WAIT,
)

RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
"""The contract's retryable statuses; every other 4xx/5xx fails at once."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many retries, and how long to wait before each."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR
    max_wait: float = MAX_RETRY_WAIT
    timeout: float = DEFAULT_TIMEOUT
    statuses: frozenset[int] = RETRY_STATUSES

    def is_retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def wait(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait)
        return min(self.backoff_factor * 2 ** (retry_number - 1), self.max_wait)


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Parse a `Retry-After` header: delta-seconds or an HTTP date. None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unusable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())
