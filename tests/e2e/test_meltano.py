"""The Meltano project (`meltano.yml`) end to end, in a temporary copy of the repository.

`meltano install`, then `meltano run tap-analytics target-jsonl` and `... target-dlt` against the
local fake API (in this process), compared with the fake's dump: a full run, an incremental run
after `api.mutate(...)` (only the mutated records travel), `--full-refresh`, a failed load that
must leave Meltano's state alone, and `meltano config test` with a good and a wrong key.
Then what a user meets through Meltano (issue 20): a failing `meltano run` or `meltano config
test` shows the tap's own one-line cause and no traceback from our code; every setting of the
tap and of target-dlt set with `meltano config set` or a `<PLUGIN>_<SETTING>` variable reaches
the plugin typed as it takes it; deletions (docs/deletions.md) with target-dlt `deletes: soft`
and `hard` mark or delete exactly what the fake API deleted between two runs.

Meltano lives in its own virtualenv (it cannot share one with the project): `$MELTANO_BIN`, else
`.venv-meltano/bin/meltano` at the repository root; without it these tests are skipped.
Install it with `python3 -m venv .venv-meltano && .venv-meltano/bin/pip install "meltano~=4.4"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
DELETED_AT = "_sdc_deleted_at"  # the column target-dlt's `deletes: soft` sets
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


def duckdb_tables(
    root: Path, *, database: str | None = None, dataset: str | None = None, live: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Each stream's table, rows keyed by the JSON property names of the tap's schema.

    Timestamps become microseconds since the epoch, JSON columns are parsed; `_sdc_*` and
    `_dlt_*` columns are left out. `database` (under `root`) and `dataset` default to
    `DUCKDB_FILE` and `DATASET`; `live` leaves out rows marked deleted (`_sdc_deleted_at`).
    """
    import duckdb

    from analytics_dlt.hints import destination_column_name

    dataset = dataset or DATASET
    tables: dict[str, list[dict[str, Any]]] = {}
    with duckdb.connect(str(root / (database or DUCKDB_FILE)), read_only=True) as con:
        for stream in STREAMS:
            props = list(STREAMS_BY_NAME[stream.name].schema["properties"])
            described = con.execute(f'DESCRIBE "{dataset}"."{stream.name}"').fetchall()
            types = {row[0]: str(row[1]).upper() for row in described}
            columns = {p: destination_column_name(p) for p in props}
            present = [p for p in props if columns[p] in types]
            select = ", ".join(f'"{columns[p]}"' for p in present) or "1"
            where = " WHERE _sdc_deleted_at IS NULL" if live and DELETED_AT in types else ""
            rows = con.execute(
                f'SELECT {select} FROM "{dataset}"."{stream.name}"{where}'
            ).fetchall()
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


def assert_duckdb_equals_dump(
    root: Path, dump: dict[str, list[dict[str, Any]]], **place: Any
) -> None:
    """Every stream's table holds exactly the dump's keys, with its values (`place`: the
    keywords of `duckdb_tables`)."""
    tables = duckdb_tables(root, **place)
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
    # what Meltano shows of the cause: test_config_test_with_a_wrong_key_shows_the_taps_cause


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


# --------------------------------------------------------------------------------------------
# Errors under Meltano: the tap's own one-line cause, no traceback from our code

OUR_CODE = re.compile(r"/(tap_analytics|analytics_api|analytics_dlt|dlt_bridge)/\w+\.py")
"""A source file of the project, as any traceback names its frames (Python's `File "..."`
lines, or Meltano's own rendering of a structured log's exception: `.../client.py:238 in f`)."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def assert_no_traceback_from_our_code(output: str) -> None:
    """No Python traceback, and no stack frame in one of the project's packages."""
    plain = ANSI.sub("", output)
    assert "Traceback (most recent call last)" not in plain, plain[-6000:]
    frames = [line for line in plain.splitlines() if OUR_CODE.search(line)]
    assert not frames, "\n".join(frames)


WRONG_KEY = "sk-wrong-SECRET-0000"

FAILURES = {
    # case: (variables, what the tap's line names)
    "wrong key": ({"TAP_ANALYTICS_API_KEY": WRONG_KEY}, "401"),
    "unresolvable host": (
        {"TAP_ANALYTICS_BASE_URL": "https://api.analytics-test.invalid"},
        "api.analytics-test.invalid",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_run_failure_shows_the_taps_own_line_and_no_traceback(
    project: MeltanoProject, case: str
) -> None:
    variables, cause = FAILURES[case]
    failed = project.run(
        "run",
        "--state-id-suffix=failure",
        "tap-analytics",
        "target-dlt",
        label=f"run failing ({case})",
        TAP_ANALYTICS_MAX_RETRIES="0",
        **variables,
    )
    assert failed.returncode != 0, failed.output[-6000:]
    tap_lines = [line for line in failed.output.splitlines() if "tap-analytics" in line]
    named = [line for line in tap_lines if cause in line]
    assert named, failed.output[-6000:]
    assert_no_traceback_from_our_code(failed.output)
    assert WRONG_KEY not in failed.output
    assert not project.state("dev:tap-analytics-to-target-dlt:failure")  # nothing stored


def test_config_test_with_a_wrong_key_shows_the_taps_cause(project: MeltanoProject) -> None:
    """Meltano shows only the last line the tap wrote (see docs/meltano.md): it must be the
    tap's cause (singer-sdk writes it as a JSON log line: the tap declares structured-logging)."""
    wrong = project.run(
        "config",
        "test",
        "tap-analytics",
        label="config test (wrong key)",
        TAP_ANALYTICS_API_KEY=WRONG_KEY,
    )
    assert wrong.returncode != 0
    cause = [line for line in wrong.output.splitlines() if "401" in line]
    assert cause, wrong.output[-6000:]
    assert "api_key" in cause[-1]  # the tap's hint travels with the status
    assert_no_traceback_from_our_code(wrong.output)
    assert WRONG_KEY not in wrong.output


# --------------------------------------------------------------------------------------------
# Settings the Meltano way: `meltano config set` and <PLUGIN>_<SETTING> variables

TAP_VALUES = {  # every tap setting, as text (a variable's or `meltano config set`'s value)
    "api_key": "sk-set-the-meltano-way",
    "base_url": "https://api.example.com",
    "start_date": "2024-01-02T03:04:05Z",
    "page_size": "100",
    "max_retries": "5",
    "backoff_factor": "1.5",
    "request_timeout": "30",
    "max_concurrency": "2",
    "user_agent": "meltano-test/1",
    "emit_activate_version_messages": "true",
}
TAP_TAKES = {  # ... and what the tap must receive (number settings read from text by the tap)
    **TAP_VALUES,
    "page_size": 100,
    "max_retries": 5,
    "backoff_factor": 1.5,
    "request_timeout": 30.0,
    "max_concurrency": 2,
    "emit_activate_version_messages": True,
}
TARGET_DLT_VALUES = {  # every target-dlt setting, as text
    "destination": "duckdb",
    "duckdb_path": "output/set.duckdb",
    "dataset_name": "set_dataset",
    "pipeline_name": "set_pipeline",
    "pipelines_dir": ".meltano/dlt-set",
    "loader_file_format": "jsonl",
    "batch_size": "100",
    "commit_every": "10",
    "on_pending": "abort",
    "wait_if_busy": "2.5",
    "deletes": "soft",
    "history": "true",
    "progress_interval": "0",
    "log_level": "DEBUG",
}


def variable(plugin: str, setting: str) -> str:
    """Meltano's variable for a plugin's setting: TAP_ANALYTICS_API_KEY, TARGET_DLT_DELETES."""
    return f"{plugin}_{setting}".upper().replace("-", "_")


def declared_settings(plugin: str) -> list[str]:
    import yaml

    project = yaml.safe_load((REPO / "meltano.yml").read_text("utf-8"))
    plugins = project["plugins"]["extractors"] + project["plugins"]["loaders"]
    (found,) = [p for p in plugins if p["name"] == plugin]
    return [s["name"] for s in found["settings"]]


@contextmanager
def restored(*paths: Path) -> Iterator[None]:
    """`meltano config set` rewrites meltano.yml (and writes secrets to .env): put them back."""
    saved = {path: path.read_bytes() if path.exists() else None for path in paths}
    try:
        yield
    finally:
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)


def dumped_config(project: MeltanoProject, plugin: str, **env: str | None) -> dict[str, Any]:
    """The config file Meltano would hand the plugin (`meltano invoke --dump=config`)."""
    result = subprocess.run(
        [str(project.meltano), "invoke", "--dump=config", plugin],
        cwd=project.root,
        env=project.env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def assert_tap_takes(config: dict[str, Any]) -> None:
    """`config` holds TAP_TAKES, typed as the tap takes them, and the tap accepts it."""
    from analytics_api.settings import TAP, numbers_from_text, setting_problems
    from analytics_api.timestamps import canonical

    taken = numbers_from_text(config)
    for name, wanted in TAP_TAKES.items():
        got = taken.get(name)
        if name == "start_date":  # Meltano may rewrite the timestamp: the instant must hold
            assert canonical(str(got)) == canonical(str(wanted)), (name, got)
        else:
            assert got == wanted and type(got) is type(wanted), (name, got)
    assert setting_problems(taken, TAP) == []


def assert_bridge_takes(config: dict[str, Any]) -> None:
    """target-dlt's shim turns `config` into the `dlt-bridge load` flags of TARGET_DLT_VALUES."""
    import importlib.util

    from dlt_bridge.args import build_parser

    spec = importlib.util.spec_from_file_location(
        "meltano_target_dlt", REPO / "plugins" / "target-dlt" / "meltano_target_dlt.py"
    )
    assert spec is not None and spec.loader is not None
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    args = build_parser().parse_args(shim.bridge_argv(config))
    assert config["duckdb_path"] == TARGET_DLT_VALUES["duckdb_path"]  # through the environment
    for name in shim.FLAGS:
        got, text = getattr(args, name), TARGET_DLT_VALUES[name]
        if name == "pipelines_dir":
            assert Path(got).parts[-2:] == Path(text).parts, (name, got)
        elif isinstance(got, bool):
            assert got is (text == "true"), (name, got)
        else:
            assert str(got) == text or got == type(got)(text), (name, got)


def values_to_set() -> dict[str, dict[str, str]]:
    """Plugin -> {setting: value as text} for every setting meltano.yml declares (each must
    have a value in TAP_VALUES / TARGET_DLT_VALUES)."""
    out = {}
    for plugin, values in (("tap-analytics", TAP_VALUES), ("target-dlt", TARGET_DLT_VALUES)):
        declared = declared_settings(plugin)
        assert set(declared) <= set(values), f"{plugin}: no value to test with"
        out[plugin] = {name: values[name] for name in declared}
    return out


def test_every_setting_can_be_set_with_a_variable(project: MeltanoProject) -> None:
    values = values_to_set()
    tap_env = {variable("tap-analytics", k): v for k, v in values["tap-analytics"].items()}
    assert_tap_takes(dumped_config(project, "tap-analytics", **tap_env))
    target_env = {variable("target-dlt", k): v for k, v in values["target-dlt"].items()}
    assert_bridge_takes(dumped_config(project, "target-dlt", **target_env))


def test_every_setting_can_be_set_with_meltano_config_set(project: MeltanoProject) -> None:
    # the fixture's TAP_ANALYTICS_BASE_URL / _API_KEY would win over what is set here
    unset = {"TAP_ANALYTICS_BASE_URL": None, "TAP_ANALYTICS_API_KEY": None}
    with restored(project.root / "meltano.yml", project.root / ".env"):
        for plugin, values in values_to_set().items():
            for name, value in values.items():
                # in `dev`, whose own base_url and api_key would win over the plugin's
                project.run("--environment=dev", "config", "set", plugin, name, value).check()
        assert_tap_takes(dumped_config(project, "tap-analytics", **unset))
        assert_bridge_takes(dumped_config(project, "target-dlt"))


# --------------------------------------------------------------------------------------------
# Deletions (docs/deletions.md): FULL_TABLE + emit_activate_version_messages on the tap,
# target-dlt's `deletes`; checked against the fake API's own record of what it deleted

FULL_TABLE = json.dumps({"*": {"replication-method": "FULL_TABLE"}})


def marked_keys(root: Path, database: str, dataset: str) -> dict[str, set[str]]:
    """Per stream, the keys whose `_sdc_deleted_at` is set (none without the column)."""
    import duckdb

    out: dict[str, set[str]] = {}
    with duckdb.connect(str(root / database), read_only=True) as con:
        for stream in STREAMS:
            described = con.execute(f'DESCRIBE "{dataset}"."{stream.name}"').fetchall()
            if DELETED_AT not in {row[0] for row in described}:
                out[stream.name] = set()
                continue
            rows = con.execute(
                f'SELECT "{stream.primary_key}" FROM "{dataset}"."{stream.name}"'
                f" WHERE {DELETED_AT} IS NOT NULL"
            ).fetchall()
            out[stream.name] = {r[0] for r in rows}
    return out


def gone(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
) -> dict[str, set[str]]:
    """The keys each stream lost between two dumps of the fake: what it deleted."""
    return {
        s.name: {r[s.primary_key] for r in before[s.name]}
        - {r[s.primary_key] for r in after[s.name]}
        for s in STREAMS
    }


def deletion_run(project: MeltanoProject, mode: str, label: str, **env: str | None) -> Result:
    """`meltano run tap-analytics target-dlt` into this mode's own DuckDB file and pipeline
    (TARGET_DLT_* variables) and state ID, so no other test's tables or state are touched."""
    return project.run(
        "run",
        f"--state-id-suffix=deletes-{mode}",
        "tap-analytics",
        "target-dlt",
        label=label,
        TARGET_DLT_DUCKDB_PATH=f"output/deletes_{mode}.duckdb",
        TARGET_DLT_PIPELINE_NAME=f"deletes_{mode}",
        **env,
    )


def test_target_dlt_soft_deletes_set_with_variables(project: MeltanoProject) -> None:
    place = {"database": "output/deletes_soft.duckdb", "dataset": DATASET}
    mode = {
        "TAP_ANALYTICS__METADATA": FULL_TABLE,
        "TAP_ANALYTICS_EMIT_ACTIVATE_VERSION_MESSAGES": "true",
    }
    with FakeAPI(DatasetConfig(seed=21)) as api:
        runner = replace(project, api=api)
        first = deletion_run(runner, "soft", "deletes: first run, deletes off", **mode).check()
        # the tap sent ACTIVATE_VERSION; with `deletes` off target-dlt says so, once per run
        said = [
            line
            for line in first.output.splitlines()
            if "target-dlt" in line and "ACTIVATE_VERSION" in line
        ]
        assert len(said) == 1 and "WARNING" in said[0], said
        assert_duckdb_equals_dump(project.root, all_dumps(api), **place)

        before = all_dumps(api)
        reported = api.delete_records(share=0.2, seed=5)
        deleted = gone(before, all_dumps(api))
        assert all(deleted.values()) and deleted == {k: set(v) for k, v in reported.items()}
        deletion_run(runner, "soft", "deletes: soft", TARGET_DLT_DELETES="soft", **mode).check()
        assert marked_keys(project.root, **place) == deleted
        assert_duckdb_equals_dump(project.root, all_dumps(api), live=True, **place)
        # the marked rows keep their last values: the whole table is the dump before deletions
        assert_duckdb_equals_dump(project.root, before, **place)


def test_target_dlt_hard_deletes_set_with_meltano_config_set(project: MeltanoProject) -> None:
    place = {"database": "output/deletes_hard.duckdb", "dataset": DATASET}
    settings = (
        ("tap-analytics", "emit_activate_version_messages", "true"),
        ("tap-analytics", "_metadata", "*", "replication-method", "FULL_TABLE"),
        ("target-dlt", "deletes", "hard"),
    )
    with restored(project.root / "meltano.yml"), FakeAPI(DatasetConfig(seed=22)) as api:
        runner = replace(project, api=api)
        for setting in settings:
            runner.run("config", "set", *setting).check()
        deletion_run(runner, "hard", "deletes: first run, hard").check()
        assert_duckdb_equals_dump(project.root, all_dumps(api), **place)

        before = all_dumps(api)
        api.delete_records(share=0.2, seed=6)
        deleted = gone(before, all_dumps(api))
        assert all(deleted.values()), deleted
        deletion_run(runner, "hard", "deletes: hard").check()
        assert_duckdb_equals_dump(project.root, all_dumps(api), **place)  # the deleted: gone
        assert marked_keys(project.root, **place) == {s.name: set() for s in STREAMS}


# -- target-dlt's `history`; checked against what the fake served to each run (fake_api.rounds)


def test_target_dlt_history_over_changes_and_deletions(project: MeltanoProject) -> None:
    """`history: true` (a variable) through `meltano run`: a first run, an incremental run after
    changes, a deletion run (FULL_TABLE, `deletes: soft`): each `<stream>_history` holds exactly
    the versions the fake served, closed when the next one came or the record was found gone."""
    from fake_api.rounds import Rounds
    from tests.e2e.test_history import assert_history_is_the_fakes, versions_in

    database = "output/history.duckdb"
    place = {
        "TARGET_DLT_HISTORY": "true",
        "TARGET_DLT_DUCKDB_PATH": database,
        "TARGET_DLT_PIPELINE_NAME": "history",
    }
    deletion_mode = {
        "TARGET_DLT_DELETES": "soft",
        "TAP_ANALYTICS__METADATA": FULL_TABLE,
        "TAP_ANALYTICS_EMIT_ACTIVATE_VERSION_MESSAGES": "true",
    }
    with FakeAPI(DatasetConfig(seed=23)) as api:
        runner = replace(project, api=api)
        rounds = Rounds(api)

        def run(label: str, deletions: bool = False) -> None:
            with rounds.run(deletions=deletions):
                runner.run(
                    "run",
                    "--state-id-suffix=history",
                    "tap-analytics",
                    "target-dlt",
                    label=label,
                    **place,
                    **(deletion_mode if deletions else {}),
                ).check()

        run("history: first run")
        api.mutate(share=0.2, seed=7)
        run("history: incremental run after changes")
        api.delete_records(share=0.15, seed=8)
        run("history: deletion run", deletions=True)
        assert_history_is_the_fakes(versions_in(project.root / database), rounds)
        assert_duckdb_equals_dump(
            project.root, all_dumps(api), live=True, database=database, dataset=DATASET
        )
