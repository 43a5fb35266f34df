"""Issue 7.1: faults inside the retry budget change nothing in the output, and are logged.

About 10 % of requests get a random transient fault (every kind: 429 with Retry-After seconds,
with an HTTP date and without the header, 500/502/503/504, a reset mid-body, a truncated JSON
body, a response slower than the read timeout), at most 3 in a row per request, which is exactly
the tap's budget of 3 retries. The fault seed is chosen from the run's own request list so that
every kind occurs and at least one request needs all 3 retries; the fake's decisions are a pure
function of (seed, request, attempt), so the expected faults are known exactly.
"""

from __future__ import annotations

import collections
import re
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from fake_api import TRANSIENT_KINDS, DatasetConfig, FaultConfig
from tests.e2e.bridge_support import assert_tables_equal_dump, stored_state
from tests.reliability.support import (
    RETRY_REASONS,
    Workspace,
    assert_final_state,
    assert_no_duplicate_keys,
    assert_states_only_cover_emitted,
    pick_fault_seed,
    request_keys,
    retry_lines,
    wait_for_faults,
)
from tests.support import all_dumps, assert_equals_dump, normalized, records_by_stream

pytestmark = pytest.mark.e2e

DATASET = DatasetConfig(
    applications=24, endpoints_per_app=4, integrations_per_app=2, event_types=20
)
PAGE_SIZE = 2  # ~110 requests for ~220 records: enough requests for every fault kind
RATE = 0.1
RETRY_LINE = re.compile(
    r"Retrying stream '(?P<stream>\w+)', GET (?P<path>/\S+) in (?P<wait>[\d.]+) s "
    r"\(retry (?P<n>\d) of 3\) after (?P<reason>.*)"
)


def plan_faults(ws: Workspace, api: Any) -> tuple[FaultConfig, collections.Counter[str]]:
    """A clean run lists the requests; pick a seed whose faults cover every kind."""
    clean = ws.tap(ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=1))
    assert clean.returncode == 0, clean.stderr[-3000:]
    keys = request_keys(clean.stderr)
    assert len(keys) == api.stats()["total"] > 100
    seed, expected = pick_fault_seed(keys, rate=RATE)
    faults = FaultConfig(
        rate=RATE,
        kinds=TRANSIENT_KINDS,
        seed=seed,
        max_consecutive=3,
        retry_after="0",
        slow_seconds=2.0,  # the tap's read timeout is 1 s
    )
    return faults, expected


def assert_retries_logged(stderr: str, expected: collections.Counter[str]) -> None:
    """One retry line per injected fault, naming stream, path, attempt and the reason."""
    lines = retry_lines(stderr)
    parsed = [RETRY_LINE.search(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if m is None][:3]
    assert len(lines) == sum(expected.values()), (len(lines), expected)
    want: collections.Counter[str] = collections.Counter()
    for kind, n in expected.items():
        want[RETRY_REASONS[kind]] += n
    got: collections.Counter[str] = collections.Counter()
    for m in parsed:
        assert m is not None
        reason = next((r for r in want if m["reason"].startswith(r[len("after ") :])), None)
        assert reason is not None, m["reason"]
        got[reason] += 1
        assert m["stream"] in {s.name for s in STREAMS}
    assert got == want
    assert any(m is not None and m["n"] == "3" for m in parsed), "no request used all 3 retries"
    assert "giving up" not in stderr


@pytest.mark.parametrize("concurrency", [1, 4])
def test_faults_within_budget_tap_to_jsonl_equals_dump(
    ws: Workspace, fake_api_factory: Any, concurrency: int
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    faults, expected = plan_faults(ws, api)
    api.set_faults(faults)
    api.reset_stats()
    run = ws.tap(ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=concurrency))
    assert run.returncode == 0, run.stderr[-3000:]
    stats = wait_for_faults(api, sum(expected.values()))
    assert stats["faults"] == dict(expected)
    assert stats["faults_total"] / stats["total"] >= 0.08  # about 10 % of requests faulted

    dumps = all_dumps(api)
    records = records_by_stream(run.messages)
    assert_no_duplicate_keys(records)
    assert_equals_dump(records, dumps)
    for stream in STREAMS:  # and in the API's order, as without faults
        assert [normalized(stream.name, r) for r in records[stream.name]] == [
            normalized(stream.name, r) for r in dumps[stream.name]
        ], stream.name
    assert_states_only_cover_emitted(run.messages, dumps)
    assert_final_state(run.last_state, dumps)
    assert_retries_logged(run.stderr, expected)


def test_faults_within_budget_tap_to_bridge_to_duckdb_equals_dump(
    ws: Workspace, fake_api_factory: Any
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    faults, expected = plan_faults(ws, api)
    api.set_faults(faults)
    api.reset_stats()
    res = ws.bridge_run(ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=4))
    assert res.returncode == 0, res.stderr[-3000:]
    stats = wait_for_faults(api, sum(expected.values()))
    assert stats["faults"] == dict(expected)
    dumps = all_dumps(api)
    assert_tables_equal_dump(ws.root, dumps)
    assert_final_state(stored_state(ws.root), dumps)
    assert_retries_logged(res.stderr, expected)  # the tap's stderr passes through the bridge
