"""The native source against a faulty fake API: transient faults are retried, bad pages fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from analytics_api.errors import (
    PaginationError,
    RecordError,
    ResponseFormatError,
    RetryBudgetExhaustedError,
)
from analytics_api.streams import STREAMS
from analytics_source import analytics_source
from analytics_source.cli import load_native
from fake_api import TRANSIENT_KINDS, DatasetConfig, FakeAPI, FaultConfig, FaultRule

pytestmark = pytest.mark.e2e

DATA = DatasetConfig(seed=9, applications=15, event_types=20, webhook_endpoints=9)
FAST_RETRIES = {"max_retries": 3, "backoff_factor": 0.01, "request_timeout": 1.0}


def pipeline_for(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "native_faults",
        destination=dlt.destinations.duckdb(str(tmp_path / "faults.duckdb")),
        dataset_name="analytics",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def load(api: FakeAPI, tmp_path: Path, **kwargs: Any) -> Any:
    source = analytics_source(
        api.url, api.token, page_size=6, parallelized=True, **FAST_RETRIES, **kwargs
    )
    return load_native(pipeline_for(tmp_path), source)


def counts(tmp_path: Path) -> dict[str, int]:
    with duckdb.connect(str(tmp_path / "faults.duckdb"), read_only=True) as con:
        return {
            s.name: con.execute(f'SELECT count(DISTINCT id) FROM analytics."{s.name}"').fetchone()[
                0
            ]
            if s.primary_key == "id"
            else con.execute(f'SELECT count(DISTINCT uuid) FROM analytics."{s.name}"').fetchone()[0]
            for s in STREAMS
        }


def test_transient_faults_are_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    faults = FaultConfig(
        rate=0.3,
        kinds=tuple(k for k in TRANSIENT_KINDS if k != "slow"),
        seed=3,
        max_consecutive=3,  # the 4th attempt of a request always succeeds: within 3 retries
        retry_after="0",
        rules=(FaultRule("slow", target="applications", count=1),),
        slow_seconds=2.5,  # beyond the 1 s read timeout: a timeout, then a retry
    )
    with FakeAPI(DATA, faults=faults) as api:
        summary = load(api, tmp_path)
        stats = api.stats()
        expected = {s.name: len(api.dump(s.name)) for s in STREAMS}
    assert stats["faults_total"] > 10, stats["faults"]
    assert summary.records == sum(expected.values())
    assert counts(tmp_path) == expected


def root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or getattr(exc, "exception", None) is not None:
        exc = exc.__cause__ or exc.exception  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("missing-pk", RecordError),
        ("repeated-cursor", PaginationError),
        ("missing-done", ResponseFormatError),
        ("no-data", ResponseFormatError),
        ("data-not-list", ResponseFormatError),
        ("null-iterator-not-done", PaginationError),
        ("html-200", RetryBudgetExhaustedError),
        ("html-502", RetryBudgetExhaustedError),
    ],
)
def test_bad_pages_fail_loudly_and_commit_nothing(
    tmp_path: Path, kind: str, error: type[Exception]
) -> None:
    faults = FaultConfig(rules=(FaultRule(kind, target="webhook_endpoint"),))
    with FakeAPI(DATA, faults=faults) as api, pytest.raises(Exception) as info:
        load(api, tmp_path)
    cause = root_cause(info.value)
    assert isinstance(cause, error), cause
    assert "stream 'webhook_endpoint'" in str(cause)
    pipeline = pipeline_for(tmp_path)
    # nothing was loaded, and no incremental state moved
    assert not pipeline.state.get("sources", {}).get("analytics", {}).get("resources")
    assert not (tmp_path / "faults.duckdb").exists() or not _tables(tmp_path)


def _tables(tmp_path: Path) -> list[str]:
    with duckdb.connect(str(tmp_path / "faults.duckdb"), read_only=True) as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='analytics'"
                " AND table_name NOT LIKE '_dlt%'"
            ).fetchall()
        ]
