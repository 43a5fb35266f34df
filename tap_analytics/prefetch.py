"""Fetching ahead on threads, only while it pays, consumed in exactly the sequential order.

The SDK syncs a parent's children one parent at a time, so with network latency the tap waits on
every child request in turn. While the parent stream hands out its records, `ChildPrefetcher`
already fetches the children of the next few parents on a bounded thread pool, and `PageReader`
walks the other top-level lists in the background. Each child stream then takes its parent's
result in order, so the output is identical to a sequential run: same records, same per-stream
order, same STATE positions. A failure is re-raised when its turn comes, never earlier, so
everything before it is still emitted.

Threads only pay when responses are slow. When they arrive faster than the records can be
written (no latency), the writer is the bottleneck and fetching threads only compete with it
for the GIL: a run with threads took ~25 % longer than a sequential one at 100,000 records.
So the tap starts sequentially, and `ResponseProbe` times each request on the consumer's
thread: the time it waited for the response (wall time minus the thread's CPU time). Once the
recent requests waited `SLOW_RESPONSE` on average, the tap fetches ahead from then on.

`max_concurrency` bounds the requests in flight across all of these threads and the main one:
the `ApiClient` takes one of its `max_concurrency` slots for each HTTP attempt and gives it back
when the response is read, before the page is handed on. No thread ever waits on a queue, a
future or a retry pause while holding a slot, so the bound cannot deadlock the readers, the
workers or the consumer, whatever their number.
"""

from __future__ import annotations

import queue
import threading
import time
import typing as t
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Records = list[dict[str, Any]]
FetchChildren = Callable[[str], Records]
"""Fetch every record of one child stream for one parent id."""


SLOW_RESPONSE = 0.003
"""Mean seconds the recent requests waited for their responses above which fetching ahead on
threads pays (at no latency a local request waits well under a millisecond)."""


class ResponseProbe:
    """How long the requests made on the consumer's thread waited for their responses."""

    def __init__(self, window: int = 8, min_samples: int = 3) -> None:
        self._waits: deque[float] = deque(maxlen=window)
        self._min_samples = min_samples

    def timed(self, pages: Iterable[Records]) -> Iterator[Records]:
        """`pages`, each request timed: wall time minus this thread's CPU time."""
        source = iter(pages)
        while True:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                page = next(source)
            except StopIteration:
                return
            waited = (time.perf_counter() - wall) - (time.thread_time() - cpu)
            self._waits.append(max(waited, 0.0))  # the two clocks differ by a few microseconds
            yield page

    @property
    def slow(self) -> bool:
        """The recent requests waited `SLOW_RESPONSE` on average: enough of them timed, or
        so long (5x) that one or two already tell (the first page, with latency)."""
        waits = tuple(self._waits)
        if not waits:
            return False
        mean = sum(waits) / len(waits)
        enough = len(waits) >= self._min_samples or mean >= 5 * SLOW_RESPONSE
        return enough and mean >= SLOW_RESPONSE


class ChildPrefetcher:
    """A bounded look-ahead of child fetches keyed by (child stream, parent id)."""

    def __init__(self, max_concurrency: int, lookahead: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, max_concurrency), thread_name_prefix="tap-analytics-prefetch"
        )
        self._lookahead = lookahead or max(2, 2 * max_concurrency)
        self._futures: dict[tuple[str, str], Future[Records]] = {}
        self._lock = threading.Lock()

    def iter_with_lookahead(
        self,
        parent_ids: Iterable[tuple[str, dict[str, Any]]],
        children: dict[str, FetchChildren],
    ) -> Iterator[dict[str, Any]]:
        """Yield parent records in order while keeping the next parents' children in flight.

        `parent_ids` yields `(parent_id, record)`; `children` maps child stream name to a fetch
        function. Nothing runs ahead by more than `lookahead` parents, so memory stays bounded.
        """
        window: deque[tuple[str, dict[str, Any]]] = deque()
        source = iter(parent_ids)
        exhausted = False
        while True:
            while not exhausted and len(window) < self._lookahead:
                try:
                    parent_id, record = next(source)
                except StopIteration:
                    exhausted = True
                    break
                for name, fetch in children.items():
                    self._submit(name, parent_id, fetch)
                window.append((parent_id, record))
            if not window:
                return
            _, record = window.popleft()
            yield record

    def _submit(self, child: str, parent_id: str, fetch: FetchChildren) -> None:
        with self._lock:
            key = (child, parent_id)
            if key not in self._futures:
                self._futures[key] = self._executor.submit(fetch, parent_id)

    def take(self, child: str, parent_id: str) -> Future[Records] | None:
        """The prefetched result for this parent, or None when it was not prefetched."""
        with self._lock:
            return self._futures.pop((child, parent_id), None)

    def discard(self) -> None:
        """Drop results nobody will take (a parent filtered out, a failed run)."""
        with self._lock:
            futures, self._futures = self._futures, {}
        for future in futures.values():
            future.cancel()


_DONE = object()


class PageReader:
    """Walks one top-level list in a background thread, a few pages ahead of its consumer.

    Independent streams are then fetched at the same time instead of one after another;
    the consumer still sees every page in API order, and a failure when its turn comes.
    """

    def __init__(self, pages: Iterable[Records], ahead: int = 4, name: str = "") -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(pages,), name=f"tap-analytics-pages-{name}", daemon=True
        )
        self._thread.start()

    def _produce(self, pages: Iterable[Records]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there in order
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Records]:
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield t.cast("Records", item)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
