"""Issue 7.7: under a sustained stream of 429s with Retry-After the tap waits as told and
finishes with exact output."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fake_api import DatasetConfig, FaultConfig, FaultRule
from tests.reliability.support import (
    Workspace,
    assert_final_state,
    assert_no_duplicate_keys,
    request_keys,
    simulate_faults,
)
from tests.support import all_dumps, assert_equals_dump, records_by_stream

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

    # Sequential requests: the run lasts at least the sum of the waits the API asked for (a
    # lower bound only, which a busy machine cannot break).
    assert elapsed >= expected_429 * 1.0, (elapsed, expected_429)
    dumps = all_dumps(api)
    records = records_by_stream(run.messages)
    assert_no_duplicate_keys(records)
    assert_equals_dump(records, dumps)
    assert_final_state(run.last_state, dumps)


def test_a_429_under_eight_workers_keeps_the_output_exact(
    ws: Workspace, fake_api_factory: Any
) -> None:
    """With 8 workers, a 429 on one child path pauses the run (the pause itself is pinned in
    tests/unit/test_contract.py and, for both engines, in tests/conformance); afterwards the run
    resumes and its output is exact."""
    dataset = DatasetConfig(applications=6, event_types=40, webhook_endpoints=20)
    api = fake_api_factory(dataset, token=ws.key, latency_ms=20)
    app = api.dump("applications")[0]["id"]
    api.set_faults(
        FaultConfig(rules=(FaultRule("429", f"/v1/app/{app}/endpoint", count=1, retry_after="1"),))
    )
    run = ws.tap(ws.config_for(api, page_size=3, max_concurrency=8))
    assert run.returncode == 0, run.stderr[-3000:]
    stats = api.stats()
    assert stats["faults_total"] == 1
    assert stats["max_in_flight"] <= 8
    dumps = all_dumps(api)
    records = records_by_stream(run.messages)
    assert_no_duplicate_keys(records)
    assert_equals_dump(records, dumps)
    assert_final_state(run.last_state, dumps)
