"""`make bench`: baselines and our tools on the same fake API, interleaved, checked, tabulated.

    python -m benchmarks.run [--repeat 3] [--scenarios latency0,latency20,duckdb,state]
                             [--memory] [--quick] [--json out.json] [--markdown BENCHMARKS.md]

Scenarios (issue 6):

* `latency0`: 100,000 records, no added latency: bare sequential loop (baseline), the tap with
  default settings (target 1: <= 1.4x since issue 13, 2.0x before), the tap with
  `max_concurrency=1` and the bare 8-thread loop (both informational).
* `latency20`: 200 applications (23,200 records, 511 requests), 20 ms per request: bare 8-thread
  loop (baseline), bare sequential loop (informational), the tap (target 2: <= 1.25x), and once
  the tap with `max_concurrency=1`, whose records every concurrent run must equal.
* `duckdb`: 100,000 records into DuckDB: plain dlt `rest_api_source` with a `done` paginator and
  the `jsonl` loader format (baseline), `dlt-bridge run` (target 3: <= 0.6x), `tap | dlt-bridge
  load` and the native dlt source (informational).
* `state`: size of the tap's last STATE message with 300 and 3,000 applications (target 4b).
* `deletes`: the cost of deletion mode (issue 12, target 7: <= 2.5x): 100,000 records into
  DuckDB, nothing changed since the previous run: `dlt-bridge run --deletes soft` (every record
  sent and merged, keys compared) against the incremental `dlt-bridge run` of the same data
  (baseline: every page read, no record sent). Each measured run follows an untimed first run
  of the same command in the same working directory.
* `bridge100k`, `unchanged`, `small` (issue 13, targets 13a-c, with issue 19's limits: 2.0x,
  1.5x, 2.0x): `dlt-bridge run` against the tap alone, at 100,000 records, with nothing changed,
  and at the demo's 1,617 records; see `benchmarks.overhead`.
* `history` (issue 21, targets 21a-b: <= 1.3x): `dlt-bridge run --history` against the same run
  without history, at 100,000 records into a new file and after 10% changed; see
  `benchmarks.history`.
* `memory` (opt-in, `--memory`, ~5 minutes): peak RSS of the tap and of the bridge at 100,000 and
  1,000,000 records (target 4a: <= 1.2x).

Every command runs as its own process under a small launcher (`benchmarks.measure`): wall time
includes Python start-up and imports of every tool, baselines included. The fake API runs in its
own process; its request counters are reset before every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import history, overhead
from benchmarks.measure import (
    Check,
    Expected,
    Measured,
    Summary,
    check_duckdb,
    check_keys_file,
    check_singer,
    last_state_size,
    machine_info,
    read_singer,
    run_measured,
    same_records,
    wait_for_quiet,
)
from fake_api import DEMO_DATASET, DatasetConfig, FakeAPIProcess

PY = sys.executable
DATASET_NAME = "analytics"

# -- datasets ----------------------------------------------------------------------------------

DATASET_100K = DatasetConfig(
    seed=6,
    applications=1_000,
    endpoints_per_app=75,
    integrations_per_app=20,
    event_types=1_500,
    tokens=100,
    ingest_sources=100,
    endpoints_per_source=20,
    webhook_endpoints=300,
)
"""The issue's dataset: 100,000 records, 2,114 requests at page size 250."""

DATASET_1M = dataclasses.replace(
    DATASET_100K,
    **{
        name: 10 * getattr(DATASET_100K, name)
        for name in ("applications", "event_types", "tokens", "ingest_sources", "webhook_endpoints")
    },
)
"""Every top-level count of the 100k dataset times ten (children per parent unchanged): 1M."""

DATASET_200_APPS = dataclasses.replace(DATASET_100K, applications=200)
"""23,200 records, 511 requests."""


def _state_dataset(applications: int) -> DatasetConfig:
    return DatasetConfig(
        seed=6,
        applications=applications,
        endpoints_per_app=2,
        integrations_per_app=1,
        event_types=30,
        tokens=5,
        ingest_sources=4,
        endpoints_per_source=3,
        webhook_endpoints=7,
    )


QUICK_DATASET = DatasetConfig(
    seed=6,
    applications=10,
    endpoints_per_app=10,
    integrations_per_app=3,
    event_types=30,
    tokens=5,
    ingest_sources=4,
    endpoints_per_source=3,
    webhook_endpoints=7,
)
"""~200 records: smoke runs (`--quick`) and the unit test."""


# -- tools -------------------------------------------------------------------------------------


@dataclass
class RunSpec:
    """How to run one tool once in `workdir`, and how to check what it produced."""

    commands: list[list[str]]
    stdout: str = os.devnull
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[], Check] | None = None
    setup: list[list[str]] = field(default_factory=list)
    """Commands run one after the other in `workdir` before the measured run (not timed)."""


@dataclass
class Tool:
    key: str
    label: str
    build: Callable[[Path, FakeAPIProcess, Expected], RunSpec]
    baseline: bool = False
    max_runs: int | None = None
    """Run at most this many times (slow informational runs)."""
    rss_labels: tuple[str, ...] = ()
    """Names of the piped commands, to report each one's peak RSS."""


@dataclass
class RunRecord:
    wall: float
    maxrss_kb: list[int]
    cpu_seconds: list[float]
    requests: int
    ok: bool
    detail: str
    workdir: str = ""
    busy_before: float = 0.0
    """Share of the CPUs busy (other processes) just before the run started."""


@dataclass
class ToolResult:
    tool: Tool
    runs: list[RunRecord] = field(default_factory=list)
    records: int = 0
    """Records of this tool's dataset, when the scenario mixes datasets."""

    @property
    def wall(self) -> Summary:
        return Summary.of(r.wall for r in self.runs)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def peak_rss_mb(self, index: int | None = None) -> float:
        values = [(max(r.maxrss_kb) if index is None else r.maxrss_kb[index]) for r in self.runs]
        return max(values, default=0) / 1024

    def to_json(self, records: int) -> dict[str, Any]:
        w = self.wall
        return {
            "key": self.tool.key,
            "label": self.tool.label,
            "baseline": self.tool.baseline,
            "wall_median": w.median,
            "wall_min": w.low,
            "wall_max": w.high,
            "records_per_second": records / w.median if w.n else None,
            "peak_rss_mb": self.peak_rss_mb(),
            "runs": [
                {
                    "wall": r.wall,
                    "maxrss_kb": r.maxrss_kb,
                    "cpu_seconds": r.cpu_seconds,
                    "requests": r.requests,
                    "ok": r.ok,
                    "detail": r.detail,
                    "busy_before": r.busy_before,
                }
                for r in self.runs
            ],
        }


def _write_config(workdir: Path, api: FakeAPIProcess, **extra: Any) -> str:
    path = workdir / "tap_config.json"
    path.write_text(json.dumps(api.tap_config(**extra)), encoding="utf-8")
    return str(path)


def tap_tool(key: str, label: str, *, baseline: bool = False, **settings: Any) -> Tool:
    """`python -m tap_analytics --config c.json > out.jsonl`, checked record by record."""

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        config = _write_config(workdir, api, **settings)
        out = str(workdir / "tap.jsonl")
        return RunSpec(
            commands=[[PY, "-m", "tap_analytics", "--config", config]],
            stdout=out,
            check=lambda: check_singer(out, expected),
        )

    return Tool(key, label, build, baseline=baseline)


def bare_tool(key: str, label: str, *, threads: int, baseline: bool = False) -> Tool:
    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        keys = str(workdir / "keys.json")
        return RunSpec(
            commands=[
                [
                    *(PY, "-m", "benchmarks.baselines", "bare", "--base-url", api.url),
                    *("--threads", str(threads), "--keys-out", keys),
                ]
            ],
            env={"BENCH_API_TOKEN": api.token},
            check=lambda: check_keys_file(keys, expected),
        )

    return Tool(key, label, build, baseline=baseline)


def _bridge_args(workdir: Path) -> list[str]:
    return ["--pipelines-dir", str(workdir / "pipelines"), "--progress-interval", "0"]


def bridge_run_tool(key: str, label: str, **settings: Any) -> Tool:
    """`dlt-bridge run --config c.json` (the bridge starts the tap); DuckDB checked."""

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        config = _write_config(workdir, api, **settings)
        db = workdir / "tap_analytics.duckdb"
        return RunSpec(
            commands=[[PY, "-m", "dlt_bridge", "run", "--config", config, *_bridge_args(workdir)]],
            stdout=str(workdir / "bridge.out"),
            check=lambda: check_duckdb(db, DATASET_NAME, expected),
        )

    return Tool(key, label, build)


def check_no_rows_marked(db_path: str | os.PathLike[str], expected: Expected) -> Check:
    """Every stream's table has an `_sdc_deleted_at` column and no row marked deleted."""
    import duckdb

    problems: list[str] = []
    with duckdb.connect(str(db_path), read_only=True) as con:
        for stream in expected.keys:
            try:
                marked = con.execute(
                    f'SELECT count(*) FROM "{DATASET_NAME}"."{stream}"'
                    " WHERE _sdc_deleted_at IS NOT NULL"
                ).fetchall()[0][0]
            except duckdb.Error as exc:
                problems.append(f"{stream}: {str(exc).splitlines()[0]}")
                continue
            if marked:
                problems.append(f"{stream}: {marked} rows marked deleted, nothing was deleted")
    return Check(not problems, "; ".join(problems[:5]))


def bridge_rerun_tool(key: str, label: str, *bridge_args: str, baseline: bool = False) -> Tool:
    """`dlt-bridge run <bridge_args>` measured on a DuckDB file that the same command has
    already loaded once (untimed): a run with nothing changed upstream. Checked against the
    dump; in deletion mode also that nothing is marked deleted."""

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        config = _write_config(workdir, api)
        db = workdir / "tap_analytics.duckdb"
        command = [PY, "-m", "dlt_bridge", "run", "--config", config, *bridge_args]
        command += _bridge_args(workdir)

        def check() -> Check:
            tables = check_duckdb(db, DATASET_NAME, expected)
            if not tables.ok or "--deletes" not in bridge_args:
                return tables
            marked = check_no_rows_marked(db, expected)
            return Check(marked.ok, marked.detail, tables.counts)

        return RunSpec(
            commands=[command],
            stdout=str(workdir / "bridge.out"),
            env={"RUNTIME__DLTHUB_TELEMETRY": "false"},
            check=check,
            setup=[command],
        )

    return Tool(key, label, build, baseline=baseline)


def tap_pipe_bridge_tool(key: str, label: str, **settings: Any) -> Tool:
    """`tap | dlt-bridge load`: two processes, each one's peak RSS reported."""

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        config = _write_config(workdir, api, **settings)
        db = workdir / "tap_analytics.duckdb"
        return RunSpec(
            commands=[
                [PY, "-m", "tap_analytics", "--config", config],
                [PY, "-m", "dlt_bridge", "load", *_bridge_args(workdir)],
            ],
            stdout=str(workdir / "bridge.out"),
            check=lambda: check_duckdb(db, DATASET_NAME, expected),
        )

    return Tool(key, label, build, rss_labels=("tap", "bridge"))


def _hook_command(kind: str, workdir: Path, api: FakeAPIProcess) -> tuple[list[str], str]:
    """(command, DuckDB file) for `rest_api` or `native`.

    Both come from `benchmarks.native_source` and take the token from `BENCH_API_TOKEN`.
    """
    module = "benchmarks.native_source"
    name = "rest-api" if kind == "rest_api" else "native"
    command = [PY, "-m", module, name, "--base-url", api.url, "--workdir", str(workdir)]
    if kind == "rest_api":
        command += ["--loader-file-format", "jsonl"]
    db = "rest_api_baseline.duckdb" if kind == "rest_api" else "analytics_native.duckdb"
    return command, str(workdir / db)


def rest_api_tool() -> Tool:
    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        command, db = _hook_command("rest_api", workdir, api)
        return RunSpec(
            commands=[command],
            env=_token_env(api),
            check=lambda: check_duckdb(db, DATASET_NAME, expected),
        )

    return Tool("rest_api", "dlt rest_api_source, done paginator, jsonl", build, baseline=True)


def native_tool() -> Tool:
    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        command, db = _hook_command("native", workdir, api)
        return RunSpec(
            commands=[command],
            env=_token_env(api),
            check=lambda: check_duckdb(db, DATASET_NAME, expected),
        )

    return Tool("native", "native dlt source (analytics_source)", build)


def _token_env(api: FakeAPIProcess) -> dict[str, str]:
    return {
        "BENCH_API_TOKEN": api.token,
        "SOURCES__ANALYTICS__API_KEY": api.token,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }


# -- running -----------------------------------------------------------------------------------


class Runner:
    def __init__(
        self, root: Path, *, keep: bool = False, verbose: bool = True, quiet_wait: float = 0.0
    ) -> None:
        self.root = root
        self.keep = keep
        self.verbose = verbose
        self.quiet_wait = quiet_wait
        self.counter = 0

    def log(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def run_once(
        self, tool: Tool, api: FakeAPIProcess, expected: Expected, *, keep_dir: bool = False
    ) -> RunRecord:
        self.counter += 1
        workdir = self.root / f"{self.counter:03d}-{tool.key}"
        workdir.mkdir(parents=True)
        spec = tool.build(workdir, api, expected)
        for command in spec.setup:
            subprocess.run(
                command,
                cwd=workdir,
                env={**os.environ, **spec.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
        busy = wait_for_quiet(self.quiet_wait) if self.quiet_wait > 0 else 0.0
        api.reset_stats()
        measured: Measured = run_measured(
            spec.commands,
            cwd=workdir,
            stdout=spec.stdout,
            stdin=spec.stdin,
            env=spec.env,
            label=tool.key,
        )
        requests = int(api.stats()["total"])
        if not measured.ok:
            ok, detail = (
                False,
                (
                    f"exit codes {measured.returncodes}"
                    + (" (timed out)" if measured.timed_out else "")
                    + f": {measured.stderr_tail(600)}"
                ),
            )
        elif spec.check is not None:
            check = spec.check()
            ok, detail = check.ok, check.detail
        else:
            ok, detail = True, ""
        record = RunRecord(
            wall=measured.wall,
            maxrss_kb=measured.maxrss_kb,
            cpu_seconds=measured.cpu_seconds,
            requests=requests,
            ok=ok,
            detail=detail,
            workdir=str(workdir),
            busy_before=busy,
        )
        self.log(
            f"  {tool.key:<22} {measured.wall:7.2f} s  {max(measured.maxrss_kb) / 1024:7.1f} MB"
            f"  {requests:>6} req  busy before {busy:4.0%}"
            f"  {'ok' if ok else 'CHECK FAILED: ' + detail}"
        )
        if not (self.keep or keep_dir):
            shutil.rmtree(workdir, ignore_errors=True)
        return record

    def interleaved(
        self, tools: list[Tool], api: FakeAPIProcess, expected: Expected, repeat: int
    ) -> dict[str, ToolResult]:
        results = {t.key: ToolResult(t) for t in tools}
        for round_no in range(repeat):
            self.log(f" round {round_no + 1}/{repeat}")
            for tool in tools:
                if tool.max_runs is not None and round_no >= tool.max_runs:
                    continue
                results[tool.key].runs.append(self.run_once(tool, api, expected))
        return results


@dataclass
class Target:
    name: str
    text: str
    value: float | None
    limit: float
    passed: bool
    note: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        value = "n/a" if self.value is None else f"{self.value:.2f}"
        note = f" - {self.note}" if self.note else ""
        return f"{verdict}  {self.name}: {self.text}: {value} (limit {self.limit:g}){note}"


@dataclass
class ScenarioResult:
    key: str
    title: str
    records: int
    expected_requests: int | None
    results: dict[str, ToolResult] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def checks_ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    def busy_note(self) -> str:
        busy = sorted(r.busy_before for t in self.results.values() for r in t.runs)
        if not busy or busy[-1] == 0:
            return ""
        median = Summary.of(busy).median
        return (
            f"CPUs busy with other processes just before each run: median {median:.0%},"
            f" max {busy[-1]:.0%}"
        )


def ratio_target(
    name: str, text: str, res: dict[str, ToolResult], ours: str, base: str, limit: float
) -> Target:
    a, b = res.get(ours), res.get(base)
    if a is None or b is None or not a.runs or not b.runs:
        return Target(name, text, None, limit, False, "not measured")
    value = a.wall.median / b.wall.median
    ok = a.ok and b.ok
    return Target(
        name,
        text,
        value,
        limit,
        ok and value <= limit,
        "" if ok else "an output check failed",
    )


def _start(dataset: DatasetConfig, runner: Runner, latency_ms: float = 0) -> FakeAPIProcess:
    runner.log(f"starting the fake API: {dataset.total_records:,} records, latency {latency_ms} ms")
    return FakeAPIProcess(dataset=dataset, latency_ms=latency_ms, prerender=250).start()


def scenario_latency0(runner: Runner, repeat: int, dataset: DatasetConfig) -> ScenarioResult:
    tools = [
        bare_tool("bare_seq", "bare loop, sequential", threads=1, baseline=True),
        tap_tool("tap", "tap-analytics (defaults: max_concurrency=8)"),
        tap_tool("tap_mc1", "tap-analytics max_concurrency=1", max_concurrency=1),
        bare_tool("bare_8", "bare loop, children on 8 threads", threads=8),
    ]
    with _start(dataset, runner) as api:
        expected = Expected.from_api(api)
        res = runner.interleaved(tools, api, expected, repeat)
    sr = ScenarioResult(
        "latency0",
        f"1. {dataset.total_records:,} records, no added latency, output to a file",
        dataset.total_records,
        None,
        res,
    )
    sr.targets.append(
        ratio_target(
            "target 1", "tap (defaults) / bare sequential loop", res, "tap", "bare_seq", 1.4
        )
    )
    return sr


def scenario_latency20(
    runner: Runner, repeat: int, dataset: DatasetConfig, latency_ms: float = 20
) -> ScenarioResult:
    tools = [
        bare_tool("bare_8", "bare loop, children on 8 threads", threads=8, baseline=True),
        bare_tool("bare_seq", "bare loop, sequential", threads=1, baseline=True),
        tap_tool("tap", "tap-analytics (defaults: max_concurrency=8)"),
    ]
    sequential = tap_tool("tap_mc1", "tap-analytics max_concurrency=1", max_concurrency=1)
    with _start(dataset, runner, latency_ms) as api:
        expected = Expected.from_api(api)
        res: dict[str, ToolResult] = {t.key: ToolResult(t) for t in tools}
        res[sequential.key] = ToolResult(sequential)
        seq_output: Any = None
        concurrent_outputs: list[str] = []
        for round_no in range(repeat):
            runner.log(f" round {round_no + 1}/{repeat}")
            for tool in tools:
                record = runner.run_once(tool, api, expected, keep_dir=tool.key == "tap")
                res[tool.key].runs.append(record)
                if tool.key == "tap":
                    concurrent_outputs.append(record.workdir)
            if round_no == 0:
                record = runner.run_once(sequential, api, expected, keep_dir=True)
                res[sequential.key].runs.append(record)
                seq_output = read_singer(Path(record.workdir) / "tap.jsonl")
                if not runner.keep:
                    shutil.rmtree(record.workdir, ignore_errors=True)
        identical = []
        for workdir in concurrent_outputs:
            out = Path(workdir) / "tap.jsonl"
            identical.append(
                same_records(read_singer(out), seq_output)
                if out.exists() and seq_output is not None
                else Check(False, "no output")
            )
            if not runner.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    sr = ScenarioResult(
        "latency20",
        f"2. {dataset.total_records:,} records ({dataset.applications} applications), "
        f"{latency_ms:g} ms per request",
        dataset.total_records,
        None,
        res,
    )
    target = ratio_target(
        "target 2", "tap (defaults) / bare 8-thread loop", res, "tap", "bare_8", 1.25
    )
    all_same = bool(identical) and all(c.ok for c in identical)
    if not all_same:
        target.passed = False
        target.note = "concurrent output differs from the sequential run: " + "; ".join(
            c.detail for c in identical if not c.ok
        )
    sr.targets.append(target)
    sr.notes.append(
        f"every concurrent tap run's RECORD messages (time_extracted ignored) equal the "
        f"max_concurrency=1 run's, per stream and in order: "
        f"{'yes' if all_same else 'NO'} ({sum(c.ok for c in identical)}/{len(identical)} runs)"
    )
    sr.extra["identical_to_sequential"] = all_same
    return sr


def scenario_duckdb(runner: Runner, repeat: int, dataset: DatasetConfig) -> ScenarioResult:
    tools = [
        rest_api_tool(),
        bridge_run_tool("bridge_run", "dlt-bridge run (tap started by the bridge)"),
        tap_pipe_bridge_tool("tap_pipe_load", "tap | dlt-bridge load"),
        native_tool(),
    ]
    with _start(dataset, runner) as api:
        expected = Expected.from_api(api, keep_records=False)
        res = runner.interleaved(tools, api, expected, repeat)
    sr = ScenarioResult(
        "duckdb",
        f"3. {dataset.total_records:,} records end to end into DuckDB",
        dataset.total_records,
        None,
        res,
    )
    sr.targets.append(
        ratio_target(
            "target 3",
            "dlt-bridge run / dlt rest_api_source (jsonl)",
            res,
            "bridge_run",
            "rest_api",
            0.6,
        )
    )
    sr.notes.append(
        "the bridge and the native source load with their default loader format (parquet); "
        "the rest_api baseline with jsonl, as the issue specifies"
    )
    return sr


def scenario_deletes(runner: Runner, repeat: int, dataset: DatasetConfig) -> ScenarioResult:
    tools = [
        bridge_rerun_tool(
            "incremental", "dlt-bridge run (incremental), nothing changed", baseline=True
        ),
        bridge_rerun_tool(
            "deletes_soft", "dlt-bridge run --deletes soft, nothing changed", "--deletes", "soft"
        ),
    ]
    with _start(dataset, runner) as api:
        expected = Expected.from_api(api, keep_records=False)
        res = runner.interleaved(tools, api, expected, repeat)
    sr = ScenarioResult(
        "deletes",
        f"7. deletion mode: {dataset.total_records:,} records into DuckDB, nothing changed",
        dataset.total_records,
        None,
        res,
    )
    sr.targets.append(
        ratio_target(
            "target 7",
            "dlt-bridge run --deletes soft / incremental dlt-bridge run, nothing changed",
            res,
            "deletes_soft",
            "incremental",
            2.5,
        )
    )
    sr.notes.append(
        "each measured run is the second run of its command in its working directory (the"
        " first, untimed, loaded the same data); both read every page of the API; the"
        " incremental run sends no record, `--deletes soft` sends and merges every record and"
        " compares the keys; checked: tables equal the dump, no row marked deleted"
    )
    return sr


def scenario_state(runner: Runner, small: int = 300, large: int = 3_000) -> ScenarioResult:
    tool = tap_tool("tap", "tap-analytics (defaults)")
    sizes: dict[int, int] = {}
    res: dict[str, ToolResult] = {}
    for apps in (small, large):
        dataset = _state_dataset(apps)
        with _start(dataset, runner) as api:
            expected = Expected.from_api(api)
            record = runner.run_once(tool, api, expected, keep_dir=True)
            sizes[apps] = last_state_size(Path(record.workdir) / "tap.jsonl")
            if not runner.keep:
                shutil.rmtree(record.workdir, ignore_errors=True)
        key = f"tap_{apps}"
        res[key] = ToolResult(
            Tool(key, f"tap-analytics, {apps:,} applications", tool.build),
            [record],
            dataset.total_records,
        )
    sr = ScenarioResult(
        "state", f"4b. STATE size, {small:,} vs {large:,} applications", 0, None, res
    )
    value = sizes[large] / sizes[small] if sizes[small] else None
    sr.extra["state_bytes"] = sizes
    sr.targets.append(
        Target(
            "target 4b",
            f"last STATE bytes, {large:,} / {small:,} applications "
            f"({sizes[large]:,} / {sizes[small]:,} bytes)",
            value,
            1.05,
            value is not None and value <= 1.05 and all(r.ok for r in res.values()),
        )
    )
    return sr


def scenario_memory(
    runner: Runner, small: DatasetConfig, large: DatasetConfig, repeat: int = 1
) -> ScenarioResult:
    tap = tap_tool("tap", "tap-analytics (defaults)")
    pipe = tap_pipe_bridge_tool("tap_pipe_load", "tap | dlt-bridge load")
    res: dict[str, ToolResult] = {}
    for dataset in (small, large):
        n = dataset.total_records
        with _start(dataset, runner) as api:
            expected = Expected.from_api(api, keep_records=False)
            for tool in (tap, pipe):
                key = f"{tool.key}_{n}"
                res[key] = ToolResult(
                    Tool(
                        key, f"{tool.label}, {n:,} records", tool.build, rss_labels=tool.rss_labels
                    ),
                    records=n,
                )
                for _ in range(repeat):
                    res[key].runs.append(runner.run_once(tool, api, expected))
    sr = ScenarioResult(
        "memory",
        f"4a. peak RSS, {small.total_records:,} vs {large.total_records:,} records",
        0,
        None,
        res,
    )
    s, m = small.total_records, large.total_records
    for label, key, index in (
        ("tap -> file", "tap", 0),
        ("tap in tap | bridge", "tap_pipe_load", 0),
        ("bridge in tap | bridge", "tap_pipe_load", 1),
    ):
        a, b = res[f"{key}_{m}"], res[f"{key}_{s}"]
        ra, rb = a.peak_rss_mb(index), b.peak_rss_mb(index)
        value = ra / rb if rb else None
        sr.targets.append(
            Target(
                "target 4a",
                f"peak RSS {label}, {m:,} / {s:,} records ({ra:.0f} / {rb:.0f} MB)",
                value,
                1.2,
                value is not None and value <= 1.2 and a.ok and b.ok,
            )
        )
    return sr


# -- reporting ---------------------------------------------------------------------------------


def _fmt_rate(records: int, seconds: float) -> str:
    if not records or not seconds or seconds != seconds:
        return "-"
    return f"{records / seconds:,.0f}"


def table_rows(sr: ScenarioResult) -> tuple[list[str], list[list[str]]]:
    baselines = [r for r in sr.results.values() if r.tool.baseline]
    header = ["tool", "wall median (min-max)", "records/s", "peak RSS", "CPU s", "requests"]
    header += [f"x {b.tool.key}" for b in baselines]
    header.append("check")
    rows = []
    for result in sr.results.values():
        w = result.wall
        if result.tool.rss_labels:
            rss = (
                " / ".join(
                    f"{name} {result.peak_rss_mb(i):.0f}"
                    for i, name in enumerate(result.tool.rss_labels)
                )
                + " MB"
            )
        else:
            rss = f"{result.peak_rss_mb():.0f} MB"
        cpu = Summary.of(sum(r.cpu_seconds) for r in result.runs)
        reqs = sorted({r.requests for r in result.runs})
        records = sr.records or result.records
        row = [
            result.tool.label + (" [baseline]" if result.tool.baseline else ""),
            w.text(),
            _fmt_rate(records, w.median),
            rss,
            f"{cpu.median:.1f}",
            ",".join(f"{r:,}" for r in reqs),
        ]
        for b in baselines:
            row.append(f"{w.median / b.wall.median:.2f}x" if b.wall.n and w.n else "-")
        passed = sum(r.ok for r in result.runs)
        row.append(
            f"ok {passed}/{len(result.runs)}"
            if result.ok
            else f"FAILED {len(result.runs) - passed}/{len(result.runs)}"
        )
        rows.append(row)
    return header, rows


def format_text(sr: ScenarioResult) -> str:
    header, rows = table_rows(sr)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [sr.title]
    lines.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)))
    for result in sr.results.values():
        for r in result.runs:
            if not r.ok:
                lines.append(f"  ! {result.tool.key}: {r.detail[:400]}")
    for note in [*sr.notes, sr.busy_note()]:
        if note:
            lines.append(f"  note: {note}")
    lines.extend(t.line() for t in sr.targets)
    return "\n".join(lines)


def format_markdown(sr: ScenarioResult) -> str:
    header, rows = table_rows(sr)
    lines = [f"### {sr.title}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    lines.append("")
    for note in [*sr.notes, sr.busy_note()]:
        if note:
            lines.append(f"* {note}")
    for t in sr.targets:
        lines.append(f"* **{t.line().split('  ', 1)[0]}** {t.line().split('  ', 1)[1]}")
    return "\n".join(lines)


def machine_markdown(info: dict[str, Any], argv: list[str]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return "\n".join(
        [
            f"* machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, "
            f"{info['memory_gb']} GB RAM, {info['platform']}",
            f"* Python {info['python']}; {packages}",
            "* environment of every run: "
            + ", ".join(f"{k}={v}" for k, v in info.get("env", {}).items()),
            f"* command: `python -m benchmarks.run {' '.join(argv)}`".replace(
                "benchmarks.run `", "benchmarks.run`"
            ),
            f"* date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        ]
    )


def update_markdown(path: Path, blocks: dict[str, str]) -> None:
    """Replace `<!-- bench:NAME -->...<!-- /bench:NAME -->` blocks (append missing ones)."""
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    for name, body in blocks.items():
        start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        block = f"{start}\n{body.rstrip()}\n{end}"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m, b=block: b, text)  # type: ignore[misc]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


# -- command line ------------------------------------------------------------------------------

DEFAULT_SCENARIOS = (
    "latency0",
    "latency20",
    "duckdb",
    "state",
    "deletes",
    "bridge100k",
    "unchanged",
    "small",
    "history",
)
ALL_SCENARIOS = (*DEFAULT_SCENARIOS, "memory")


def run(args: argparse.Namespace, argv: list[str]) -> tuple[list[ScenarioResult], dict[str, Any]]:
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.memory and "memory" not in scenarios:
        scenarios.append("memory")
    unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {', '.join(ALL_SCENARIOS)}")
    root = Path(tempfile.mkdtemp(prefix="tap-analytics-bench-", dir=args.workdir))
    runner = Runner(root, keep=args.keep, verbose=not args.silent, quiet_wait=args.quiet_wait)
    quick = args.quick
    big = QUICK_DATASET if quick else DATASET_100K
    results: list[ScenarioResult] = []
    try:
        for name in scenarios:
            runner.log(f"scenario {name}")
            if name == "latency0":
                results.append(scenario_latency0(runner, args.repeat, big))
            elif name == "latency20":
                results.append(
                    scenario_latency20(
                        runner,
                        args.repeat,
                        QUICK_DATASET if quick else DATASET_200_APPS,
                        latency_ms=2 if quick else 20,
                    )
                )
            elif name == "duckdb":
                results.append(scenario_duckdb(runner, args.repeat, big))
            elif name == "deletes":
                results.append(scenario_deletes(runner, args.repeat, big))
            elif name == "bridge100k":
                results.append(overhead.scenario_bridge_full(runner, args.repeat, big))
            elif name == "unchanged":
                results.append(overhead.scenario_unchanged(runner, args.repeat, big))
            elif name == "small":
                small = QUICK_DATASET if quick else DEMO_DATASET
                results.append(overhead.scenario_bridge_full(runner, args.repeat, small, "small"))
            elif name == "history":
                results.append(history.scenario_history(runner, args.repeat, big))
            elif name == "state":
                results.append(scenario_state(runner, *((3, 30) if quick else (300, 3_000))))
            elif name == "memory":
                results.append(
                    scenario_memory(
                        runner,
                        QUICK_DATASET if quick else DATASET_100K,
                        _scaled(QUICK_DATASET, 10) if quick else DATASET_1M,
                    )
                )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            runner.log(f"run directories kept in {root}")
    return results, machine_info()


def _scaled(d: DatasetConfig, k: int) -> DatasetConfig:
    return DatasetConfig(
        seed=d.seed,
        applications=d.applications * k,
        endpoints_per_app=d.endpoints_per_app,
        integrations_per_app=d.integrations_per_app,
        event_types=d.event_types * k,
        tokens=d.tokens * k,
        ingest_sources=d.ingest_sources * k,
        endpoints_per_source=d.endpoints_per_source,
        webhook_endpoints=d.webhook_endpoints * k,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default: 3)")
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(ALL_SCENARIOS)} (default: %(default)s)",
    )
    p.add_argument("--memory", action="store_true", help="also run the memory scenario (slow)")
    p.add_argument("--quick", action="store_true", help="tiny datasets: a smoke run")
    p.add_argument("--json", metavar="FILE", help="write all measurements as JSON")
    p.add_argument(
        "--markdown",
        metavar="FILE",
        help="update the tables of this Markdown file (e.g. BENCHMARKS.md) in place",
    )
    p.add_argument("--workdir", help="where run directories are made (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep every run's directory")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="before each run wait up to this long for the CPUs to be idle (< 15%% busy), so"
        " other processes do not skew it; 0 disables (default: %(default)s)",
    )
    p.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    results, info = run(args, argv)
    print()
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    )
    for sr in results:
        print()
        print(format_text(sr))
    targets = [t for sr in results for t in sr.targets]
    checks_ok = all(sr.checks_ok for sr in results)
    print()
    print("Targets")
    for t in targets:
        print("  " + t.line())
    print(f"  output checks: {'all runs match the dump' if checks_ok else 'SOME RUNS FAILED'}")
    if args.json:
        payload = {
            "machine": info,
            "argv": argv,
            "scenarios": [
                {
                    "key": sr.key,
                    "title": sr.title,
                    "records": sr.records,
                    "tools": [r.to_json(sr.records) for r in sr.results.values()],
                    "targets": [t.__dict__ for t in sr.targets],
                    "notes": sr.notes,
                    "extra": {k: v for k, v in sr.extra.items()},
                }
                for sr in results
            ],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    if args.markdown:
        blocks = {"machine": machine_markdown(info, argv)}
        for sr in results:
            blocks[sr.key] = format_markdown(sr)
        update_markdown(Path(args.markdown), blocks)
    return 0 if checks_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
