"""Issue 7.7: under a sustained stream of 429s with Retry-After the tap waits as told and
finishes with exact output."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from fake_api import DatasetConfig, FaultConfig, FaultRule
from tests.reliability.support import (
    Workspace,
    assert_final_state,
    assert_no_duplicate_keys,
    records_by_stream,
    request_keys,
    retry_lines,
    simulate_faults,
)
from tests.support import all_dumps, assert_equals_dump

pytestmark = pytest.mark.e2e

DATASET = DatasetConfig(
    applications=4,
    endpoints_per_app=3,
    integrations_per_app=1,
    event_types=6,
    tokens=2,
    ingest_sources=1,
    endpoints_per_source=2,
    webhook_endpoints=3,
)
WAIT = re.compile(r" in (?P<wait>[\d.]+) s \(retry \d of (?P<of>\d+)\) after HTTP 429")


def test_sustained_429s_are_waited_out_as_told(ws: Workspace, fake_api_factory: Any) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    # The first request is refused four times in a row (a rule ignores the cap of 3; the tap is
    # given 4 retries), then a third of all requests gets a 429, each with `Retry-After: 1`.
    config = ws.config_for(api, page_size=3, max_concurrency=1, max_retries=4)
    clean = ws.tap(config)
    assert clean.returncode == 0, clean.stderr[-3000:]
    keys = request_keys(clean.stderr)
    seed = next(
        s
        for s in range(1000)
        if sum(simulate_faults(keys, s, 0.3, ("429",))[0].values()) == 2
        and not simulate_faults(keys[:1], s, 0.3, ("429",))[0]  # the rule's request: 4 at most
    )
    faults = FaultConfig(
        rate=0.3,
        kinds=("429",),
        seed=seed,
        retry_after="1",
        rules=(FaultRule("429", "*", count=4, retry_after="1"),),
    )
    expected_429 = 4 + sum(simulate_faults(keys, seed, 0.3, ("429",))[0].values())
    api.set_faults(faults)
    api.reset_stats()

    started = time.monotonic()
    run = ws.tap(config)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    stats = api.stats()
    assert stats["by_status"].get("429") == stats["faults_total"] == expected_429, stats

    lines = retry_lines(run.stderr)
    waits = [WAIT.search(line) for line in lines]
    assert len(lines) == expected_429 and all(waits), lines[:3]
    assert all(m is not None and float(m["wait"]) == 1.0 for m in waits)  # Retry-After, not backoff
    # Sequential requests: the run lasts at least the sum of the waits the API asked for.
    assert elapsed >= expected_429 * 1.0, (elapsed, expected_429)
    dumps = all_dumps(api)
    records = records_by_stream(run.messages)
    assert_no_duplicate_keys(records)
    assert_equals_dump(records, dumps)
    assert_final_state(run.last_state, dumps)


def test_a_429_pauses_every_worker(ws: Workspace, fake_api_factory: Any) -> None:
    """With 8 workers, a 429 holds back the others too: while the API's `Retry-After: 1` runs,
    no request reaches the API; afterwards the run resumes and its output is exact."""
    dataset = DatasetConfig(applications=6, event_types=40, webhook_endpoints=20)
    api = fake_api_factory(dataset, token=ws.key, latency_ms=20)
    app = api.dump("applications")[0]["id"]
    api.set_faults(
        FaultConfig(rules=(FaultRule("429", f"/v1/app/{app}/endpoint", count=1, retry_after="1"),))
    )
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stats = api.stats()
            samples.append((time.monotonic(), stats["total"], stats["faults_total"]))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = ws.tap(ws.config_for(api, page_size=3, max_concurrency=8))
    finally:
        done.set()
        watcher.join()
    assert run.returncode == 0, run.stderr[-3000:]
    assert api.stats()["faults_total"] == 1
    t429 = next(t for t, _, faults in samples if faults == 1)
    quiet = {total for t, total, _ in samples if t429 + 0.3 <= t <= t429 + 0.9}
    assert len(quiet) == 1, f"requests reached the API during the pause: {sorted(quiet)}"
    assert samples[-1][1] > quiet.pop(), "the run should still have had requests to make"
    dumps = all_dumps(api)
    records = records_by_stream(run.messages)
    assert_no_duplicate_keys(records)
    assert_equals_dump(records, dumps)
    assert_final_state(run.last_state, dumps)
