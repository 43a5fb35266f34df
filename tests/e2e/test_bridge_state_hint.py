"""`dlt-bridge run` starts the tap from the state its last run committed (the state hint), before
dlt is imported, and checks that guess against the destination: a right hint saves the wait, a
wrong or broken one costs a restart of the tap, never data (`dlt_bridge.state_hint`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlt_bridge.args import DEFAULT_PIPELINE_NAME, build_parser, tap_flags
from dlt_bridge.state_hint import KEY_FLAGS, hint_path
from tests.e2e.bridge_support import (
    FAIL_AT,
    assert_tables_equal_dump,
    chdir,
    common_args,
    main_in_process,
    stored_state,
    write_tap_config,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, api: Any, env: dict[str, str] | None = None) -> int:
    config = write_tap_config(tmp_path, api)
    argv = ["run", "--config", str(config), *common_args(tmp_path)]
    result = main_in_process(tmp_path, argv, env)
    if env is None:
        assert result.returncode == 0, result.stderr[-3000:]
    return result.returncode


def _hint_file(tmp_path: Path) -> Path:
    argv = ["run", "--config", "c.json", *common_args(tmp_path)]
    flags = tap_flags(argv)
    assert flags is not None
    with chdir(tmp_path):
        path = hint_path(flags, DEFAULT_PIPELINE_NAME)
    assert path is not None
    return Path(path)


def _hinted_state(tmp_path: Path) -> Any:
    return json.loads(_hint_file(tmp_path).read_text())["singer_state"]


def _write_hint(tmp_path: Path, state: Any) -> None:
    path = _hint_file(tmp_path)
    content = json.loads(path.read_text())
    path.write_text(json.dumps({**content, "singer_state": state}))


def _requests_of_the_tap_alone(tmp_path: Path, api: Any, state: Any) -> int:
    """What one run of the tap from `state` asks the API (the data must not change meanwhile)."""
    config = write_tap_config(tmp_path, api)
    state_file = tmp_path / "tap-state.json"
    state_file.write_text(json.dumps(state))
    api.reset_stats()
    command = [sys.executable, "-m", "tap_analytics", "--config", str(config)]
    subprocess.run(
        [*command, "--state", str(state_file)], capture_output=True, check=True, timeout=300
    )
    return int(api.stats()["total"])


def test_the_hint_is_the_committed_state_and_one_tap_runs_from_it(
    fake_api: Any, tmp_path: Path
) -> None:
    _run(tmp_path, fake_api)
    committed = stored_state(tmp_path)
    assert committed and _hinted_state(tmp_path) == committed
    assert oct(_hint_file(tmp_path).stat().st_mode & 0o777) == "0o600"
    fake_api.mutate(share=0.2, seed=3)
    alone = _requests_of_the_tap_alone(tmp_path, fake_api, committed)
    fake_api.reset_stats()
    _run(tmp_path, fake_api)
    assert fake_api.stats()["total"] == alone  # the early tap's run was used: no second tap
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    assert _hinted_state(tmp_path) == stored_state(tmp_path) != committed


@pytest.mark.parametrize("wrong", ["future", "empty", "torn"])
def test_a_wrong_hint_costs_a_restart_not_data(fake_api: Any, tmp_path: Path, wrong: str) -> None:
    _run(tmp_path, fake_api)
    committed = stored_state(tmp_path)
    if wrong == "future":  # trusted, this tap would send nothing of the changes below
        future = json.loads(json.dumps(committed))
        for bookmark in future["bookmarks"].values():
            bookmark["replication_key_value"] = "2999-01-01T00:00:00.000000000Z"
        _write_hint(tmp_path, future)
    elif wrong == "empty":  # a full sync: right data, but the run must still start from the state
        _write_hint(tmp_path, None)
    else:
        _hint_file(tmp_path).write_text('{"format": 1, "singer_st')
    fake_api.mutate(share=0.3, seed=4)
    alone = _requests_of_the_tap_alone(tmp_path, fake_api, committed)
    fake_api.reset_stats()
    _run(tmp_path, fake_api)
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    after = stored_state(tmp_path)
    assert after != committed and _hinted_state(tmp_path) == after
    if wrong == "torn":  # no hint: the tap waited for the stored state, as without hints
        assert fake_api.stats()["total"] == alone
    else:  # the guessed tap may have asked some pages before it was stopped
        assert fake_api.stats()["total"] >= alone


def test_a_failed_load_leaves_the_hint_at_the_committed_state(
    fake_api: Any, tmp_path: Path
) -> None:
    _run(tmp_path, fake_api)
    committed = stored_state(tmp_path)
    fake_api.mutate(share=0.3, seed=6)
    assert _run(tmp_path, fake_api, FAIL_AT["load"]) != 0
    assert _hinted_state(tmp_path) == stored_state(tmp_path) == committed
    _run(tmp_path, fake_api)  # finishes the pending package, then runs from its state
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    assert _hinted_state(tmp_path) == stored_state(tmp_path)


def test_hints_turned_off_or_unwritable_change_nothing_but_speed(
    fake_api: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DLT_BRIDGE_STATE_HINTS", "off")
    _run(tmp_path, fake_api)
    assert not any(tmp_path.rglob("*.hint-*")) and stored_state(tmp_path)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("DLT_BRIDGE_STATE_HINTS", str(blocked / "hints"))
    fake_api.mutate(share=0.2, seed=7)
    _run(tmp_path, fake_api)
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    assert blocked.read_text() == ""


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--pipeline-name", "p1", "--dataset-name", "d1"],
        ["--destination", "duckdb", "--deletes", "soft", "--catalog", "cat.json"],
        ["--pipelines-dir", "elsewhere", "--tap-command", "my-tap --flag"],
    ],
)
def test_the_early_flags_read_as_the_full_parser_does(extra: list[str]) -> None:
    """The tap started before dlt's import is kept only when the full command line agrees."""
    argv = ["run", "--config", "c.json", *extra]
    early, full = tap_flags(argv), build_parser().parse_args(argv)
    assert early is not None
    for name in ("config", "catalog", "tap_command", "deletes", *KEY_FLAGS):
        assert getattr(early, name) == getattr(full, name), name


def test_the_hint_names_the_pipeline_and_the_directory(tmp_path: Path) -> None:
    def path(*extra: str, cwd: Path = tmp_path) -> str | None:
        flags = tap_flags(["run", "--config", "c.json", *extra])
        assert flags is not None
        with chdir(cwd):
            return hint_path(flags, DEFAULT_PIPELINE_NAME)

    (tmp_path / "other").mkdir()
    paths = {
        path(),
        path("--pipeline-name", "p2"),
        path("--dataset-name", "d2"),
        path("--destination", "postgres"),
        path("--pipelines-dir", "x"),
        path(cwd=tmp_path / "other"),
    }
    assert len(paths) == 6 and all(
        p and p.startswith(os.environ["DLT_BRIDGE_STATE_HINTS"]) for p in paths
    )
    assert path("--pipeline-name", DEFAULT_PIPELINE_NAME) == path()
