"""The bridge's dlt settings (`analytics_dlt.defaults`, `analytics_dlt.compat`): effective,
overridable by the user, scoped to the bridge's pipelines, and never written to `os.environ`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_dlt import compat, defaults
from analytics_dlt.pipeline import LoadOptions, create_pipeline
from tests.e2e.bridge_support import FAIL_AT, chdir, run_bridge, schema, singer_lines, state

pytestmark = pytest.mark.e2e

APPS = schema("apps", {"id": {"type": "string"}, "meta": {"type": ["object", "null"]}})
ROWS = [
    {"type": "RECORD", "stream": "apps", "record": {"id": f"a{i}", "meta": {"i": i}}}
    for i in range(3)
]


def _options(tmp_path: Path, **kw: Any) -> LoadOptions:
    return LoadOptions(
        "tap_analytics", pipelines_dir=str(tmp_path / "pipelines"), progress_interval=0, **kw
    )


def _memory_limit(pipeline: dlt.Pipeline) -> str:
    with pipeline.sql_client() as client:
        rows = client.execute_sql("select current_setting('memory_limit')")
    assert rows is not None
    return str(rows[0][0])


def _global_config(pipeline: dlt.Pipeline) -> Any:
    credentials: Any = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
    return credentials.global_config


def test_compat_hooks_still_exist_in_dlt(tmp_path: Path) -> None:
    """Fails loudly when a dlt release moves what `analytics_dlt.compat` relies on."""
    provider = defaults.install()
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    assert provider.name in Container()[PluggableRunContext].providers
    assert compat.current_pipeline_name() is None  # outside any pipeline step
    assert compat.add_provider(provider) is False  # idempotent once the context exists
    seen: list[str | None] = []
    pipeline = dlt.pipeline("compat_probe", destination="duckdb", pipelines_dir=str(tmp_path))

    @dlt.resource
    def probe() -> Any:
        seen.append(compat.current_pipeline_name())
        yield {"x": 1}

    pipeline.extract(probe())
    assert seen == ["compat_probe"]
    # the extracted package holds a job; once normalized, no extracted package is left
    (load_id,) = pipeline.list_extracted_load_packages()
    assert compat.has_pending_jobs(pipeline, load_id) is True
    # json as dlt writes it; the per-table format selector of a destination that has one
    assert compat.dlt_json_dumps({"a": [1, None]}) == '{"a":[1,null]}'
    postgres = dlt.destinations.postgres("postgresql://u:p@127.0.0.1:1/db").capabilities()
    preferred, supported = compat.file_formats_for_new_table(postgres)
    assert preferred == "insert_values" and "insert_values" in supported
    # the folder dlt.pipeline() opens when given no pipelines_dir
    default = dlt.pipeline("compat_default_dir")
    assert os.path.dirname(default.working_dir) == compat.default_pipelines_dir()


def test_duckdb_memory_limit_default_and_user_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection a run holds has DuckDB's memory limit at 64 MB with parquet load files,
    not with jsonl ones, and a `global_config` the user sets for dlt wins."""
    from analytics_dlt.pipeline import one_connection

    monkeypatch.chdir(tmp_path)

    def limit(**kw: Any) -> str:
        options = _options(tmp_path, **kw)
        with one_connection(create_pipeline(options), options) as held:
            return _memory_limit(held)

    assert limit() == "61.0 MiB"
    assert limit(loader_file_format="jsonl") != "61.0 MiB"
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", json.dumps({"memory_limit": "1GB"})
    )
    assert limit() == "953.6 MiB"


def test_pipeline_scoped_user_value_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "TAP_ANALYTICS__DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
        json.dumps({"threads": 1}),
    )
    assert _global_config(create_pipeline(_options(tmp_path))) == {"threads": 1}


def test_arrow_rows_only_where_dlt_adds_its_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow tables are handed to dlt only where they load as dicts would (with `_dlt_id` and
    `_dlt_load_id`, normalized in this process): the bridge's pipelines unless the user turns
    that off or normalizes in subprocesses; never a pipeline the bridge did not make."""
    from analytics_dlt.arrow import arrow_matches_dicts

    monkeypatch.chdir(tmp_path)
    ours = create_pipeline(_options(tmp_path))
    theirs = dlt.pipeline("their_own", destination="duckdb", pipelines_dir=str(tmp_path))
    assert (arrow_matches_dicts(ours), arrow_matches_dicts(theirs)) == (True, False)
    monkeypatch.setenv("TAP_ANALYTICS__NORMALIZE__WORKERS", "2")
    assert arrow_matches_dicts(ours) is False
    monkeypatch.delenv("TAP_ANALYTICS__NORMALIZE__WORKERS")
    monkeypatch.setenv("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "false")
    assert arrow_matches_dicts(ours) is False
    monkeypatch.setenv("THEIR_OWN__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "true")
    monkeypatch.setenv("THEIR_OWN__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    assert arrow_matches_dicts(theirs) is True


def test_extracted_files_are_not_compressed(tmp_path: Path) -> None:
    messages = singer_lines(APPS, *ROWS, state({"v": 1}))
    res = run_bridge(tmp_path, ["load"], messages, extra_env=FAIL_AT["normalize"])
    assert res.returncode == 1
    files = [
        p for p in (tmp_path / "pipelines").rglob("*") if p.is_file() and "extracted" in p.parts
    ]
    data = [p for p in files if p.suffix in (".parquet", ".jsonl", ".typed-jsonl")]
    assert data, files
    for path in data:
        assert path.read_bytes()[:2] != b"\x1f\x8b", path  # no gzip header


def test_a_run_leaves_os_environ_alone(tmp_path: Path) -> None:
    before = dict(os.environ)
    res = run_bridge(tmp_path, ["load"], singer_lines(APPS, *ROWS, state({"v": 1})))
    assert res.returncode == 0, res.stderr
    with chdir(tmp_path):
        from tests.e2e.bridge_support import column_types

        columns = column_types(tmp_path, "apps")
    assert {"_dlt_load_id", "_dlt_id"} <= set(columns)
    assert columns["meta"] == "JSON"
    assert dict(os.environ) == before


NO_SEND = {"RUNTIME__DLTHUB_TELEMETRY_ENDPOINT": "http://127.0.0.1:9/"}
"""Telemetry turned on in a test must not reach the internet."""

_TELEMETRY_PROBE = """
from dlt_bridge.cli import main
code = main(["state", "--pipelines-dir", "pipelines"])
from dlt.common.runtime import anon_tracker
print("TELEMETRY", anon_tracker._ANON_TRACKER_ENDPOINT is not None)
"""


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        ({}, None, False),
        ({"RUNTIME__DLTHUB_TELEMETRY": "true", **NO_SEND}, None, True),
        (NO_SEND, "[runtime]\ndlthub_telemetry = true\n", True),
        ({"RUNTIME__DLTHUB_TELEMETRY": "false"}, None, False),
    ],
)
def test_telemetry_is_off_unless_the_user_turns_it_on(
    tmp_path: Path, env: dict[str, str], toml: str | None, expected: bool
) -> None:
    if toml is not None:
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "config.toml").write_text(toml)
    clean = {k: v for k, v in os.environ.items() if k != "RUNTIME__DLTHUB_TELEMETRY"}
    proc = subprocess.run(
        [sys.executable, "-c", _TELEMETRY_PROBE],
        cwd=tmp_path,
        env={**clean, **env, "DLT_DATA_DIR": str(tmp_path / "dlt-home")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"TELEMETRY {expected}" in proc.stdout, proc.stderr[-2000:]


def test_a_clean_run_is_quiet(fake_api: Any, tmp_path: Path) -> None:
    """A successful run, as a separate process: no dlt warning and no traceback on stderr, at
    most ~20 lines, and the first one names the file it loads into."""
    from tests.e2e.bridge_support import (
        assert_tables_equal_dump,
        run_bridge_process,
        write_tap_config,
    )
    from tests.support import all_dumps

    config = write_tap_config(tmp_path, fake_api)
    result = run_bridge_process(tmp_path, ["run", "--config", str(config)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    lines = result.stderr.splitlines()
    assert len(lines) <= 20, lines
    assert not [line for line in lines if "|dlt|" in line or "Traceback" in line], lines
    assert str(tmp_path / "tap_analytics.duckdb") in lines[0]
