"""Issue 7.4: responses the tap cannot use, served by the fake API. Each is a clear error naming
the stream and the path, ends the run (no endless loop: the bad path is requested a bounded
number of times), and advances no state for that stream."""

from __future__ import annotations

from typing import Any

import pytest

from fake_api import BAD_KINDS, DatasetConfig, FaultConfig, FaultRule
from tests.e2e.bridge_support import stored_state
from tests.reliability.support import (
    Workspace,
    assert_no_duplicate_keys,
    assert_states_only_cover_emitted,
    assert_stored_state_not_ahead,
    bookmark,
    failing_path,
)
from tests.support import all_dumps, records_by_stream

pytestmark = pytest.mark.e2e

DATASET = DatasetConfig(applications=10, endpoints_per_app=3, event_types=12, webhook_endpoints=6)

CASES = [
    # (fault kind, stream served it, words the error must contain, requests allowed to the path:
    # 1 + 3 retries for what is retried, else the pages a top-level reader may read ahead)
    (
        "html-200",
        "applications",
        ["giving up after 3 retries", "not valid JSON", "<!DOCTYPE html>"],
        4,
    ),
    ("html-502", "endpoints", ["giving up after 3 retries", "HTTP 502", "<!DOCTYPE html>"], 4),
    ("no-data", "event_types", ["not a list page", "missing required field `data`"], 4),
    ("data-not-list", "integrations", ["not a list page", "got `object` - at `$.data`"], 4),
    ("missing-pk", "event_types", ["has no primary key 'uuid'"], 4),
    ("missing-pk", "endpoints", ["has no primary key 'id'"], 4),
    ("repeated-cursor", "applications", ["a second time", "loop forever"], 2),
    (
        "missing-done",
        "ingest_source_endpoint",
        ["not a list page", "missing required field `done`"],
        4,
    ),
    ("null-iterator-not-done", "webhook_endpoint", ["done=false without an iterator"], 4),
]
assert {c[0] for c in CASES} == set(BAD_KINDS)


@pytest.mark.parametrize(("kind", "stream", "words", "max_requests"), CASES)
def test_bad_response_is_a_clear_error_without_loop_or_state(
    ws: Workspace,
    fake_api_factory: Any,
    kind: str,
    stream: str,
    words: list[str],
    max_requests: int,
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    path = failing_path(api, stream)
    api.set_faults(FaultConfig(rules=(FaultRule(kind, path),)))
    run = ws.tap(ws.config_for(api, page_size=4, max_concurrency=4), timeout=60)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if f"stream '{stream}', GET {path}:" in line]
    assert errors, run.stderr[-3000:]
    message = errors[-1]
    for word in words:
        assert word in message, message
    assert len(message) < 1000, "an excerpt of the body, never all of it"
    assert api.stats()["by_path"][path] <= max_requests
    dumps = all_dumps(api)
    assert all(bookmark(m["value"], stream) is None for m in run.of_type("STATE"))
    assert_states_only_cover_emitted(run.messages, dumps)
    assert_no_duplicate_keys(records_by_stream(run.messages))


def test_bad_response_through_the_bridge_commits_no_state_for_it(
    ws: Workspace, fake_api_factory: Any
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    path = failing_path(api, "integrations")
    api.set_faults(FaultConfig(rules=(FaultRule("missing-pk", path),)))
    res = ws.bridge_run(ws.config_for(api, page_size=4), "--commit-every", "20")
    assert res.returncode == 4, res.stderr[-3000:]
    assert f"stream 'integrations', GET {path}" in res.stderr  # the error names where it failed
    assert bookmark(stored_state(ws.root), "integrations") is None
    assert_stored_state_not_ahead(ws.root, all_dumps(api))
