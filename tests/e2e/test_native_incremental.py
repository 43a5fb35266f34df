"""The native dlt source through a real dlt pipeline into DuckDB, on a mocked API: incremental
loads across runs, `start_date`, children of unchanged parents, the state's layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
import requests_mock

import dlt_bridge  # noqa: F401  (telemetry off by default)
from analytics_source import analytics_source
from tests.unit.mockapi import BASE_URL, Pages, queries, rec, serve_apps_with_children

pytestmark = pytest.mark.e2e

API_KEY = "sk_native_SECRET_91c0"


@pytest.fixture
def mocker() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        yield m


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "native_unit",
        destination=dlt.destinations.duckdb(str(tmp_path / "unit.duckdb")),
        dataset_name="analytics",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def _load(pipeline: dlt.Pipeline, *streams: str, **kwargs: Any) -> dict[str, int]:
    source = analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(*streams)
    pipeline.run(source)
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace is not None else None
    assert info is not None
    counts = info.row_counts
    return {s: counts.get(s, 0) for s in streams}


def _ids(pipeline: dlt.Pipeline, table: str) -> list[str]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT id FROM {table} ORDER BY id") or []
        return [r[0] for r in rows]


def test_incremental_filters_by_time_not_by_string(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    records = [
        rec("app_a", "2024-01-01T00:00:00Z"),  # the newest of the first run
        rec("app_b", "2023-06-01T12:00:00.123456789Z"),
        rec("app_c", "2023-06-01T12:00:00.1Z"),
    ]
    served = Pages(records)
    mocker.get(BASE_URL + "/v1/app", json=served)
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "applications") == {"applications": 3}
    state = pipeline.state["sources"]["analytics"]["resources"]["applications"]["incremental"]
    assert state["updatedAt"]["last_value"] == "2024-01-01T00:00:00.000000000Z"

    # app_b moves half a second past the bookmark: as a raw string "...00.5Z" < "...00Z"
    served.records = [
        rec("app_a", "2024-01-01T00:00:00.000Z"),  # unchanged, written with another precision
        rec("app_b", "2024-01-01T00:00:00.5Z"),
        rec("app_c", "2023-06-01T12:00:00.100000Z"),  # unchanged
        rec("app_d", "2023-12-31T23:59:59.999999999Z"),  # new, but older than the bookmark
    ]
    assert _load(pipeline, "applications") == {"applications": 1}
    assert _ids(pipeline, "applications") == ["app_a", "app_b", "app_c"]

    served.records.append(rec("app_e", "2024-01-01T00:00:00.500000001Z"))
    assert _load(pipeline, "applications") == {"applications": 1}
    assert _ids(pipeline, "applications") == ["app_a", "app_b", "app_c", "app_e"]


def test_start_date_is_inclusive_and_format_blind(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        json=Pages(
            [
                rec("app_a", "2024-03-01T00:00:00Z"),
                rec("app_b", "2024-02-29T23:59:59.999999Z"),
                rec("app_c", "2024-03-01T00:00:00.000000001Z"),
            ]
        ),
    )
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "applications", start_date="2024-03-01T00:00:00.000Z") == {
        "applications": 2
    }
    assert _ids(pipeline, "applications") == ["app_a", "app_c"]


def test_children_of_unchanged_parents_are_visited(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    apps = [rec(f"app_{i}", "2024-01-01T00:00:00Z") for i in range(5)]
    children = serve_apps_with_children(mocker, apps, per_app=2)
    pipeline = _pipeline(tmp_path)
    # parents come in 3 pages of 2; children of later pages are OLDER than earlier ones
    # (2024-02-10, -09, ...): nothing may be dropped inside the run
    assert _load(pipeline, "applications", "endpoints", page_size=2) == {
        "applications": 5,
        "endpoints": 10,
    }
    # one endpoint of the last app changes; no application does
    changed = children["app_4"][1]
    changed["updatedAt"] = "2024-02-10T00:00:01.5Z"
    changed["url"] = "https://h/changed"
    mocker.reset_mock()
    assert _load(pipeline, "applications", "endpoints", page_size=2) == {
        "applications": 0,
        "endpoints": 1,
    }
    for app in apps:
        assert queries(mocker, f"/v1/app/{app['id']}/endpoint")
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT app_id, url FROM endpoints WHERE id = 'ep_4_1'")
    assert rows == [("app_4", "https://h/changed")]


def test_tokens_replicate_on_created_at(mocker: requests_mock.Mocker, tmp_path: Path) -> None:
    tokens: list[dict[str, Any]] = [
        {"id": "key_1", "name": "a", "createdAt": "2024-01-01T00:00:00Z"},
        {"id": "key_2", "name": None, "createdAt": "2024-01-02T00:00:00.25Z"},
    ]
    served = Pages(tokens)
    mocker.get(BASE_URL + "/v1/management/authentication/api-token", json=served)
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "tokens") == {"tokens": 2}
    served.records = [*tokens, {"id": "key_3", "createdAt": "2024-01-02T00:00:00.3Z"}]
    assert _load(pipeline, "tokens") == {"tokens": 1}


def test_state_lives_under_the_stream_and_its_replication_key(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    """The keys the previous versions used, so an existing pipeline continues incrementally."""
    apps = [rec("app_0", "2024-01-01T00:00:00.5Z")]
    serve_apps_with_children(mocker, apps, per_app=1)
    pipeline = _pipeline(tmp_path)
    _load(pipeline, "applications", "endpoints")
    resources = pipeline.state["sources"]["analytics"]["resources"]
    assert resources["applications"]["incremental"]["updatedAt"]["last_value"] == (
        "2024-01-01T00:00:00.500000000Z"
    )
    assert resources["endpoints"]["incremental"]["updatedAt"]["last_value"] == (
        "2024-02-10T00:00:00.000000000Z"
    )
