"""`dlt-bridge native` against the fake API: settings from dlt's env, a DuckDB file, a rerun."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

import analytics_source.cli as native
from analytics_api.streams import STREAMS
from analytics_source.cli import DEFAULT_PIPELINE_NAME, add_native_subcommand, run_native
from fake_api import DatasetConfig, FakeAPI
from tests.support import isolate_native_cli

pytestmark = pytest.mark.e2e


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dlt-bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_native_subcommand(sub)
    return parser.parse_args(["native", *argv])


def counts(database: Path, dataset: str = "analytics") -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {
            s.name: con.execute(f'SELECT count(*) FROM "{dataset}"."{s.name}"').fetchone()[0]
            for s in STREAMS
        }


@pytest.fixture
def api() -> Any:
    with FakeAPI(DatasetConfig(seed=4, applications=12)) as running:
        yield running


def test_native_command_loads_everything_then_only_changes(
    api: FakeAPI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", api.token)
    monkeypatch.setattr(native, "_ensure_logging", lambda level: None)
    argv = [
        "--base-url",
        api.url,
        "--pipelines-dir",
        str(tmp_path / "pipelines"),
        "--page-size",
        "9",
    ]
    assert run_native(parse(*argv)) == 0
    database = tmp_path / f"{DEFAULT_PIPELINE_NAME}.duckdb"
    expected = {s.name: len(api.dump(s.name)) for s in STREAMS}
    assert counts(database) == expected

    api.mutate(share=0.3, seed=2)
    api.reset_stats()
    assert run_native(parse(*argv)) == 0
    assert counts(database) == {s.name: len(api.dump(s.name)) for s in STREAMS}
    assert api.stats()["by_template"]["/v1/app/{app_id}/endpoint"] == 12

    caplog.clear()  # (the runs before may have been recorded: another test set the level)
    with caplog.at_level(logging.INFO, logger="dlt_bridge"):  # nothing changed upstream
        assert run_native(parse(*argv)) == 0
    said = [r.getMessage() for r in caplog.records if r.name == "dlt_bridge"]
    assert any(line.startswith("nothing new to load into duckdb") for line in said), said
    assert not any(line.startswith("loaded") for line in said), said
    assert said[-1].endswith("state unchanged"), said


def test_native_command_reports_a_bad_key_without_leaking_it(
    api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", "sk_wrong_SECRET_0042")
    monkeypatch.setattr(native, "_ensure_logging", lambda level: None)
    monkeypatch.setattr(native.log, "propagate", True)
    args = parse("--base-url", api.url, "--pipelines-dir", str(tmp_path / "pipelines"))
    assert run_native(args) == 1
    assert "401" in caplog.text
    assert "sk_wrong_SECRET_0042" not in caplog.text


def test_dlt_bridge_native_subcommand(api: FakeAPI, tmp_path: Path) -> None:
    """`dlt-bridge native` as users run it (wired into `dlt_bridge.cli`)."""
    from dlt_bridge import cli

    parser = cli.build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "native" not in choices:
        pytest.skip("`native` is not wired into dlt_bridge.cli yet")
    env = {"SOURCES__ANALYTICS__API_KEY": api.token, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    import os

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlt_bridge",
            "native",
            "--destination",
            "duckdb",
            "--dataset-name",
            "raw",
            "--pipeline-name",
            "cli_native",
            "--base-url",
            api.url,
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert counts(tmp_path / "cli_native.duckdb", "raw") == {
        s.name: len(api.dump(s.name)) for s in STREAMS
    }
    assert api.token not in result.stderr


# -- settings refused once a pipeline exists (a DuckDB destination, no data loaded) ------------


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No settings from the environment or a .dlt folder; logs go to caplog."""
    isolate_native_cli(monkeypatch, tmp_path)


@pytest.mark.usefixtures("isolated")
def test_duckdb_file_named_like_the_dataset_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", "k")
    args = parse(
        "--base-url",
        "http://127.0.0.1:9",
        "--pipeline-name",
        "analytics",
        "--dataset-name",
        "analytics",
        "--pipelines-dir",
        str(tmp_path / "p"),
    )
    with caplog.at_level(logging.ERROR, logger="dlt_bridge"):
        assert run_native(args) == 2  # a usage error, before any request
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "'analytics'" in errors[-1]  # names the clashing dataset


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "SOURCES__ANALYTICS__API_KEY"), (403, "--streams"), (422, "--page-size")],
)
def test_refusals_give_a_hint_and_never_the_key(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    status: int,
    hint: str,
) -> None:
    import requests_mock

    key = "sk_cli_SECRET_77ab"
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", key)
    args = parse(
        "--base-url",
        "https://api.example.com",
        "--streams",
        "applications",
        "--pipelines-dir",
        str(tmp_path / "p"),
    )
    body: dict[str, Any] = {"code": "refused", "detail": f"key {key} refused"}
    if status == 422:
        body = {"detail": [{"loc": ["query", "limit"], "msg": f"bad {key}", "type": "x"}]}
    with requests_mock.Mocker() as mocker, caplog.at_level(logging.DEBUG):
        mocker.get("https://api.example.com/v1/app", status_code=status, json=body)
        assert run_native(args) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and f"HTTP {status}" in errors[-1] and "Hint:" in errors[-1]
    assert hint in errors[-1]
    assert key not in caplog.text
