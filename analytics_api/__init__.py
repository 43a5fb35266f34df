"""The analytics API's contract, shared by every engine of this project.

The stream table and JSON schemas (`streams`), timestamps (`timestamps`), the cursor rule
(`paging`), the retry policy (`retry`), limits and defaults (`limits`), errors (`errors`), key
redaction (`redact`), record rules (`records`), settings checks (`config`) and the HTTP client
that applies them (`client`). It imports neither singer-sdk nor dlt, and nothing here imports the
engines: the Singer tap (`tap_analytics`) and the dlt source (`analytics_source`) import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as their modules define them, for type checkers
    from analytics_api.client import ApiClient, ClientSettings, RetryEvent
    from analytics_api.errors import (
        AnalyticsAPIError,
        AuthenticationError,
        PaginationError,
        ParentNotFoundError,
        RecordError,
        RedirectRefusedError,
        ResponseFormatError,
        RetryBudgetExhaustedError,
        TransientAPIError,
    )
    from analytics_api.limits import MAX_PAGE_SIZE
    from analytics_api.paging import CursorWalk, Page, next_cursor
    from analytics_api.retry import RETRY_STATUSES, RetryPolicy, retry_after_seconds
    from analytics_api.streams import STREAMS, STREAMS_BY_NAME, StreamDefinition, child_path
    from analytics_api.timestamps import TimestampError, canonical

_EXPORTS = {
    "AnalyticsAPIError": "errors",
    "ApiClient": "client",
    "AuthenticationError": "errors",
    "ClientSettings": "client",
    "CursorWalk": "paging",
    "MAX_PAGE_SIZE": "limits",
    "Page": "paging",
    "PaginationError": "errors",
    "ParentNotFoundError": "errors",
    "RETRY_STATUSES": "retry",
    "RecordError": "errors",
    "RedirectRefusedError": "errors",
    "ResponseFormatError": "errors",
    "RetryBudgetExhaustedError": "errors",
    "RetryEvent": "client",
    "RetryPolicy": "retry",
    "STREAMS": "streams",
    "STREAMS_BY_NAME": "streams",
    "StreamDefinition": "streams",
    "TimestampError": "timestamps",
    "TransientAPIError": "errors",
    "canonical": "timestamps",
    "child_path": "streams",
    "next_cursor": "paging",
    "retry_after_seconds": "retry",
}
"""Each public name and the module that defines it (imported on first use, see `__getattr__`)."""

__version__ = "0.2.0"

__all__ = [
    "MAX_PAGE_SIZE",
    "RETRY_STATUSES",
    "STREAMS",
    "STREAMS_BY_NAME",
    "AnalyticsAPIError",
    "ApiClient",
    "AuthenticationError",
    "ClientSettings",
    "CursorWalk",
    "Page",
    "PaginationError",
    "ParentNotFoundError",
    "RecordError",
    "RedirectRefusedError",
    "ResponseFormatError",
    "RetryBudgetExhaustedError",
    "RetryEvent",
    "RetryPolicy",
    "StreamDefinition",
    "TimestampError",
    "TransientAPIError",
    "canonical",
    "child_path",
    "next_cursor",
    "retry_after_seconds",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: `import analytics_api.errors` (the bridge's
    first import, before it starts the tap) then costs no `requests` import (~0.15 s)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"analytics_api.{module}"), name)
