"""One ordered, bounded pool for fetching ahead, used by both engines.

With network latency, a run that sends one request after another waits on every one in turn:
child lists (`/v1/app/{app_id}/endpoint`, ...) are one request or more per parent, and a run
reads several independent top-level lists. `FetchPool` runs those fetches on up to `workers`
threads while handing the results out in the order a sequential run sees them, so what an
engine writes (records, their order, the state) does not depend on the number of threads.
`workers <= 1` runs everything inline: strictly sequential, no thread.

* `map(fn, items)`: `(item, fn(item))` in the order of `items` (a parent's child lists);
* `read_ahead(items)`: the items of one iterator (the pages of a list) in order, each `next`
  on the pool from now on, a few before they are taken.

The threads bound how many fetches run at once; requests in flight over the whole run are
bounded by `ApiClient` (`max_concurrency` slots, whichever thread sends). No task ever waits
for another, so a pool shared by both uses cannot deadlock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREAD_NAME_PREFIX = "analytics-fetch"


class FetchPool:
    """Up to `workers` fetches at once, results in order. Close it (or use `with`) when done:
    calls not started are cancelled and running ones waited for, so no thread outlives it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_NAME_PREFIX)
            if workers > 1
            else None
        )

    def __enter__(self) -> FetchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], ahead: int | None = None
    ) -> Generator[tuple[T, R], None, None]:
        """`(item, fn(item))` in the order of `items`, the calls on the pool's threads.

        `items` is read lazily, at most `ahead` (default `2 * workers`) items before the caller
        takes their results, so memory stays bounded however long it is. A call's exception is
        raised when its item's turn comes, after every earlier result; an exception from
        `items` after the results of the items read before it, as a sequential loop would.
        Calls the caller does not take (it stopped early) are cancelled.
        """
        executor = self._executor
        if executor is None:
            for item in items:
                yield item, fn(item)
            return
        limit = max(ahead or 2 * self.workers, self.workers)
        pending: deque[tuple[T, Future[R]]] = deque()
        source, failure = iter(items), None
        try:
            while failure is None:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # raised after the results of the items read before it
                    failure = exc
                    break
                pending.append((item, executor.submit(fn, item)))
                if len(pending) >= limit:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
            if failure is not None:
                raise failure
        finally:
            for _, future in pending:
                future.cancel()

    def read_ahead(self, items: Iterable[T], ahead: int = 4) -> Iterator[T]:
        """The items of `items` in order, read on the pool from now on, one `next` at a time
        and at most `ahead` before they are taken; its exception is raised in its turn."""
        if self._executor is None:
            return iter(items)
        return _ReadAhead(self._executor, iter(items), ahead)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
) -> Generator[tuple[T, R], None, None]:
    """`FetchPool.map` on a pool of its own, closed when the iteration ends or stops."""
    with FetchPool(workers) as pool:
        yield from pool.map(fn, items, ahead)


_END: Any = object()


class _ReadAhead(Generic[T]):
    """`next(source)` as pool tasks, one at a time, while fewer than `ahead` items wait."""

    def __init__(self, executor: ThreadPoolExecutor, source: Iterator[T], ahead: int) -> None:
        self._executor, self._source, self._ahead = executor, source, max(1, ahead)
        self._ready: deque[tuple[Any, BaseException | None]] = deque()
        self._changed = threading.Condition()
        self._reading = self._finished = False
        with self._changed:
            self._read_more()

    def _read_more(self) -> None:
        """Start the next read unless one runs, the source ended, or enough items wait."""
        if self._reading or self._finished or len(self._ready) >= self._ahead:
            return
        self._reading = True
        try:
            self._executor.submit(self._read_one).add_done_callback(self._cancelled)
        except RuntimeError as exc:  # the pool is closed
            self._closed(exc)

    def _cancelled(self, future: Future[None]) -> None:
        if future.cancelled():  # by the pool's close: the read never ran
            with self._changed:
                self._closed(RuntimeError("the fetch pool was closed"))

    def _closed(self, error: RuntimeError) -> None:
        """No read will run any more: a caller still waiting gets `error`, not a hang."""
        self._ready.append((_END, error))
        self._reading, self._finished = False, True
        self._changed.notify()

    def _read_one(self) -> None:
        item: Any = _END
        error: BaseException | None = None
        try:
            item = next(self._source)
        except StopIteration:
            pass
        except BaseException as exc:  # raised to the caller in its turn
            error = exc
        with self._changed:
            self._ready.append((item, error))
            self._reading = False
            self._finished = item is _END or error is not None
            self._read_more()
            self._changed.notify()

    def __iter__(self) -> _ReadAhead[T]:
        return self

    def __next__(self) -> T:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._ready) or self._finished)
            if not self._ready:
                raise StopIteration
            item, error = self._ready.popleft()
            self._read_more()
        if error is not None:
            raise error
        if item is _END:
            raise StopIteration
        return item  # type: ignore[no-any-return]
