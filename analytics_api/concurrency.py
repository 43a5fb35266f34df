"""One ordered, bounded pool for fetching ahead, used by both engines.

Child lists (`/v1/app/{app_id}/endpoint`, ...) are one request or more per parent; with network
latency, fetching them one parent after another leaves the run waiting on every request in turn.
`ordered_map` runs those fetches on a few threads while handing the results out in the order of
the parents, so what an engine writes (records, their order, the state) does not depend on the
number of threads. `workers <= 1` calls the function inline: strictly sequential, no thread.

The threads only bound how many fetches run at once; requests in flight over the whole run are
bounded by `ApiClient` (`max_concurrency` slots, whichever thread sends).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREAD_NAME_PREFIX = "analytics-fetch"


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
) -> Generator[tuple[T, R], None, None]:
    """`(item, fn(item))` in the order of `items`, with up to `workers` calls running at once.

    `items` is read lazily, at most `ahead` (default `2 * workers`) items before the caller
    takes their results, so memory stays bounded however long it is. A call's exception is
    raised when its item's turn comes, after every earlier result; an exception from `items`
    after the results of the items read before it, as a sequential loop would. When the caller
    stops (an error, or it closes the generator), calls not started are cancelled and the
    running ones are waited for: no thread outlives the iteration.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    limit = max(ahead or 2 * workers, workers)
    pending: deque[tuple[T, Future[R]]] = deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_NAME_PREFIX)
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
        executor.shutdown(wait=True, cancel_futures=True)
