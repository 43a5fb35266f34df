"""The benchmark machinery still works (`make bench`): tiny dataset, one run, no timing asserts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import measure, run
from benchmarks.baselines import bare_loop
from fake_api import FakeAPI, FakeAPIProcess

pytestmark = pytest.mark.e2e


def test_launcher_reports_exit_code_rss_and_pipes(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    measured = measure.run_measured(
        [
            [sys.executable, "-c", "print('hello'); print('world')"],
            [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"],
        ],
        cwd=tmp_path,
        stdout=out,
    )
    assert measured.ok
    assert out.read_text() == "HELLO\nWORLD\n"
    assert len(measured.maxrss_kb) == 2 and all(kb > 0 for kb in measured.maxrss_kb)
    assert measured.wall > 0
    failed = measure.run_measured([[sys.executable, "-c", "raise SystemExit(3)"]], cwd=tmp_path)
    assert failed.returncodes == [3] and not failed.ok


def test_bare_loop_matches_dump() -> None:
    with FakeAPI(run.QUICK_DATASET) as api:
        expected = measure.Expected.from_api(api)
        for threads in (1, 4):
            keys = bare_loop(api.url, api.token, threads=threads)
            assert keys == expected.keys


def test_checks_catch_a_wrong_output(tmp_path: Path) -> None:
    with FakeAPI(run.QUICK_DATASET) as api:
        expected = measure.Expected.from_api(api)
        good = tmp_path / "good.jsonl"
        with good.open("w") as fh:
            for stream, records in (expected.records or {}).items():
                for record in records:
                    fh.write(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
                    fh.write("\n")
            fh.write(json.dumps({"type": "STATE", "value": {"bookmarks": {}}}) + "\n")
        assert measure.check_singer(good, expected).ok
        assert measure.last_state_size(good) == len('{"type": "STATE", "value": {"bookmarks": {}}}')
        lines = good.read_text().splitlines()
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # one record missing
        assert not measure.check_singer(bad, expected).ok
        same = measure.same_records(measure.read_singer(good), measure.read_singer(good))
        assert same.ok
        assert not measure.same_records(measure.read_singer(good), measure.read_singer(bad)).ok


@pytest.mark.e2e
def test_quick_bench_runs_every_default_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    md = tmp_path / "BENCH.md"
    md.write_text("# Bench\n\nprose kept\n\n<!-- bench:state -->\nold\n<!-- /bench:state -->\n")
    code = run.main(
        [
            "--quick",
            "--repeat",
            "1",
            "--scenarios",
            "latency0,latency20,state",
            "--json",
            str(out),
            "--markdown",
            str(md),
            "--workdir",
            str(tmp_path),
            "--silent",
            "--quiet-wait",
            "0",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    data = json.loads(out.read_text())
    assert [s["key"] for s in data["scenarios"]] == ["latency0", "latency20", "state"]
    for scenario in data["scenarios"]:
        for tool in scenario["tools"]:
            assert tool["runs"] and all(r["ok"] for r in tool["runs"]), tool
            assert all(r["requests"] > 0 for r in tool["runs"])
    latency20 = data["scenarios"][1]
    assert latency20["extra"]["identical_to_sequential"] is True
    assert "target 1" in printed and "target 2" in printed and "target 4b" in printed
    text = md.read_text()
    assert "prose kept" in text and "old" not in text and "<!-- bench:latency0 -->" in text


def test_fake_api_process_is_what_the_suite_uses() -> None:
    # The suite measures against a server in its own process; make sure the handle has the
    # methods it relies on.
    for name in ("reset_stats", "stats", "dump", "tap_config", "set_latency"):
        assert callable(getattr(FakeAPIProcess, name))


@pytest.mark.e2e
def test_quick_overhead_scenarios_check_every_run(tmp_path: Path) -> None:
    """Issue 13's scenarios run end to end: the bridge's tables and the unchanged tap's output
    are checked after every measured run (ratios are `make bench`'s business, not a test's)."""
    out = tmp_path / "bench.json"
    args = ["--quick", "--repeat", "1", "--scenarios", "bridge100k,unchanged,small"]
    args += ["--json", str(out), "--workdir", str(tmp_path), "--silent", "--quiet-wait", "0"]
    assert run.main(args) == 0
    data = json.loads(out.read_text())
    assert [s["key"] for s in data["scenarios"]] == ["bridge100k", "unchanged", "small"]
    for scenario in data["scenarios"]:
        assert scenario["tools"][0]["key"] in ("tap", "tap_state")
        for tool in scenario["tools"]:
            assert tool["runs"] and all(r["ok"] for r in tool["runs"]), tool
        assert [t["name"] for t in scenario["targets"]] == [
            {"bridge100k": "target 13a", "unchanged": "target 13b", "small": "target 13c"}[
                scenario["key"]
            ]
        ]
