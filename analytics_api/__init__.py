"""The analytics API's contract, shared by every engine of this project.

The stream table and JSON schemas (`streams`), timestamps (`timestamps`), the cursor rule
(`paging`), the retry policy (`retry`), limits and defaults (`limits`), errors (`errors`), key
redaction (`redact`), record rules (`records`), settings checks (`config`) and the HTTP client
that applies them (`client`). It imports neither singer-sdk nor dlt, and nothing here imports the
engines: the Singer tap (`tap_analytics`) and the dlt source (`analytics_source`) import it.
"""

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
