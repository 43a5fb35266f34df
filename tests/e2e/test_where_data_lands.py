"""Data lands where the command in front of the user says: the current directory's file.

Regression: dlt's pipelines folder (shared by every directory, as by default) remembers the
directory of a pipeline's first run, and a DuckDB file with no explicit path was resolved
against it: after a first run in A, a run from B loaded into A's file and said so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bridge_support import assert_tables_equal_dump, write_tap_config
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def _bridge(cwd: Path, pipelines: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """`dlt-bridge <args>` as a user runs it: a process in `cwd`, one shared pipelines folder."""
    return subprocess.run(
        [sys.executable, "-m", "dlt_bridge", *args, "--pipelines-dir", str(pipelines)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def test_run_from_a_second_directory_loads_into_that_directory(
    fake_api: Any, tmp_path: Path
) -> None:
    pipelines, first, second = tmp_path / "pipelines", tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    for workdir in (first, second):
        config = write_tap_config(workdir, fake_api)
        result = _bridge(workdir, pipelines, "run", "--config", str(config))
        assert result.returncode == 0, result.stderr[-3000:]
        assert str(workdir / "tap_analytics.duckdb") in result.stderr.splitlines()[0]
        assert_tables_equal_dump(workdir, all_dumps(fake_api))
    state = _bridge(second, pipelines, "state")
    assert state.returncode == 0 and '"bookmarks"' in state.stdout


def test_a_relative_configured_path_is_taken_from_the_current_directory(
    fake_api: Any, tmp_path: Path
) -> None:
    pipelines, first, second = tmp_path / "pipelines", tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    env = {"DESTINATION__DUCKDB__CREDENTIALS": "mine.duckdb"}
    for workdir in (first, second):
        config = write_tap_config(workdir, fake_api)
        result = _bridge(workdir, pipelines, "run", "--config", str(config), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (workdir / "mine.duckdb").exists()
    assert not (first / "tap_analytics.duckdb").exists()


def test_native_from_a_second_directory_loads_into_that_directory(
    fake_api: Any, tmp_path: Path
) -> None:
    pipelines, first, second = tmp_path / "pipelines", tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    env = {"SOURCES__ANALYTICS__API_KEY": fake_api.token}
    for workdir in (first, second):
        result = _bridge(workdir, pipelines, "native", "--base-url", fake_api.url, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (workdir / "analytics_native.duckdb").exists()


def test_the_bridge_refuses_a_dataset_the_native_source_loaded(
    fake_api: Any, tmp_path: Path
) -> None:
    """Dagster (native source) and `dlt-bridge run --environment` default to the same pipeline,
    file and dataset: the second engine refuses clearly instead of mixing states."""
    pipelines = tmp_path / "pipelines"
    env = {"SOURCES__ANALYTICS__API_KEY": fake_api.token}
    shared = ["--pipeline-name", "analytics_prod"]
    native = _bridge(tmp_path, pipelines, "native", "--base-url", fake_api.url, *shared, env=env)
    assert native.returncode == 0, native.stderr[-3000:]
    config = write_tap_config(tmp_path, fake_api)
    fake_api.reset_stats()
    bridge = _bridge(tmp_path, pipelines, "run", "--config", str(config), *shared)
    assert bridge.returncode == 2, bridge.stderr[-3000:]
    errors = [line for line in bridge.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "native source" in errors[0]
    assert fake_api.stats()["total"] == 0


def test_the_native_source_refuses_a_dataset_the_bridge_loaded(
    fake_api: Any, tmp_path: Path
) -> None:
    pipelines = tmp_path / "pipelines"
    shared = ["--pipeline-name", "analytics_prod"]
    config = write_tap_config(tmp_path, fake_api)
    bridge = _bridge(tmp_path, pipelines, "run", "--config", str(config), *shared)
    assert bridge.returncode == 0, bridge.stderr[-3000:]
    env = {"SOURCES__ANALYTICS__API_KEY": fake_api.token}
    fake_api.reset_stats()
    native = _bridge(tmp_path, pipelines, "native", "--base-url", fake_api.url, *shared, env=env)
    assert native.returncode == 2, native.stderr[-3000:]
    errors = [line for line in native.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Singer bridge" in errors[0]
    assert fake_api.stats()["total"] == 0
