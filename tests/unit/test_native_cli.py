"""`dlt-bridge native`: argument parsing and settings checks (no API, no destination; the
checks that need a dlt pipeline are in tests/e2e/test_native_cli.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

import analytics_source.cli as native
from analytics_source.cli import DEFAULT_PIPELINE_NAME, add_native_subcommand, run_native
from tests.support import isolate_native_cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dlt-bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_native_subcommand(sub)
    return parser.parse_args(["native", *argv])


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No settings from the environment or a .dlt folder; logs go to caplog."""
    isolate_native_cli(monkeypatch, tmp_path)


def test_defaults_and_handler() -> None:
    args = parse()
    assert args.handler is run_native
    assert args.pipeline_name == DEFAULT_PIPELINE_NAME
    assert args.page_size == 250
    assert args.max_concurrency == 8 and args.max_retries == 3
    assert args.loader_file_format == "auto"
    assert args.parallel is True
    assert args.destination is None and args.dataset_name is None
    args = parse("--no-parallel", "--destination", "duckdb", "--dataset-name", "raw")
    assert args.parallel is False and args.destination == "duckdb" and args.dataset_name == "raw"


def test_there_is_no_api_key_flag() -> None:
    with pytest.raises(SystemExit):
        parse("--api-key", "secret")


def test_missing_settings_are_usage_errors(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dlt_bridge"):
        assert run_native(parse()) == 2
    text = caplog.text
    assert "SOURCES__ANALYTICS__API_KEY" in text
    assert "--base-url" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--page-size", "251"], "--page-size"),
        (["--start-date", "yesterday"], "--start-date"),
        (["--streams", "applications,nope"], "unknown stream(s) nope"),
        (["--max-concurrency", "0"], "--max-concurrency"),
    ],
)
def test_bad_values_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, argv: list[str], message: str
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", "k")
    with caplog.at_level(logging.ERROR, logger="dlt_bridge"):
        assert run_native(parse("--base-url", "http://127.0.0.1:9", *argv)) == 2
    assert message in caplog.text


def test_settings_come_from_dlt_config_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = native._lookup
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", "from-section")
    assert lookup(["sources.analytics.api_key", "api_key"], secret=True, env_fallback="X") == (
        "from-section"
    )
    monkeypatch.delenv("SOURCES__ANALYTICS__API_KEY")
    monkeypatch.setenv("API_KEY", "from-root")  # the contract's dlt.secrets["api_key"]
    assert lookup(["sources.analytics.api_key", "api_key"], secret=True, env_fallback="X") == (
        "from-root"
    )
    monkeypatch.delenv("API_KEY")
    monkeypatch.setenv("TAP_ANALYTICS_API_KEY", "from-tap-env")
    assert (
        lookup(
            ["sources.analytics.api_key", "api_key"],
            secret=True,
            env_fallback="TAP_ANALYTICS_API_KEY",
        )
        == "from-tap-env"
    )
    monkeypatch.setenv("SOURCES__ANALYTICS__BASE_URL", "http://h")
    assert lookup(["sources.analytics.base_url"], secret=False, env_fallback="X") == "http://h"


def test_analytics_source_reads_dlt_config_and_the_contracts_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import requests_mock

    from analytics_source import analytics_source

    monkeypatch.setenv("SOURCES__ANALYTICS__BASE_URL", "https://api.example.com")
    monkeypatch.setenv("API_KEY", "root-key")  # dlt.secrets["api_key"], as in the contract
    source = analytics_source(page_size=10)
    assert source.name == "analytics" and source.max_table_nesting == 0
    with requests_mock.Mocker() as mocker:
        mocker.get(
            "https://api.example.com/v1/app",
            json={"data": [{"id": "a", "updatedAt": "2024-01-01T00:00:00Z"}], "done": True},
        )
        rows = list(source.with_resources("applications"))
    assert [r["id"] for r in rows] == ["a"]
    assert mocker.last_request.headers["Authorization"] == "Bearer root-key"
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", "section-key")  # the section wins
    with requests_mock.Mocker() as mocker:
        mocker.get(
            "https://other.example.com/v1/app", json={"data": [], "iterator": None, "done": True}
        )
        list(analytics_source(base_url="https://other.example.com").with_resources("applications"))
    assert mocker.last_request.headers["Authorization"] == "Bearer section-key"
