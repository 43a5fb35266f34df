"""`dlt-bridge run|native --environment`: flags, checks before anything runs, per-environment
arguments, and the report, with the runs themselves replaced (no process, no API). The real
runs are in tests/e2e/test_bridge_environments.py."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import dlt_bridge.environments as environments
import dlt_bridge.run as bridge_run
from dlt_bridge.args import build_parser
from dlt_bridge.cli import main

SECRET_A = "sk-alpha-SECRET-0001"
SECRET_B = "sk-beta-SECRET-0002"
FILE = """\
environments:
  - name: alpha
    base_url: https://alpha.example.com
    api_key_env: ALPHA_KEY
    page_size: 100
    deletes: soft
  - name: beta
    base_url: https://beta.example.com
    api_key_env: BETA_KEY
"""


@pytest.fixture(autouse=True)
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environments file with two environments, both keys set, no dlt settings around."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("DESTINATION__", "TAP_ANALYTICS_", "SOURCES__")) or name in (
            "DESTINATION_TYPE",
            "DATASET_NAME",
        ):
            monkeypatch.delenv(name)
    (tmp_path / "envs.yml").write_text(FILE, encoding="utf-8")
    monkeypatch.setenv("ANALYTICS_ENVIRONMENTS", str(tmp_path / "envs.yml"))
    monkeypatch.setenv("ALPHA_KEY", SECRET_A)
    monkeypatch.setenv("BETA_KEY", SECRET_B)
    return tmp_path


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[environments.Plan]:
    """Replaces each environment's run: records its plan and exits 0."""
    seen: list[environments.Plan] = []

    def fake_run(plan: environments.Plan) -> int:
        seen.append(plan)
        return 0

    monkeypatch.setattr(environments, "_run", fake_run)
    return seen


def bridge(workdir: Path, *argv: str) -> int:
    return main([*argv, "--pipelines-dir", str(workdir / "pipelines")])


def summary(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_the_flag_repeats_and_run_needs_a_config_or_an_environment() -> None:
    args = build_parser().parse_args(["run", "--environment", "a", "--environment", "b"])
    assert args.environment == ["a", "b"] and args.config is None
    assert build_parser().parse_args(["native", "--environment", "all"]).environment == ["all"]
    assert build_parser().parse_args(["run", "--config", "c.json"]).environment is None
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["run"])
    assert caught.value.code == 2


def test_names_are_taken_once_and_all_means_every_one() -> None:
    assert environments.selected_names(["b", "a", "b"]) == ["b", "a"]
    assert environments.selected_names(["a", "all"]) == []
    assert environments.selected_names(None) == []


@pytest.mark.parametrize("command", ["run", "native"])
def test_every_environment_runs_in_file_order_with_its_own_pipeline_and_file(
    command: str,
    workdir: Path,
    runs: list[environments.Plan],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bridge(workdir, command, "--environment", "beta", "--environment", "alpha") == 0
    assert [p.environment.name for p in runs] == ["alpha", "beta"]
    for plan in runs:
        name = plan.environment.name
        assert plan.args.pipeline_name == f"analytics_{name}"
        assert plan.args.dataset_name == "analytics"
        assert plan.destination == "duckdb"
        assert plan.location == str(workdir / f"analytics_{name}.duckdb")
        assert plan.args.environment is None
    report = summary(capsys.readouterr().out)
    assert [(r["environment"], r["status"], r["exit_code"]) for r in report] == [
        ("alpha", "ok", 0),
        ("beta", "ok", 0),
    ]
    assert report[0]["location"].endswith("analytics_alpha.duckdb")


def test_a_server_destination_gets_a_dataset_per_environment(
    workdir: Path, runs: list[environments.Plan]
) -> None:
    assert bridge(workdir, "run", "--environment", "all", "--destination", "postgres") == 0
    assert [(p.destination, p.args.dataset_name, p.location) for p in runs] == [
        ("postgres", "analytics_alpha", ""),
        ("postgres", "analytics_beta", ""),
    ]


def test_file_settings_win_over_the_command_line_only_where_the_file_sets_them(
    workdir: Path, runs: list[environments.Plan]
) -> None:
    config = workdir / "tap.json"
    config.write_text(json.dumps({"page_size": 50, "user_agent": "ua/1"}), encoding="utf-8")
    assert (
        bridge(workdir, "run", "--environment", "all", "--config", str(config), "--deletes", "hard")
        == 0
    )
    alpha, beta = runs
    assert alpha.tap_config == {
        "page_size": 100,
        "user_agent": "ua/1",
        "base_url": "https://alpha.example.com",
    }
    assert beta.tap_config == {
        "page_size": 50,
        "user_agent": "ua/1",
        "base_url": "https://beta.example.com",
    }
    assert (alpha.args.deletes, beta.args.deletes) == ("soft", "hard")
    assert (alpha.api_key, beta.api_key) == (SECRET_A, SECRET_B)

    runs.clear()
    assert bridge(workdir, "native", "--environment", "all", "--page-size", "10") == 0
    alpha, beta = runs
    assert (alpha.args.base_url, alpha.args.page_size, alpha.args.deletes) == (
        "https://alpha.example.com",
        100,
        "soft",
    )
    assert (beta.args.base_url, beta.args.page_size, beta.args.deletes) == (
        "https://beta.example.com",
        10,
        "off",
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["native", "--base-url", "https://x.example.com"], "--base-url conflicts"),
        (["run", "--pipeline-name", "mine"], "--pipeline-name conflicts"),
        (["native", "--dataset-name", "raw"], "--dataset-name conflicts"),
        (["native", "--page-size", "999"], "environment 'beta': setting 'page_size'"),
        (["run", "--config", "missing.json"], "--config missing.json: cannot read it"),
    ],
)
def test_conflicting_or_bad_flags_stop_everything_before_a_run(
    argv: list[str],
    expected: str,
    workdir: Path,
    runs: list[environments.Plan],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bridge(workdir, *argv, "--environment", "all") == 2
    assert runs == []
    assert expected in capsys.readouterr().err


def test_a_config_file_with_a_url_or_key_is_refused_without_quoting_it(
    workdir: Path, runs: list[environments.Plan], capsys: pytest.CaptureFixture[str]
) -> None:
    config = workdir / "tap.json"
    config.write_text(json.dumps({"api_key": SECRET_A, "base_url": "https://a"}), "utf-8")
    assert bridge(workdir, "run", "--environment", "alpha", "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert "sets base_url, api_key, which conflicts with --environment" in err
    assert SECRET_A not in err and runs == []


def test_a_missing_key_of_a_selected_environment_stops_everything(
    workdir: Path,
    runs: list[environments.Plan],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("BETA_KEY")
    assert bridge(workdir, "run", "--environment", "all") == 2
    assert "environment 'beta', field 'api_key_env': variable BETA_KEY is not set" in (
        capsys.readouterr().err
    )
    assert runs == []
    # an environment that is not selected needs no key
    assert bridge(workdir, "run", "--environment", "alpha") == 0
    assert [p.environment.name for p in runs] == ["alpha"]


@pytest.mark.parametrize(
    ("setup", "argv", "expected"),
    [
        ({}, ["--environment", "gamma"], "unknown environment(s) gamma"),
        ({"ANALYTICS_ENVIRONMENTS": None}, ["--environment", "all"], "ANALYTICS_ENVIRONMENTS"),
        (
            {"DESTINATION__DUCKDB__CREDENTIALS": "shared.duckdb"},
            ["--environment", "alpha"],
            "a file every environment would share",
        ),
    ],
)
def test_file_names_and_destination_are_checked_before_a_run(
    setup: dict[str, str | None],
    argv: list[str],
    expected: str,
    workdir: Path,
    runs: list[environments.Plan],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in setup.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    assert bridge(workdir, "run", *argv) == 2
    assert expected in capsys.readouterr().err
    assert runs == []


def test_a_failing_environment_is_reported_and_the_next_still_runs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order: list[str] = []

    def fake_run(plan: environments.Plan) -> int:
        order.append(plan.environment.name)
        if plan.environment.name == "alpha":
            environments.log.error("HTTP 401 for key %s\nsecond line", plan.api_key)
            return 4
        return 0

    monkeypatch.setattr(environments, "_run", fake_run)
    before = dict(os.environ)
    assert bridge(workdir, "run", "--environment", "all") == 4
    assert order == ["alpha", "beta"]
    assert dict(os.environ) == before  # keys never go through the process environment
    captured = capsys.readouterr()
    alpha, beta = summary(captured.out)
    assert (alpha["status"], alpha["exit_code"]) == ("failed", 4)
    assert alpha["error"] == "HTTP 401 for key *** second line"  # the whole message, one line
    assert (beta["status"], beta["exit_code"], beta["error"]) == ("ok", 0, None)
    assert "environment 'alpha' failed (exit 4, key from ALPHA_KEY): HTTP 401" in captured.err
    assert "[alpha] HTTP 401" in captured.err  # the run's own lines carry its name
    assert "environments: 2 run, 1 failed" in captured.err
    assert SECRET_A not in captured.out + captured.err


def test_an_interrupt_stops_the_remaining_environments(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(plan: environments.Plan) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(environments, "_run", interrupted)
    assert bridge(workdir, "native", "--environment", "all") == 130
    statuses = [(r["environment"], r["status"]) for r in summary(capsys.readouterr().out)]
    assert statuses == [("alpha", "failed"), ("beta", "not run")]


def test_run_hands_the_key_to_the_tap_in_a_private_file_that_is_removed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[dict[str, Any], int, str]] = []

    def fake_load(args: argparse.Namespace, options: Any, *, run_tap: bool) -> int:
        mode = stat.S_IMODE(os.stat(args.config).st_mode)
        seen.append((json.loads(Path(args.config).read_text("utf-8")), mode, args.config))
        return 0

    monkeypatch.setattr(bridge_run, "load_command", fake_load)
    assert bridge(workdir, "run", "--environment", "beta") == 0
    ((config, mode, path),) = seen
    assert config == {"base_url": "https://beta.example.com", "api_key": SECRET_B}
    assert mode == 0o600 and not os.path.exists(path)


def test_meltano_account_extractors_each_set_their_key_variable_and_load_schema() -> None:
    """An extractor inheriting tap-analytics without its own `api_key` would use the parent's
    key, and without its own `load_schema` would load into tap-analytics' schema and file
    (docs/meltano.md, "Several accounts"). The runs: tests/e2e/test_meltano_environments.py."""
    import yaml

    project = yaml.safe_load((Path(__file__).parents[2] / "meltano.yml").read_text("utf-8"))
    extractors = {p["name"]: p for p in project["plugins"]["extractors"]}
    assert extractors["tap-analytics"]["load_schema"] == "analytics"
    accounts = [p for p in extractors.values() if p.get("inherit_from") == "tap-analytics"]
    assert {"tap-analytics--prod", "tap-analytics--staging"} <= {p["name"] for p in accounts}
    schemas = {"analytics"}
    for plugin in accounts:
        account = plugin["name"].removeprefix("tap-analytics--")
        assert plugin["config"]["api_key"] == f"$ANALYTICS_{account.upper()}_API_KEY"
        assert plugin["load_schema"] == f"analytics_{account}"
        assert plugin["load_schema"] not in schemas, "two extractors share one load_schema"
        schemas.add(plugin["load_schema"])
