"""The contract-style baseline used by the benchmarks: the contract's config does not build in
dlt as written, and the minimal fixes in `benchmarks.native_source` make it load every record."""

from __future__ import annotations

import copy
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from dlt.sources.rest_api import rest_api_source

import dlt_bridge  # noqa: F401  (telemetry default)
from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from benchmarks.native_source import CONTRACT_CONFIG, contract_config_fixed
from tests.unit.mockapi import BASE_URL, Pages


def test_contract_config_matches_the_stream_definitions() -> None:
    resources = {r["name"]: r["endpoint"]["path"] for r in CONTRACT_CONFIG["resources"]}
    assert resources == {s.name: s.path for s in STREAMS}


def test_contract_config_as_written_does_not_build() -> None:
    with pytest.raises(Exception, match="stop_condition"):
        rest_api_source(copy.deepcopy(CONTRACT_CONFIG))  # type: ignore[arg-type]


def test_cursor_paginator_without_cursor_path_loads_page_one_only() -> None:
    """The contract's paginator minus `stop_condition`: dlt reads `cursors.next`, finds nothing."""
    config = copy.deepcopy(CONTRACT_CONFIG)
    config["client"]["base_url"] = BASE_URL
    config["resources"] = [config["resources"][0]]
    del config["resources"][0]["endpoint"]["paginator"]["stop_condition"]
    records = [{"id": f"app_{i}", "updatedAt": "2024-01-01T00:00:00Z"} for i in range(120)]
    with requests_mock.Mocker() as mocker:
        mocker.get(BASE_URL + "/v1/app", json=Pages(records))
        rows = list(rest_api_source(config))  # type: ignore[arg-type]
    assert len(rows) == 50  # the server's default page, then it stops


def test_fixed_contract_config_loads_every_page_and_child() -> None:
    apps = [{"id": f"app_{i}", "updatedAt": "2024-01-01T00:00:00Z"} for i in range(7)]
    with requests_mock.Mocker() as mocker:
        mocker.get(BASE_URL + "/v1/app", json=Pages(apps))
        for app in apps:
            mocker.get(
                f"{BASE_URL}/v1/app/{app['id']}/endpoint",
                json=Pages([{"id": f"ep_{app['id']}_{j}"} for j in range(3)]),
            )
        source = rest_api_source(contract_config_fixed(BASE_URL, "k", page_size=2))  # type: ignore[arg-type]
        rows = list(source.with_resources("endpoints"))
        mocker.get(BASE_URL + "/v1/event-type", json=Pages([{"uuid": "u"}], "uuid"))
        list(rest_api_source(contract_config_fixed(BASE_URL, "k")).with_resources("event_types"))  # type: ignore[arg-type]
        event_type_query = parse_qs(urlsplit(mocker.last_request.url).query)
    assert len(rows) == 21
    assert event_type_query == {"include_archived": ["true"], "limit": ["250"]}
    resources = {r["name"]: r for r in contract_config_fixed(BASE_URL, "k")["resources"]}
    assert resources["event_types"]["primary_key"] == STREAMS_BY_NAME["event_types"].primary_key
