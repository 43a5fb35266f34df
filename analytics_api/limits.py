"""The API's limits and the numbers of the contract's defaults, written once.

The settings table (`analytics_api.settings`) takes its defaults and bounds from here, and every
entry point takes them from the table; the retry policy and the HTTP client default to the same.
"""

from __future__ import annotations

MAX_PAGE_SIZE = 250
"""`limit` is 1..250; above it the API answers 422 (it does not clamp)."""
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE
"""Fewest requests: the API has no default of its own in its spec (the server uses 50)."""
DEFAULT_MAX_RETRIES = 3
"""Retries after the first attempt (4 attempts in all)."""
MAX_RETRIES_LIMIT = 20
DEFAULT_BACKOFF_FACTOR = 2.0
"""Wait before retry n is `backoff_factor * 2**(n-1)` seconds: 2, 4, 8."""
MAX_RETRY_WAIT = 300.0
"""Cap on any single wait, a server's `Retry-After` included (seconds)."""
DEFAULT_TIMEOUT = 60.0
"""Seconds to connect, and to wait for response bytes, per attempt."""
DEFAULT_MAX_CONCURRENCY = 8
"""Requests in flight at once."""
MAX_CONCURRENCY_LIMIT = 64
MAX_TIMEOUT = 3600.0
"""Longest `request_timeout` accepted (seconds): beyond it a hung connection looks like a hang."""
DELETE_MODES: tuple[str, ...] = ("off", "soft", "hard")
"""What a full scan does with rows the API no longer returns: nothing, mark them, delete them."""
