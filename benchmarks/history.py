"""The cost of history tables (issue 21: a history run <= 1.3x the same run without history, at
100,000 records): `make bench` scenario `history`.

Tools, interleaved, each against its own working directory:

* `full` / `full_history`: `dlt-bridge run` into a new DuckDB file, without and with
  `--history` (target 21a: the history run / the same run without history);
* `changed` / `changed_history`: a second `dlt-bridge run`, without and with `--history`, after
  a first run of the same command (untimed) and a change of a tenth of every stream upstream
  (later `updatedAt`, new tokens; untimed): the run that reads the open versions, writes the new
  ones and closes the old (target 21b);
* `native` / `native_history`: `dlt-bridge native` into a new DuckDB file, without and with
  `--history` (target 21c).

Checked after every measured run against the fake's ground truth (never the engine's output):
the current tables hold exactly the dump's keys; with history, each `<stream>_history` holds one
open version per record, valid from its replication key value, and for every record the change
touched one closed version, valid until the new one, and nothing else.

`python -m benchmarks.history mutate --url URL --share 0.1 --seed N --out touched.json` (a set-up
step of the `changed` tools) changes the fake and writes the keys it touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.measure import Check, Expected, check_duckdb
from fake_api import DatasetConfig, FakeAPIProcess

if TYPE_CHECKING:
    from benchmarks.run import Runner, ScenarioResult, Tool

PY = sys.executable
LIMIT = 1.3
CHANGED_SHARE = 0.1
_seeds = itertools.count(1)


def _bridge(workdir: Path, config: str, *extra: str) -> list[str]:
    pipelines = ["--pipelines-dir", str(workdir / "pipelines"), "--progress-interval", "0"]
    return [PY, "-m", "dlt_bridge", "run", "--config", config, *extra, *pipelines]


def _native(workdir: Path, api: FakeAPIProcess, *extra: str) -> list[str]:
    pipelines = ["--pipelines-dir", str(workdir / "pipelines")]
    return [PY, "-m", "dlt_bridge", "native", "--base-url", api.url, *extra, *pipelines]


def _mutate(workdir: Path, api: FakeAPIProcess) -> tuple[list[str], Path]:
    touched = workdir / "touched.json"
    seed = str(next(_seeds))
    command = [PY, "-m", "benchmarks.history", "mutate", "--url", api.url, "--seed", seed]
    return [*command, "--share", str(CHANGED_SHARE), "--out", str(touched)], touched


def run_tool(key: str, label: str, *, history: bool, changed: bool, baseline: bool) -> Tool:
    """`dlt-bridge run [--history]`, on a new file or after a first run and a change upstream."""
    from benchmarks.run import DATASET_NAME, RunSpec, Tool, _write_config

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        config = _write_config(workdir, api)
        command = _bridge(workdir, config, *(["--history"] if history else []))
        setup: list[list[str]] = []
        touched = None
        if changed:
            mutate, touched = _mutate(workdir, api)
            setup = [command, mutate]
        db = workdir / "tap_analytics.duckdb"
        return RunSpec(
            commands=[command],
            stdout=str(workdir / "bridge.out"),
            env={"RUNTIME__DLTHUB_TELEMETRY": "false"},
            setup=setup,
            check=lambda: check_run(db, DATASET_NAME, api, history, touched),
        )

    return Tool(key, label, build, baseline=baseline)


def native_tool(key: str, label: str, *, history: bool) -> Tool:
    """`dlt-bridge native [--history]` into a new DuckDB file."""
    from benchmarks.run import DATASET_NAME, RunSpec, Tool, _token_env

    def build(workdir: Path, api: FakeAPIProcess, expected: Expected) -> RunSpec:
        db = workdir / "analytics_native.duckdb"  # its default pipeline name
        return RunSpec(
            commands=[_native(workdir, api, *(["--history"] if history else []))],
            env=_token_env(api),
            check=lambda: check_run(db, DATASET_NAME, api, history, None),
        )

    return Tool(key, label, build)


def check_run(
    db: Path, dataset: str, api: FakeAPIProcess, history: bool, touched_file: Path | None
) -> Check:
    """The current tables are the fake's dump now; with history, so is every history table."""
    expected = Expected.from_api(api, keep_records=not history)
    tables = check_duckdb(db, dataset, expected)
    if not tables.ok or not history:
        return tables
    touched = json.loads(touched_file.read_text("utf-8")) if touched_file else {}
    problems = check_history(db, dataset, api, touched)
    return Check(not problems, "; ".join(problems[:5]), tables.counts)


def _instant(text: str) -> dt.datetime:
    from analytics_dlt.history import instant

    return instant(text)


def check_history(
    db: Path, dataset: str, api: FakeAPIProcess, touched: dict[str, list[str]]
) -> list[str]:
    """One open version per record of the dump, from its replication key value; one closed
    version per record `touched` changed (tokens are added, never changed), until the new one."""
    import duckdb

    from analytics_api.streams import STREAMS

    problems: list[str] = []
    with duckdb.connect(str(db), read_only=True) as con:
        for stream in STREAMS:
            key, since = stream.primary_key, stream.replication_key
            dump = {r[key]: _instant(r[since]) for r in api.dump(stream.name)}
            rows = con.execute(
                f'SELECT "{key}", _valid_from, _valid_to FROM "{dataset}"."{stream.name}_history"'
            ).fetchall()
            current = {k: f for k, f, t in rows if t is None}
            closed = {k: (f, t) for k, f, t in rows if t is not None}
            changed = set(touched.get(stream.name, [])) if stream.name != "tokens" else set()
            if len(current) != sum(1 for _, _, t in rows if t is None) or current != dump:
                problems.append(f"{stream.name}_history: open versions differ from the dump")
            if len(closed) != len(rows) - len(current) or set(closed) != changed:
                problems.append(f"{stream.name}_history: closed versions differ from the change")
            elif any(closed[k][1] != dump[k] or closed[k][0] >= dump[k] for k in changed):
                problems.append(f"{stream.name}_history: a closed version's validity is wrong")
    return problems


def scenario_history(runner: Runner, repeat: int, dataset: DatasetConfig) -> ScenarioResult:
    from benchmarks.run import ScenarioResult, _start, ratio_target

    tools = [
        run_tool("full", "dlt-bridge run, new file", history=False, changed=False, baseline=True),
        run_tool(
            "full_history",
            "dlt-bridge run --history, new file",
            history=True,
            changed=False,
            baseline=False,
        ),
        run_tool(
            "changed",
            "dlt-bridge run, second run, 10% changed",
            history=False,
            changed=True,
            baseline=True,
        ),
        run_tool(
            "changed_history",
            "dlt-bridge run --history, second run, 10% changed",
            history=True,
            changed=True,
            baseline=False,
        ),
        native_tool("native", "dlt-bridge native, new file", history=False),
        native_tool("native_history", "dlt-bridge native --history, new file", history=True),
    ]
    with _start(dataset, runner) as api:
        expected = Expected.from_api(api, keep_records=False)
        res = runner.interleaved(tools, api, expected, repeat)
    total = dataset.total_records
    sr = ScenarioResult("history", f"21. history tables: {total:,} records", total, None, res)
    for name, text, ours, base in (
        ("target 21a", "dlt-bridge run --history / without, new file", "full_history", "full"),
        (
            "target 21b",
            "dlt-bridge run --history / without, 10% changed",
            "changed_history",
            "changed",
        ),
        (
            "target 21c",
            "dlt-bridge native --history / without, new file",
            "native_history",
            "native",
        ),
    ):
        sr.targets.append(ratio_target(name, text, res, ours, base, LIMIT))
    sr.notes.append(
        "`changed` runs follow an untimed first run of the same command and an untimed change of"
        f" {CHANGED_SHARE:.0%} of every stream; checked: current tables equal the dump, history"
        " tables hold one open version per record and one closed version per changed record"
    )
    return sr


def mutate(url: str, share: float, seed: int, out: str) -> int:
    payload = json.dumps({"share": share, "seed": seed}).encode()
    request = urllib.request.Request(
        url + "/_fake/mutate", data=payload, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        touched: dict[str, Any] = json.loads(response.read())
    Path(out).write_text(json.dumps(touched), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history")
    sub = parser.add_subparsers(dest="command", required=True)
    change = sub.add_parser("mutate", help="change a share of the fake's records upstream")
    change.add_argument("--url", required=True)
    change.add_argument("--share", type=float, default=CHANGED_SHARE)
    change.add_argument("--seed", type=int, default=0)
    change.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return mutate(args.url, args.share, args.seed, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
