"""The ordered pool (`analytics_api.concurrency`): order, bounds, errors, no thread left over.

No test waits for time to pass: threads meet on events, and every wait has a generous timeout
that only turns a hang into a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from analytics_api.concurrency import THREAD_NAME_PREFIX, FetchPool, ordered_map

TIMEOUT = 30  # a hang becomes a failure; no assertion depends on it


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


def test_results_come_in_the_order_of_the_items_whatever_order_they_finish_in() -> None:
    """Each call waits for the next item's call to finish: they finish last item first."""
    n = 4
    done = [threading.Event() for _ in range(n)]
    finished: list[int] = []

    def fn(i: int) -> str:
        if i + 1 < n:
            assert done[i + 1].wait(TIMEOUT), "the calls did not all run at once"
        finished.append(i)
        done[i].set()
        return f"r{i}"

    assert list(ordered_map(fn, range(n), workers=n)) == [(i, f"r{i}") for i in range(n)]
    assert finished == [3, 2, 1, 0]
    assert pool_threads() == []


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_at_most_workers_calls_run_at_once_and_items_are_read_a_bounded_way_ahead(
    workers: int,
) -> None:
    lock = threading.Lock()
    running = most = 0
    all_busy = threading.Event()  # the first `workers` calls wait until they all run
    taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(40):
            taken += 1
            yield i

    def fn(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == workers:
                all_busy.set()
        if i < workers:
            assert all_busy.wait(TIMEOUT), f"never {workers} calls at once"
        with lock:
            running -= 1
        return i * i

    ahead = 2 * workers
    for consumed, (i, result) in enumerate(ordered_map(fn, items(), workers), start=1):
        assert result == i * i
        assert taken <= consumed + ahead, "items are read further ahead than the bound"
    assert most == workers
    assert pool_threads() == []


def test_a_failure_is_raised_in_its_turn_after_every_earlier_result() -> None:
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 failed")
        return i

    seen: list[int] = []
    with pytest.raises(ValueError, match="item 3 failed"):
        for i, _ in ordered_map(fn, range(10), workers=4):
            seen.append(i)
    assert seen == [0, 1, 2]
    assert pool_threads() == []


def test_a_caller_that_stops_early_leaves_no_thread_and_starts_no_more_calls() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            calls.append(i)
        return i

    results = ordered_map(fn, range(1000), workers=3)
    assert [next(results)[0], next(results)[0]] == [0, 1]
    results.close()
    assert pool_threads() == []
    assert len(calls) <= 2 + 2 * 3  # what was taken, and at most the bound ahead of it


@pytest.mark.parametrize("workers", [1, 8])
def test_an_error_in_the_items_comes_after_the_results_read_before_it(workers: int) -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("the parent list failed")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="the parent list failed"):
        for i, _ in ordered_map(lambda i: i, items(), workers=workers):
            seen.append(i)
    assert seen == [0, 1, 2, 3, 4]  # as a sequential loop sees them
    assert pool_threads() == []


def test_one_worker_calls_inline_in_order() -> None:
    callers: list[threading.Thread] = []
    consumed: list[int] = []

    def fn(i: int) -> int:
        callers.append(threading.current_thread())
        assert consumed == list(range(i)), "a call ran before the previous result was taken"
        return i

    for i, _ in ordered_map(fn, range(5), workers=1):
        consumed.append(i)
    assert consumed == [0, 1, 2, 3, 4]
    assert set(callers) == {threading.current_thread()}


# -- read_ahead: the pages of a list, read on the pool before they are taken -------------------


def test_read_ahead_starts_at_once_and_keeps_the_order() -> None:
    first_read = threading.Event()

    def pages() -> Iterator[int]:
        first_read.set()
        yield from range(10)

    with FetchPool(3) as pool:
        items = pool.read_ahead(pages(), ahead=2)
        assert first_read.wait(TIMEOUT), "nothing was read before the caller asked"
        assert list(items) == list(range(10))
    assert pool_threads() == []


@pytest.mark.parametrize("ahead", [1, 3])
def test_read_ahead_reads_at_most_ahead_items_before_they_are_taken(ahead: int) -> None:
    produced = 0

    def pages() -> Iterator[int]:
        nonlocal produced
        for i in range(20):
            produced += 1
            yield i

    with FetchPool(4) as pool:
        for consumed, item in enumerate(pool.read_ahead(pages(), ahead=ahead), start=1):
            assert item == consumed - 1
            assert produced <= consumed + ahead
    assert produced == 20


def test_read_ahead_raises_the_error_of_the_list_in_its_turn() -> None:
    def pages() -> Iterator[int]:
        yield from range(3)
        raise RuntimeError("page 4 failed")

    seen: list[int] = []
    with FetchPool(2) as pool, pytest.raises(RuntimeError, match="page 4 failed"):
        for item in pool.read_ahead(pages()):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert pool_threads() == []


def test_one_pool_serves_several_lists_and_a_map_at_once() -> None:
    """Two lists read ahead while a map runs on the same two threads: nothing waits for
    anything else on the pool, so all of it completes, each in its own order."""
    with FetchPool(2) as pool:
        lists = [pool.read_ahead(iter(range(n, n + 5)), ahead=2) for n in (0, 100)]
        mapped = list(pool.map(lambda i: -i, range(12)))
        assert mapped == [(i, -i) for i in range(12)]
        assert [list(items) for items in lists] == [list(range(5)), list(range(100, 105))]
    assert pool_threads() == []


def test_with_one_worker_read_ahead_reads_nothing_ahead() -> None:
    produced: list[threading.Thread] = []

    def pages() -> Iterator[int]:
        for i in range(3):
            produced.append(threading.current_thread())
            yield i

    with FetchPool(1) as pool:
        items = pool.read_ahead(pages())
        assert produced == []
        assert list(items) == [0, 1, 2]
    assert set(produced) == {threading.current_thread()}


def test_a_read_the_pool_cancels_on_close_fails_instead_of_waiting() -> None:
    """Both threads are held by reads that wait for `gate`; the third list's read is queued.
    Closing the pool cancels it: whoever waits for that list gets an error, not a hang."""
    gate = threading.Event()

    def held() -> Iterator[int]:
        assert gate.wait(TIMEOUT)
        yield 1

    pool = FetchPool(2)
    busy = [pool.read_ahead(held(), ahead=1) for _ in range(2)]
    queued = pool.read_ahead(iter(range(5)), ahead=1)
    closing = threading.Thread(target=pool.close)
    closing.start()
    with pytest.raises(RuntimeError, match="closed"):
        next(queued)
    gate.set()
    closing.join(TIMEOUT)
    assert [next(items) for items in busy] == [1, 1]  # what was read is still handed out
    assert pool_threads() == []
