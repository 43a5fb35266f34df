"""The Meltano project (`meltano.yml`) end to end, in a temporary copy of the repository.

`meltano install`, then `meltano run tap-analytics target-jsonl` and `... target-dlt` against the
local fake API (in this process), compared with the fake's dump: a full run, an incremental run
after `api.mutate(...)` (only the mutated records travel), `--full-refresh`, a failed load that
must leave Meltano's state alone, and `meltano config test` with a good and a wrong key.

Meltano lives in its own virtualenv (it cannot share one with the project): `$MELTANO_BIN`, else
`.venv-meltano/bin/meltano` at the repository root; without it these tests are skipped.
Install it with `python3 -m venv .venv-meltano && .venv-meltano/bin/pip install "meltano~=4.4"`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from fake_api import DatasetConfig, FakeAPI, parse_ts
from tests.support import (
    CommandResult,
    all_dumps,
    assert_equals_dump,
    json_lines,
    normalized,
    run_command,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = (
    "pyproject.toml",
    "README.md",
    "meltano.yml",
    "plugins",
    "analytics_api",
    "analytics_dlt",
    "analytics_source",
    "tap_analytics",
    "dlt_bridge",
    "fake_api",
)
"""What `meltano install` needs: the package sources (`pip_url: -e .`) and the Meltano files."""

JSONL_STATE_ID = "dev:tap-analytics-to-target-jsonl"
DLT_STATE_ID = "dev:tap-analytics-to-target-dlt"
DUCKDB_FILE = "output/tap_analytics.duckdb"  # target-dlt's `duckdb_path` in meltano.yml
DATASET = "analytics"  # target-dlt's `dataset_name`
TIMEOUT = 600  # seconds for one Meltano command; a cold `meltano install` takes ~30 s here

# Variables of the developer's shell that would leak into the project under test.
_FOREIGN_PREFIXES = (
    "MELTANO_",
    "TAP_ANALYTICS_",
    "TARGET_JSONL_",
    "TARGET_DLT_",
    "DESTINATION__",
    "DLT_BRIDGE_",
)
_FOREIGN_NAMES = ("VIRTUAL_ENV", "PYTHONPATH", "DATASET_NAME", "DESTINATION_TYPE")


def meltano_bin() -> Path | None:
    """`$MELTANO_BIN`, else `.venv-meltano/bin/meltano` in the repository; None if neither."""
    configured = os.environ.get("MELTANO_BIN")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO / ".venv-meltano" / "bin" / "meltano")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def copy_project(root: Path) -> Path:
    """The files of `PROJECT_FILES` copied into `root` (which is returned)."""
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, root / name)
    return root


Result = CommandResult
"""Kept under its old name for the Meltano test modules."""


@dataclass
class MeltanoProject:
    """A temporary copy of the project and the Meltano that drives it."""

    root: Path
    meltano: Path
    api: FakeAPI
    timings: dict[str, float] = field(default_factory=dict)

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES
        }
        env.update(
            TAP_ANALYTICS_BASE_URL=self.api.url,
            TAP_ANALYTICS_API_KEY=self.api.token,
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            RUNTIME__DLTHUB_TELEMETRY="false",
            NO_COLOR="1",
        )
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(self, *args: str, label: str | None = None, **env: str | None) -> Result:
        argv = [str(self.meltano), "--log-format=uncolored", *args]
        result = run_command(
            argv, cwd=self.root, env=self.env(**env), timeout=TIMEOUT, shown=["meltano", *args]
        )
        if label:
            self.timings[label] = result.seconds
        return result

    def state(self, state_id: str) -> Any:
        result = self.run("state", "get", state_id).check()
        lines = [line for line in result.output.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None

    def clear_output(self) -> None:
        for path in (self.root / "output").glob("*.jsonl"):
            path.unlink()

    def jsonl_records(self) -> dict[str, list[dict[str, Any]]]:
        """Every output/<stream>.jsonl as written since the last `clear_output()`."""
        records: dict[str, list[dict[str, Any]]] = {}
        for stream in STREAMS:
            path = self.root / "output" / f"{stream.name}.jsonl"
            records[stream.name] = json_lines(path.read_text("utf-8")) if path.exists() else []
        return records


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeltanoProject]:
    """The project copied to a temporary folder, `meltano install`ed, and a fake API for it."""
    meltano = meltano_bin()
    if meltano is None:
        pytest.skip(
            "Meltano not found: set MELTANO_BIN or run `python3 -m venv .venv-meltano &&"
            ' .venv-meltano/bin/pip install "meltano~=4.4"` (or `make meltano`)'
        )
    root = copy_project(tmp_path_factory.mktemp("meltano-project"))
    with FakeAPI(DatasetConfig(seed=11)) as api:
        project = MeltanoProject(root=root, meltano=meltano, api=api)
        project.run("install", label="meltano install").check()
        yield project
        print(
            "\nMeltano timings (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in project.timings.items())
        )


# --------------------------------------------------------------------------------------------
# Comparisons


def _jsonl_ids(records: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {s.name: sorted(r[s.primary_key] for r in records.get(s.name, [])) for s in STREAMS}


def _assert_exactly(
    records: dict[str, list[dict[str, Any]]],
    expected_ids: dict[str, list[str]],
    dump: dict[str, list[dict[str, Any]]],
) -> None:
    """Per stream: exactly `expected_ids` arrived, each equal to the fake's current record."""
    got_ids = _jsonl_ids(records)
    for stream in STREAMS:
        assert got_ids[stream.name] == sorted(expected_ids.get(stream.name, [])), stream.name
        by_key = {r[stream.primary_key]: normalized(stream.name, r) for r in dump[stream.name]}
        for record in records[stream.name]:
            assert normalized(stream.name, record) == by_key[record[stream.primary_key]], (
                f"{stream.name} {record[stream.primary_key]}"
            )


def _to_micros(value: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (value - epoch) // timedelta(microseconds=1)


def duckdb_tables(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Each stream's table, rows keyed by the JSON property names of the tap's schema.

    Timestamps become microseconds since the epoch, JSON columns are parsed; `_sdc_*` and
    `_dlt_*` columns are left out.
    """
    import duckdb

    from analytics_dlt.hints import destination_column_name

    tables: dict[str, list[dict[str, Any]]] = {}
    with duckdb.connect(str(root / DUCKDB_FILE), read_only=True) as con:
        for stream in STREAMS:
            props = list(STREAMS_BY_NAME[stream.name].schema["properties"])
            described = con.execute(f'DESCRIBE "{DATASET}"."{stream.name}"').fetchall()
            types = {row[0]: str(row[1]).upper() for row in described}
            columns = {p: destination_column_name(p) for p in props}
            present = [p for p in props if columns[p] in types]
            select = ", ".join(f'"{columns[p]}"' for p in present) or "1"
            rows = con.execute(f'SELECT {select} FROM "{DATASET}"."{stream.name}"').fetchall()
            out = []
            for row in rows:
                record: dict[str, Any] = dict.fromkeys(props)
                for prop, value in zip(present, row, strict=True):
                    kind = types[columns[prop]]
                    if value is not None and kind == "JSON":
                        value = json.loads(value)
                    elif isinstance(value, datetime):
                        value = _to_micros(value)
                    record[prop] = value
                out.append(record)
            tables[stream.name] = out
    return tables


def _as_loaded(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """A dump record as the DuckDB comparison sees it: missing -> null, times in microseconds."""
    schema = STREAMS_BY_NAME[stream].schema["properties"]
    out = normalized(stream, record)
    for prop, value in out.items():
        if isinstance(value, str) and schema[prop].get("format") == "date-time":
            out[prop] = parse_ts(value) // 1000
    return out


def assert_duckdb_equals_dump(root: Path, dump: dict[str, list[dict[str, Any]]]) -> None:
    tables = duckdb_tables(root)
    for stream in STREAMS:
        key = stream.primary_key
        rows = tables[stream.name]
        keys = [r[key] for r in rows]
        assert len(keys) == len(set(keys)), f"{stream.name}: duplicate keys in DuckDB"
        want = {r[key]: _as_loaded(stream.name, r) for r in dump[stream.name]}
        assert sorted(keys) == sorted(want), f"{stream.name}: other keys than the dump"
        schema = STREAMS_BY_NAME[stream.name].schema["properties"]
        for row in rows:
            expected = want[row[key]]
            for prop, value in row.items():
                wanted = expected[prop]
                where = f"{stream.name} {row[key]} {prop}: {value!r} != {wanted!r}"
                if schema[prop].get("format") == "date-time" and None not in (value, wanted):
                    # DuckDB keeps microseconds: 7..9 fractional digits may round either way
                    assert abs(value - wanted) <= 1, where
                else:
                    assert value == wanted, where


def _duckdb_rows_of_last_load(root: Path) -> dict[str, list[str]]:
    """Primary keys of the rows written by the most recent completed load, per stream."""
    import duckdb

    out: dict[str, list[str]] = {}
    with duckdb.connect(str(root / DUCKDB_FILE), read_only=True) as con:
        last = con.execute(
            f'SELECT load_id FROM "{DATASET}"."_dlt_loads" WHERE status = 0'
            " ORDER BY inserted_at DESC LIMIT 1"
        ).fetchall()[0]
        for stream in STREAMS:
            column = stream.primary_key
            rows = con.execute(
                f'SELECT "{column}" FROM "{DATASET}"."{stream.name}" WHERE _dlt_load_id = ?',
                [last[0]],
            ).fetchall()
            out[stream.name] = sorted(r[0] for r in rows)
    return out


# --------------------------------------------------------------------------------------------
# Tests


def test_target_jsonl_full_incremental_and_full_refresh(project: MeltanoProject) -> None:
    api = project.api
    project.clear_output()

    project.run("run", "tap-analytics", "target-jsonl", label="jsonl: full run").check()
    assert_equals_dump(project.jsonl_records(), all_dumps(api))
    state = project.state(JSONL_STATE_ID)
    assert set(state["singer_state"]["bookmarks"]) == {s.name for s in STREAMS}

    mutated = api.mutate(share=0.2, seed=5)
    assert all(mutated.values()), mutated
    project.clear_output()
    project.run("run", "tap-analytics", "target-jsonl", label="jsonl: incremental run").check()
    _assert_exactly(project.jsonl_records(), mutated, all_dumps(api))

    project.clear_output()
    project.run(
        "run", "--full-refresh", "tap-analytics", "target-jsonl", label="jsonl: --full-refresh"
    ).check()
    assert_equals_dump(project.jsonl_records(), all_dumps(api))


def test_target_dlt_loads_duckdb_and_keeps_state_with_the_data(project: MeltanoProject) -> None:
    api = project.api

    project.run("run", "tap-analytics", "target-dlt", label="dlt: full run").check()
    assert_duckdb_equals_dump(project.root, all_dumps(api))
    first_state = project.state(DLT_STATE_ID)
    assert first_state is not None

    mutated = api.mutate(share=0.2, seed=6)
    project.run("run", "tap-analytics", "target-dlt", label="dlt: incremental run").check()
    assert_duckdb_equals_dump(project.root, all_dumps(api))
    # only the mutated records travelled: they are exactly the rows of the newest load
    assert _duckdb_rows_of_last_load(project.root) == {k: sorted(v) for k, v in mutated.items()}
    second_state = project.state(DLT_STATE_ID)
    assert second_state != first_state

    # A load that fails must not move Meltano's state (the bridge prints STATE after commit).
    before = all_dumps(api)
    api.mutate(share=0.1, seed=7)
    failed = project.run(
        "run",
        "tap-analytics",
        "target-dlt",
        label="dlt: failing load",
        LOAD__WORKERS="0",  # dlt refuses a pool of 0 load workers: fails at the load step
    )
    assert failed.returncode != 0, failed.output[-3000:]
    # it failed at the load step: the normalized package waits in target-dlt's pipelines_dir
    pipeline = dlt.attach("tap_analytics", pipelines_dir=str(project.root / ".meltano" / "dlt"))
    assert pipeline.list_normalized_load_packages(), failed.output[-3000:]
    assert project.state(DLT_STATE_ID) == second_state
    assert_duckdb_equals_dump(project.root, before)
    # the next run (pending package finished or replaced) catches up, without duplicates
    project.run("run", "tap-analytics", "target-dlt", label="dlt: run after failure").check()
    assert_duckdb_equals_dump(project.root, all_dumps(api))
    assert project.state(DLT_STATE_ID) != second_state

    project.run(
        "run", "--full-refresh", "tap-analytics", "target-dlt", label="dlt: --full-refresh"
    ).check()
    assert_duckdb_equals_dump(project.root, all_dumps(api))
    every_key = {s.name: sorted(r[s.primary_key] for r in api.dump(s.name)) for s in STREAMS}
    assert _duckdb_rows_of_last_load(project.root) == every_key


def test_config_test_passes_with_the_key_and_fails_clearly_without(
    project: MeltanoProject,
) -> None:
    project.api.reset_stats()
    project.run("config", "test", "tap-analytics", label="config test").check()
    assert set(project.api.stats()["by_status"]) == {"200"}  # the test read data with the key

    project.api.reset_stats()
    wrong = project.run("config", "test", "tap-analytics", TAP_ANALYTICS_API_KEY="not-the-key")
    assert wrong.returncode != 0
    assert set(project.api.stats()["by_status"]) == {"401"}
    assert "not-the-key" not in wrong.output  # the key is never echoed
    # The tap's own 401 message (and its hint) is pinned by tests/conformance; Meltano does not
    # always relay a failed test's stderr (seen on a busy machine), so it is not asserted here.


def test_prod_takes_key_and_url_from_dotenv_and_names_what_is_missing(
    project: MeltanoProject,
) -> None:
    no_vars = {"TAP_ANALYTICS_API_KEY": None, "TAP_ANALYTICS_BASE_URL": None}
    dotenv = project.root / ".env"
    dotenv.write_text(
        f"TAP_ANALYTICS_API_KEY={project.api.token}\nTAP_ANALYTICS_BASE_URL={project.api.url}\n",
        encoding="utf-8",
    )
    try:
        project.run(
            "--environment=prod",
            "config",
            "test",
            "tap-analytics",
            label="prod config test",
            **no_vars,
        ).check()
    finally:
        dotenv.unlink()

    missing = project.run("--environment=prod", "run", "tap-analytics", "target-jsonl", **no_vars)
    assert missing.returncode != 0
    assert "setting 'api_key': is required but missing" in missing.output, missing.output[-3000:]
    assert "TAP_ANALYTICS_API_KEY" in missing.output
