"""Fetching ahead: children in order, failures in turn, and threads only for slow responses."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tap_analytics import prefetch
from tap_analytics.prefetch import ChildPrefetcher, ResponseProbe
from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import config, mock_api, run_tap, serve_everything


def _parents(n: int) -> list[tuple[str, dict[str, str]]]:
    return [(f"p{i}", {"id": f"p{i}"}) for i in range(n)]


def test_children_are_taken_in_order() -> None:
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


def test_the_probe_counts_waiting_not_computing() -> None:
    def pages() -> Any:
        for _ in range(3):
            time.sleep(0.01)  # waiting for a response: wall time, no CPU time
            yield [{"id": 1}]

    probe = ResponseProbe(window=8, min_samples=3)
    assert len(list(probe.timed(pages()))) == 3
    assert probe.slow


def test_the_probe_decides_on_the_recent_mean_of_enough_requests() -> None:
    probe = ResponseProbe(window=4, min_samples=3)
    assert not probe.slow
    slow = prefetch.SLOW_RESPONSE
    probe._waits.extend([2 * slow, 2 * slow])
    assert not probe.slow  # too few requests timed
    probe._waits.append(0.0)
    assert probe.slow
    probe._waits.clear()
    probe._waits.append(5 * slow)
    assert probe.slow  # one very slow request already tells
    probe._waits.extend([0.0] * 4)  # the slow ones left the window
    assert not probe.slow
    probe._waits.extend([prefetch.SLOW_RESPONSE] * 4)
    assert probe.slow


@pytest.mark.parametrize("slow", [False, True])
def test_the_tap_fetches_ahead_only_once_responses_are_slow(
    slow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow responses (here: every wait counts as slow) turn fetching ahead on; the output is
    the same either way. Fast ones (a mock answers at once) keep the run sequential."""
    if slow:
        monkeypatch.setattr(prefetch, "SLOW_RESPONSE", 0.0)
    else:
        monkeypatch.setattr(prefetch, "SLOW_RESPONSE", 3600.0)
    taps: list[TapAnalytics] = []
    original = TapAnalytics.fetching_ahead

    def spy(self: TapAnalytics) -> bool:
        taps.append(self)
        return original(self)

    monkeypatch.setattr(TapAnalytics, "fetching_ahead", spy)
    with mock_api() as api:
        serve_everything(api, apps=6, per_app=3, sources=2)
        out = run_tap(config(max_concurrency=8))
        sequential = run_tap(config(max_concurrency=1))
    assert taps and taps[0].fetching_ahead() is slow
    assert _same_records(out.messages, sequential.messages)


def _same_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def records(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return [(m["stream"], m["record"]) for m in messages if m["type"] == "RECORD"]

    return records(a) == records(b)
