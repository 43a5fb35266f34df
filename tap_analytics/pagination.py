"""The API's cursor paginator: follow `iterator` until `done` is true.

On the last page `iterator` is NOT null (it is the last item's id), so a paginator that waits for a
null cursor would ask for one more, empty page. Only `done` ends the walk. A cursor seen before, or
`done: false` without a cursor, is an error rather than an endless loop.
"""

from __future__ import annotations

from typing import Any

from singer_sdk.pagination import BaseAPIPaginator

from tap_analytics.errors import PaginationError


class DonePaginator(BaseAPIPaginator[str | None]):
    """Cursor paginator for `{data, iterator, done}` envelopes.

    `advance()` takes the parsed page (anything with `.done` and `.iterator`), so the body is
    parsed exactly once.
    """

    def __init__(self, where: str) -> None:
        super().__init__(start_value=None)
        self._where = where
        self._seen: set[str] = set()

    def has_more(self, response: Any) -> bool:
        return not response.done

    def get_next(self, response: Any) -> str | None:
        cursor = response.iterator
        if cursor is None:
            raise PaginationError(
                f"{self._where}: the API answered done=false without an iterator, so there is "
                "no way to ask for the next page. Stopping instead of guessing; retry later or "
                "report this to the API provider."
            )
        if cursor in self._seen:
            raise PaginationError(
                f"{self._where}: the API returned the iterator {cursor[:64]!r} a second time; "
                "following it would loop forever. Stopping; retry later or report this to the "
                "API provider."
            )
        self._seen.add(cursor)
        return str(cursor)

    def advance(self, response: Any) -> None:
        """Move to the next page; unlike the SDK's, a repeat anywhere in the walk is caught."""
        self._page_count += 1
        if not self.has_more(response):
            self._finished = True
            return
        self._value = self.get_next(response)
