"""The bridge's fixed costs cut without changing what it commits (issue 13).

`dlt-bridge run` starts the tap before it imports dlt (the tap reads its state from stdin once the
destination is read); a run that brings no rows, the stored schemas and the stored state skips
dlt's extract, normalize and load; a DuckDB file is loaded through one connection that keeps the
user's and the bridge's DuckDB settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bridge_support import (
    assert_tables_equal_dump,
    chdir,
    column_types,
    load_ids,
    record,
    run_bridge,
    run_bridge_process,
    schema,
    singer_lines,
    state,
    stored_state,
    write_tap_config,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, api: Any, *args: str) -> Any:
    config = write_tap_config(tmp_path, api)
    result = run_bridge_process(tmp_path, ["run", "--config", str(config), *args])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_an_unchanged_run_reads_the_api_and_commits_nothing(fake_api: Any, tmp_path: Path) -> None:
    _run(tmp_path, fake_api)
    loads, saved = load_ids(tmp_path), stored_state(tmp_path)
    fake_api.reset_stats()
    _run(tmp_path, fake_api)
    assert fake_api.stats()["total"] > 0  # the tap ran, from the stored state
    assert load_ids(tmp_path) == loads and stored_state(tmp_path) == saved
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    fake_api.mutate(share=0.2, seed=5)  # then a change arrives as usual
    _run(tmp_path, fake_api)
    assert len(load_ids(tmp_path)) == len(loads) + 1
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


def test_help_sends_no_request_and_writes_nothing(fake_api: Any, tmp_path: Path) -> None:
    """Regression: `run --config c.json --help` used to start a tap (and a sync) before the help
    printed."""
    config = write_tap_config(tmp_path, fake_api)
    fake_api.reset_stats()
    result = run_bridge_process(tmp_path, ["run", "--config", str(config), "--help"])
    assert result.returncode == 0 and "--deletes" in result.stdout
    assert fake_api.stats()["total"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [config.name]


def test_an_unusable_destination_sends_no_request(fake_api: Any, tmp_path: Path) -> None:
    config = write_tap_config(tmp_path, fake_api)
    fake_api.reset_stats()
    result = run_bridge_process(
        tmp_path, ["run", "--config", str(config), "--destination", "no_such_destination"]
    )
    assert result.returncode != 0
    assert fake_api.stats()["total"] == 0  # the tap is started only once the state is known


def _load(tmp_path: Path, *messages: dict[str, Any]) -> Any:
    result = run_bridge(tmp_path, ["load"], singer_lines(*messages))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


SCHEMA = schema("things", {"id": {"type": "string"}, "n": {"type": ["integer", "null"]}})


def test_a_run_without_rows_commits_only_what_changed(tmp_path: Path) -> None:
    first = _load(tmp_path, SCHEMA, record("things", id="a", n=1), state({"b": 1}))
    assert first.states == [{"b": 1}]
    loads = load_ids(tmp_path)
    # no rows, same schema, same state: nothing loaded, and the kept state printed for Meltano
    same = _load(tmp_path, SCHEMA, state({"b": 1}))
    assert same.states == [{"b": 1}] and load_ids(tmp_path) == loads
    # no rows, a new state: committed
    _load(tmp_path, SCHEMA, state({"b": 2}))
    assert len(load_ids(tmp_path)) == len(loads) + 1 and stored_state(tmp_path) == {"b": 2}


def test_regression_a_column_announced_in_a_run_without_rows_loads_later(tmp_path: Path) -> None:
    """A SCHEMA gaining a column in a run without rows used to put the column in dlt's stored
    schema without altering the table (no rows, no load job): every later load then failed with
    'Table "things" does not have a column with name "label"'."""
    _load(tmp_path, SCHEMA, record("things", id="a", n=1), state({"b": 1}))
    wider = schema("things", {**SCHEMA["schema"]["properties"], "label": {"type": "string"}})
    _load(tmp_path, wider, state({"b": 2}))
    assert stored_state(tmp_path) == {"b": 2}
    _load(tmp_path, wider, record("things", id="c", n=3, label="x"), state({"b": 3}))
    assert "label" in column_types(tmp_path, "things")
    assert stored_state(tmp_path) == {"b": 3}


def test_one_connection_keeps_the_duckdb_settings(tmp_path: Path) -> None:
    from analytics_dlt import defaults
    from analytics_dlt.pipeline import LoadOptions, create_pipeline, one_connection

    defaults.install()
    with chdir(tmp_path):
        options = LoadOptions("tap_analytics", pipelines_dir=str(tmp_path / "pipelines"))
        pipeline = create_pipeline(options)
        assert options.duckdb_file == str(tmp_path / "tap_analytics.duckdb")
        with one_connection(pipeline, options) as held, held.sql_client() as client:
            limit = client.execute_sql("select current_setting('memory_limit')")
    assert limit == [("61.0 MiB",)]  # the bridge's 64MB default for parquet loads into a file
