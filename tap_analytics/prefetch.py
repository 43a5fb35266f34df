"""Concurrent fetching of child pages, consumed in exactly the sequential order.

The SDK syncs a parent's children one parent at a time, so with network latency the tap waits on
every child request in turn. While the parent stream hands out its records, this module already
fetches the children of the next few parents on background threads. Each child stream then
takes its parent's result in order, so the output is identical to a sequential run: same records,
same per-stream order, same STATE positions. A failure is re-raised when its turn comes, never
earlier, so everything before it is still emitted.

The number of fetching threads adapts. It starts at one: when responses arrive faster than the
records can be written (no latency), one thread fetching ahead already hides the server's time,
and more threads would only compete with the consumer for the GIL. Whenever the consumer has
waited `GROW_AFTER` seconds in all for results that were not ready, the responses are the
bottleneck and the number of threads doubles, up to `max_concurrency`.

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
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any

Records = list[dict[str, Any]]
FetchChildren = Callable[[str], Records]
"""Fetch every record of one child stream for one parent id."""

GROW_AFTER = 0.01
"""Seconds the consumer may wait for unfinished child fetches before another thread starts."""


class ChildPrefetcher:
    """A bounded look-ahead of child fetches keyed by (child stream, parent id)."""

    def __init__(self, max_concurrency: int, lookahead: int | None = None) -> None:
        self.max_workers = max(1, max_concurrency)
        self._lookahead = lookahead or max(2, 2 * max_concurrency)
        self._futures: dict[tuple[str, str], Future[Records]] = {}
        self._tasks: deque[tuple[Future[Records], FetchChildren, str]] = deque()
        self._ready = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._waited = 0.0  # consumer's wait for unfinished fetches since the last new thread

    @property
    def workers(self) -> int:
        """Fetching threads started so far."""
        return len(self._workers)

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
        with self._ready:
            key = (child, parent_id)
            if key in self._futures:
                return
            future: Future[Records] = Future()
            self._futures[key] = future
            self._tasks.append((future, fetch, parent_id))
            if not self._workers:
                self._start_worker()
            self._ready.notify()

    def _start_worker(self) -> None:
        """One more fetching thread (called with `_ready` held)."""
        worker = threading.Thread(
            target=self._work,
            name=f"tap-analytics-prefetch_{len(self._workers)}",
            daemon=True,  # idle between parent streams; never holds a result anyone awaits
        )
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._tasks:
                    self._ready.wait()
                future, fetch, parent_id = self._tasks.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # discarded
            try:
                records = fetch(parent_id)
            except BaseException as exc:  # raised in the consumer, when its turn comes
                future.set_exception(exc)
            else:
                future.set_result(records)

    def take(self, child: str, parent_id: str) -> Future[Records] | None:
        """The prefetched result for this parent (done), or None when it was not prefetched."""
        with self._ready:
            future = self._futures.pop((child, parent_id), None)
        if future is not None and not future.done():
            started = time.monotonic()
            wait_for((future,))
            self._consumer_waited(time.monotonic() - started)
        return future

    def _consumer_waited(self, seconds: float) -> None:
        """Responses are the bottleneck once the consumer has waited long enough: double the
        threads (1, 2, 4, 8, ...), so that with latency the bound is reached within a few
        parents rather than one thread per wait."""
        self._waited += seconds
        if self._waited >= GROW_AFTER and len(self._workers) < self.max_workers:
            self._waited = 0.0
            with self._ready:
                for _ in range(min(len(self._workers), self.max_workers - len(self._workers))):
                    self._start_worker()

    def discard(self) -> None:
        """Drop results nobody will take (a parent filtered out, a failed run)."""
        with self._ready:
            futures, self._futures = self._futures, {}
            self._tasks.clear()
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
