"""The child prefetcher: results in order, failures in turn, fetching threads added on demand."""

from __future__ import annotations

import threading

import pytest

from tap_analytics import prefetch
from tap_analytics.prefetch import ChildPrefetcher


def _parents(n: int) -> list[tuple[str, dict[str, str]]]:
    return [(f"p{i}", {"id": f"p{i}"}) for i in range(n)]


def test_children_are_taken_in_order_from_one_thread_when_nobody_waits() -> None:
    prefetcher = ChildPrefetcher(max_concurrency=8, lookahead=3)
    fetched: list[str] = []

    def fetch(parent_id: str) -> list[dict[str, str]]:
        fetched.append(parent_id)
        return [{"parent": parent_id}]

    seen = []
    for record in prefetcher.iter_with_lookahead(_parents(10), {"kids": fetch}):
        future = prefetcher.take("kids", record["id"])
        assert future is not None
        seen.append(future.result()[0]["parent"])
    assert seen == [f"p{i}" for i in range(10)]
    assert sorted(fetched) == sorted(seen)  # each fetched once
    assert prefetcher.take("kids", "p0") is None  # taken already
    assert 1 <= prefetcher.workers <= 8


def test_a_failure_is_raised_when_its_turn_comes() -> None:
    prefetcher = ChildPrefetcher(max_concurrency=2)

    def fetch(parent_id: str) -> list[dict[str, str]]:
        if parent_id == "p2":
            raise RuntimeError("boom")
        return [{"parent": parent_id}]

    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        for record in prefetcher.iter_with_lookahead(_parents(5), {"kids": fetch}):
            future = prefetcher.take("kids", record["id"])
            assert future is not None
            seen.append(future.result()[0]["parent"])
    assert seen == ["p0", "p1"]
    prefetcher.discard()


def test_threads_double_each_time_the_consumer_has_waited_long_enough(monkeypatch) -> None:
    monkeypatch.setattr(prefetch, "GROW_AFTER", 0.05)
    release = threading.Event()
    prefetcher = ChildPrefetcher(max_concurrency=5)
    prefetcher._submit("kids", "p0", lambda _: release.wait() and [])  # starts the first thread
    assert prefetcher.workers == 1
    prefetcher._consumer_waited(0.01)
    assert prefetcher.workers == 1  # short waits add up ...
    prefetcher._consumer_waited(0.04)
    assert prefetcher.workers == 2  # ... to twice the threads
    prefetcher._consumer_waited(0.05)
    assert prefetcher.workers == 4
    for _ in range(5):
        prefetcher._consumer_waited(1.0)
    assert prefetcher.workers == 5  # never more than max_concurrency
    release.set()
    prefetcher.discard()


def test_discard_drops_what_nobody_takes() -> None:
    release = threading.Event()
    prefetcher = ChildPrefetcher(max_concurrency=1)
    prefetcher._submit("kids", "p0", lambda _: release.wait() and [])
    prefetcher._submit("kids", "p1", lambda _: [])
    prefetcher.discard()
    release.set()
    assert prefetcher.take("kids", "p0") is None
    assert prefetcher.take("kids", "p1") is None
