"""The list envelope and the cursor rule: follow `iterator` until `done` is true.

On the last page `iterator` is NOT null (it is the last item's id), so a walk that waits for a
null cursor asks for one more page. Only `done` ends the walk. A cursor seen before anywhere in
the walk, or `done: false` without a cursor, is an error rather than an endless loop or a guess.
"""

from __future__ import annotations

from typing import Any

import msgspec

from analytics_api.errors import PaginationError


class Page(msgspec.Struct):
    """One list page. `data` and `done` are required: without them a page means nothing."""

    data: list[dict[str, Any]]
    done: bool
    iterator: str | None = None


decode_page = msgspec.json.Decoder(Page).decode
"""Parse a body into a `Page` once; raises `msgspec.DecodeError` (not JSON) or
`msgspec.ValidationError` (JSON of another shape)."""


class CursorWalk:
    """The cursor state of one walk over a list path."""

    __slots__ = ("_seen", "cursor", "finished", "pages", "where")

    def __init__(self, where: str) -> None:
        self.where = where
        self.cursor: str | None = None
        """`iterator` to send with the next request; None for the first page."""
        self.finished = False
        self.pages = 0
        self._seen: set[str] = set()

    def advance(self, done: bool, iterator: str | None) -> str | None:
        """Take one page's `done` and `iterator`: the next cursor, or None when the walk is over."""
        self.pages += 1
        self.cursor = next_cursor(done, iterator, self._seen, self.where)
        self.finished = self.cursor is None
        return self.cursor


def next_cursor(done: bool, iterator: str | None, seen: set[str], where: str) -> str | None:
    """The cursor rule, one function: the next `iterator` to send, or None to stop.

    `seen` holds the cursors of this walk so far and is updated. Raises `PaginationError` for
    `done: false` without an iterator and for an iterator seen before.
    """
    if done:
        return None
    if iterator is None:
        raise PaginationError(
            f"{where}: the API answered done=false without an iterator, so there is no way to "
            "ask for the next page. Stopping instead of guessing; run again later or report "
            "this to the API provider."
        )
    cursor = str(iterator)
    if cursor in seen:
        raise PaginationError(
            f"{where}: the API returned the iterator {cursor[:64]!r} a second time; following "
            "it would loop forever. Stopping; run again later or report this to the API "
            "provider."
        )
    seen.add(cursor)
    return cursor
