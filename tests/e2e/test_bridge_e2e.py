"""tap-analytics -> dlt-bridge -> DuckDB against the local fake API, compared with its dump."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from tests.e2e.bridge_support import (
    FAIL_AT,
    assert_tables_equal_dump,
    count,
    failed_at,
    load_ids,
    loaded_records,
    parse_rfc3339_us,
    pending_packages,
    query,
    run_bridge_process,
    stored_state,
    write_tap_config,
)
from tests.support import all_dumps, json_lines

pytestmark = pytest.mark.e2e


def bridge_run(tmp_path: Path, api: Any, *args: str, **kw: Any) -> Any:
    config = write_tap_config(tmp_path, api)
    return run_bridge_process(tmp_path, ["run", "--config", str(config), *args], **kw)


def records_loaded(stderr: str) -> int:
    """The record count of the bridge's summary line ('N records in ...')."""
    for line in stderr.splitlines():
        if " records in " in line and "dlt-bridge" in line:
            return int(line.split("INFO ", 1)[1].split(" records", 1)[0].replace(",", ""))
    raise AssertionError(f"no summary in:\n{stderr[-3000:]}")


def test_run_equals_dump_and_a_second_run_adds_nothing(fake_api: Any, tmp_path: Path) -> None:
    first = bridge_run(tmp_path, fake_api)
    assert first.returncode == 0, first.stderr[-3000:]
    dumps = all_dumps(fake_api)
    assert_tables_equal_dump(tmp_path, dumps)
    assert records_loaded(first.stderr) == sum(len(d) for d in dumps.values())
    state = stored_state(tmp_path)
    assert state and state.get("bookmarks")
    second = bridge_run(tmp_path, fake_api)
    assert second.returncode == 0, second.stderr[-3000:]
    assert records_loaded(second.stderr) == 0
    assert_tables_equal_dump(tmp_path, dumps)
    assert len(load_ids(tmp_path)) <= 2  # no new load at all when nothing changed


def test_mutations_fetch_only_changes_also_without_working_dir(
    fake_api: Any, tmp_path: Path
) -> None:
    assert bridge_run(tmp_path, fake_api).returncode == 0
    first_load = load_ids(tmp_path)[0]
    mutated = fake_api.mutate(share=0.2, seed=3)
    shutil.rmtree(tmp_path / "pipelines")  # state must come back from the destination
    res = bridge_run(tmp_path, fake_api)
    assert res.returncode == 0, res.stderr[-3000:]
    assert records_loaded(res.stderr) == sum(len(v) for v in mutated.values())
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    second_load = load_ids(tmp_path)[1]
    for definition in STREAMS:
        changed = set(mutated[definition.name])
        key = definition.primary_key
        for row_key, load_id in query(
            tmp_path, f'select "{key}", _dlt_load_id from analytics."{definition.name}"'
        ):
            assert load_id == (second_load if row_key in changed else first_load), (
                definition.name,
                row_key,
            )


def test_as_a_singer_target_in_a_pipe(fake_api: Any, tmp_path: Path) -> None:
    config = write_tap_config(tmp_path, fake_api)
    tap = subprocess.Popen(
        [sys.executable, "-m", "tap_analytics", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    bridge = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlt_bridge",
            "load",
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
        ],
        stdin=tap.stdout,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    assert tap.wait() == 0
    assert bridge.returncode == 0, bridge.stderr.decode()[-3000:]
    printed = json_lines(bridge.stdout.decode())
    assert printed and printed[-1] == stored_state(tmp_path)
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


KILLER = r"""
import os, signal, subprocess, sys
limit = int(os.environ["KILL_AFTER_LINES"])
command = [sys.executable, "-m", "tap_analytics", *sys.argv[1:]]
tap = subprocess.Popen(command, stdout=subprocess.PIPE)
out = sys.stdout.buffer
for n, line in enumerate(tap.stdout, 1):
    if n > limit:
        out.write(line[: len(line) // 2])  # half a line, as a killed writer leaves it
        out.flush()
        tap.kill()
        tap.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    out.write(line)
out.flush()
sys.exit(tap.wait())
"""


def assert_state_not_ahead_of_data(tmp_path: Path, dumps: dict[str, list[dict[str, Any]]]) -> None:
    """Every record at or before a stream's stored bookmark is in the table."""
    state = stored_state(tmp_path) or {}
    for definition in STREAMS:
        bookmark = (state.get("bookmarks", {}).get(definition.name) or {}).get(
            "replication_key_value"
        )
        if bookmark is None:
            continue
        limit = parse_rfc3339_us(bookmark)
        have = {r[definition.primary_key] for r in loaded_records(tmp_path, definition.name)}
        for rec in dumps[definition.name]:
            value = rec.get(definition.replication_key)
            if value is not None and parse_rfc3339_us(value) <= limit:
                assert rec[definition.primary_key] in have, (definition.name, bookmark)


@pytest.mark.parametrize("kill_after", [1, 120])
def test_tap_killed_mid_run_then_next_run_completes(
    fake_api: Any, tmp_path: Path, kill_after: int
) -> None:
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    res = bridge_run(
        tmp_path,
        fake_api,
        "--tap-command",
        f"{sys.executable} {killer}",
        extra_env={"KILL_AFTER_LINES": str(kill_after)},
    )
    assert res.returncode == 4, res.stderr[-3000:]  # the tap failed (it was killed)
    dumps = all_dumps(fake_api)
    assert_state_not_ahead_of_data(tmp_path, dumps)
    assert pending_packages(tmp_path) == []
    fake_api.mutate(share=0.1, seed=5)
    res = bridge_run(tmp_path, fake_api)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


@pytest.mark.parametrize("step", ["normalize", "load"])
@pytest.mark.parametrize("policy", ["load", "abort"])
def test_failed_load_then_next_run_completes(
    fake_api: Any, tmp_path: Path, step: str, policy: str
) -> None:
    assert bridge_run(tmp_path, fake_api).returncode == 0
    before = stored_state(tmp_path)
    fake_api.mutate(share=0.2, seed=1)
    failed = bridge_run(tmp_path, fake_api, extra_env=FAIL_AT[step])
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert failed_at(failed.stderr, step), failed.stderr[-3000:]
    assert stored_state(tmp_path) == before  # state did not move past the stored data
    assert len(pending_packages(tmp_path)) == 1
    fake_api.mutate(share=0.2, seed=2)
    res = bridge_run(tmp_path, fake_api, "--on-pending", policy)
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("finishing" if policy == "load" else "aborting") in res.stderr
    assert pending_packages(tmp_path) == []
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


def test_broken_destination_fails_cleanly(fake_api: Any, tmp_path: Path) -> None:
    res = bridge_run(
        tmp_path,
        fake_api,
        extra_env={"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "missing-dir" / "x.duckdb")},
    )
    assert res.returncode == 1, res.stderr[-3000:]
    assert count(tmp_path, "applications") == 0
    res = bridge_run(tmp_path, fake_api)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


def summary_rows(stderr: str) -> dict[str, tuple[int, int, int]]:
    """The summary's table: table -> (new, updated, deleted)."""
    found = {}
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[2] in {s.name for s in STREAMS}:
            found[parts[2]] = tuple(int(p.replace(",", "")) for p in parts[3:])
    return found  # type: ignore[return-value]


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_summary_counts_new_updated_and_deleted_rows(
    fake_api: Any, tmp_path: Path, mode: str
) -> None:
    """The summary says per table what a run did (it used to count rows sent only)."""
    first = bridge_run(tmp_path, fake_api, "--deletes", mode)
    assert first.returncode == 0, first.stderr[-3000:]
    dumps = all_dumps(fake_api)
    assert summary_rows(first.stderr) == {s.name: (len(dumps[s.name]), 0, 0) for s in STREAMS}
    assert len(first.stderr.splitlines()) <= 20, first.stderr
    fake_api.mutate(share=0.2, seed=3)
    fake_api.delete_records(share=0.1, seed=4)
    second = bridge_run(tmp_path, fake_api, "--deletes", mode)
    assert second.returncode == 0, second.stderr[-3000:]
    after = all_dumps(fake_api)
    got = summary_rows(second.stderr)
    for definition in STREAMS:
        name, key = definition.name, definition.primary_key
        gone = {r[key] for r in dumps[name]} - {r[key] for r in after[name]}
        # a deletion-mode run is a full scan: every live record is written again (an update)
        assert got[name] == (0, len(after[name]), len(gone)), name
