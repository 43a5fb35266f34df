"""The `target-dlt` shim (plugins/target-dlt): Meltano's `--config` file -> `dlt-bridge load` argv.

Fast (no Meltano, no dlt run): the shim module is loaded from its file. `test_meltano.py` runs it
for real through `meltano run tap-analytics target-dlt`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SHIM = Path(__file__).resolve().parents[2] / "plugins" / "target-dlt" / "meltano_target_dlt.py"


@pytest.fixture(scope="module")
def shim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("meltano_target_dlt", SHIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_become_bridge_flags(shim: ModuleType, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = shim.bridge_argv(
        {
            "destination": "duckdb",
            "dataset_name": "analytics",
            "pipeline_name": "tap_analytics",
            "pipelines_dir": ".meltano/dlt",
            "loader_file_format": "parquet",
            "batch_size": 5000,
            "commit_every": 0,
            "on_pending": "load",
            "log_level": "INFO",
            "duckdb_path": "output/x.duckdb",  # not a flag: goes through the environment
            "unknown": "ignored",
            "progress_interval": None,  # unset settings are left out
            "user_agent": "",
        },
        ["--help"],
    )
    assert argv == [
        "load",
        "--destination",
        "duckdb",
        "--dataset-name",
        "analytics",
        "--pipeline-name",
        "tap_analytics",
        "--pipelines-dir",
        str(tmp_path / ".meltano" / "dlt"),
        "--loader-file-format",
        "parquet",
        "--batch-size",
        "5000",
        "--commit-every",
        "0",
        "--on-pending",
        "load",
        "--log-level",
        "INFO",
        "--help",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "c.json"], ("c.json", [])),
        (["--config=c.json", "--input", "m"], ("c.json", ["--input", "m"])),
        (["--input", "m"], (None, ["--input", "m"])),
    ],
)
def test_config_argument_is_taken_out(shim: ModuleType, args, expected) -> None:
    assert shim.split_config(args) == expected


def test_main_runs_the_bridge_with_the_duckdb_file(
    shim: ModuleType, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # set, then delete: monkeypatch then restores the variable's absence after the test, so the
    # shim's own os.environ write cannot leak into later tests' dlt pipelines
    monkeypatch.setenv(shim.DUCKDB_ENV, "unset")
    monkeypatch.delenv(shim.DUCKDB_ENV)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"duckdb_path": "output/db.duckdb", "dataset_name": "a"}))
    seen: dict[str, object] = {}

    def fake_bridge(argv: list[str]) -> int:
        seen["argv"] = argv
        seen["database"] = os.environ.get(shim.DUCKDB_ENV)
        return 7

    import dlt_bridge.cli

    monkeypatch.setattr(dlt_bridge.cli, "main", fake_bridge)
    assert shim.main(["--config", str(config)]) == 7
    assert seen["argv"] == ["load", "--dataset-name", "a"]
    assert seen["database"] == str(tmp_path / "output" / "db.duckdb")
    assert (tmp_path / "output").is_dir()


def _load_actions() -> list[argparse.Action]:
    """The options of `dlt-bridge load` (argparse has no public way to list a subcommand's)."""
    from dlt_bridge.args import build_parser

    (subparsers,) = [a for a in build_parser()._actions if a.dest == "command"]
    load = subparsers.choices["load"]  # type: ignore[index]
    return [a for a in load._actions if a.option_strings and a.dest != "help"]


def test_every_flag_of_dlt_bridge_load_is_a_target_dlt_setting(shim: ModuleType) -> None:
    """What `dlt-bridge load` takes, a Meltano user can set: each flag has a setting in the shim
    and in meltano.yml, and every file format is an option (`--input` stays out: Meltano feeds
    stdin)."""
    actions = {a.option_strings[0]: a for a in _load_actions()}
    assert set(shim.FLAGS.values()) == set(actions) - {"--input"}
    project = yaml.safe_load((SHIM.parents[2] / "meltano.yml").read_text("utf-8"))
    (plugin,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-dlt"]
    declared = {s["name"]: s for s in plugin["settings"]}
    assert set(declared) == set(shim.FLAGS) | {"duckdb_path"}
    for name, flag in shim.FLAGS.items():
        choices = actions[flag].choices
        if choices:
            assert {o["value"] for o in declared[name]["options"]} == set(choices), name
