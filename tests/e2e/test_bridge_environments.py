"""`dlt-bridge run|native --environment` against two fake APIs with different data and keys.

Each environment must end up in its own DuckDB file equal to its own fake's dump; a wrong key or
an API that is down fails that environment only; a second run is incremental per environment;
deletions configured for one environment change only its tables; on PostgreSQL each environment
gets a dataset of its own. The bridge runs as a process (`python -m dlt_bridge`), so everything
it and its taps print is checked for the keys.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from fake_api import DatasetConfig
from tests.conftest import FakeHandle
from tests.e2e import bridge_support
from tests.e2e.bridge_support import (
    BridgeResult,
    assert_tables_equal_dump,
    load_ids,
    query,
    stored_state,
    tables,
)
from tests.e2e.deletes_support import assert_live_rows_equal_dump, deleted_keys, snapshot
from tests.support import all_dumps

pytestmark = pytest.mark.e2e

KEY_A = "sk-env-a-SECRET-7a7a"
KEY_B = "sk-env-b-SECRET-7b7b"
WRONG = "sk-wrong-SECRET-0000"
FAST = {"max_retries": 1, "backoff_factor": 0}  # faults are not what these tests are about


@pytest.fixture
def fakes(fake_api_factory: Callable[..., FakeHandle]) -> tuple[FakeHandle, FakeHandle]:
    """Two accounts: different data (seed, sizes) and different keys."""
    a = fake_api_factory(DatasetConfig(seed=21, applications=8), token=KEY_A)
    b = fake_api_factory(DatasetConfig(seed=22, applications=5, event_types=12), token=KEY_B)
    return a, b


def write_environments(workdir: Path, *entries: dict[str, Any]) -> Path:
    path = workdir / "environments.yml"
    path.write_text(json.dumps({"environments": list(entries)}), encoding="utf-8")  # JSON is YAML
    return path


def entry(name: str, api: Any, variable: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": api.url, "api_key_env": variable, **FAST, **extra}


def bridge(workdir: Path, *args: str, keys: dict[str, str]) -> BridgeResult:
    """`python -m dlt_bridge <args>` in `workdir`, the keys only in the child's environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DESTINATION__", "TAP_ANALYTICS_", "SOURCES__"))
    }
    env.update(
        ANALYTICS_ENVIRONMENTS=str(workdir / "environments.yml"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        **keys,
    )
    extra = ["--progress-interval", "0"] if args[0] == "run" else []
    proc = subprocess.run(
        [sys.executable, "-m", "dlt_bridge", *args, "--pipelines-dir", str(workdir / "pl"), *extra],
        capture_output=True,
        cwd=workdir,
        env=env,
        timeout=300,
        check=False,
    )
    return BridgeResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def report(result: BridgeResult) -> dict[str, dict[str, Any]]:
    """The per-environment JSON lines on stdout, by environment."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {line["environment"]: line for line in lines}


def statuses(result: BridgeResult) -> dict[str, str]:
    return {name: line["status"] for name, line in report(result).items()}


def use(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Point the bridge_support readers at environment `name`'s DuckDB file."""
    monkeypatch.setattr(bridge_support, "DB_FILE", f"analytics_{name}.duckdb")


def rows_of_last_load(workdir: Path) -> dict[str, list[str]]:
    last = load_ids(workdir)[-1]
    present = tables(workdir)
    out = {}
    for stream in STREAMS:
        key = stream.primary_key
        found = (
            query(
                workdir,
                f'select "{key}" from analytics."{stream.name}" where _dlt_load_id = ?',
                [last],
            )
            if stream.name in present
            else []
        )
        out[stream.name] = sorted(r[0] for r in found)
    return out


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_key(result: BridgeResult, *keys: str) -> None:
    for key in keys:
        assert key not in result.stdout + result.stderr


def test_run_loads_each_environment_into_its_own_file_then_only_changes(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fakes
    write_environments(tmp_path, entry("a", a, "KEY_A"), entry("staging", b, "KEY_B"))
    keys = {"KEY_A": KEY_A, "KEY_B": KEY_B}
    first = bridge(tmp_path, "run", "--environment", "all", keys=keys)
    assert first.returncode == 0, first.stderr[-3000:]
    assert statuses(first) == {"a": "ok", "staging": "ok"}
    assert report(first)["staging"]["location"] == str(tmp_path / "analytics_staging.duckdb")
    assert_no_key(first, KEY_A, KEY_B)
    for name, api in (("a", a), ("staging", b)):
        use(monkeypatch, name)
        assert_tables_equal_dump(tmp_path, all_dumps(api))
        assert (tmp_path / "pl" / f"analytics_{name}").is_dir()
    use(monkeypatch, "staging")
    b_before, b_state = snapshot(tmp_path), stored_state(tmp_path)

    mutated = a.mutate(share=0.25, seed=3)
    second = bridge(tmp_path, "run", "--environment", "a", "--environment", "staging", keys=keys)
    assert second.returncode == 0, second.stderr[-3000:]
    use(monkeypatch, "a")
    assert_tables_equal_dump(tmp_path, all_dumps(a))
    assert rows_of_last_load(tmp_path) == {k: sorted(v) for k, v in mutated.items()}
    use(monkeypatch, "staging")
    assert snapshot(tmp_path) == b_before and stored_state(tmp_path) == b_state


def test_a_wrong_key_or_an_api_that_is_down_fails_only_that_environment(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fakes
    down = f"http://127.0.0.1:{closed_port()}"
    write_environments(
        tmp_path,
        entry("b", b, "KEY_B"),
        {**entry("down", a, "KEY_A"), "base_url": down, "max_retries": 0},
        entry("a", a, "KEY_A"),
    )
    result = bridge(tmp_path, "run", "--environment", "all", keys={"KEY_A": KEY_A, "KEY_B": WRONG})
    assert result.returncode == 4, result.stderr[-3000:]
    assert statuses(result) == {"b": "failed", "down": "failed", "a": "ok"}
    assert "environment 'b' failed (exit 4, key from KEY_B)" in result.stderr
    assert "environment 'down' failed (exit 4, key from KEY_A)" in result.stderr
    assert "HTTP 401" in result.stderr  # the tap's own message, just before
    assert_no_key(result, KEY_A, WRONG)
    use(monkeypatch, "a")
    assert_tables_equal_dump(tmp_path, all_dumps(a))
    use(monkeypatch, "b")
    assert not set(tables(tmp_path)) & {s.name for s in STREAMS} and stored_state(tmp_path) is None

    fixed = bridge(tmp_path, "run", "--environment", "b", keys={"KEY_B": KEY_B})
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(b))


def test_native_loads_each_environment_and_a_wrong_key_fails_alone(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fakes
    write_environments(tmp_path, entry("a", a, "KEY_A"), entry("staging", b, "KEY_B"))
    first = bridge(
        tmp_path, "native", "--environment", "all", keys={"KEY_A": KEY_A, "KEY_B": KEY_B}
    )
    assert first.returncode == 0, first.stderr[-3000:]
    for name, api in (("a", a), ("staging", b)):
        use(monkeypatch, name)
        assert_tables_equal_dump(tmp_path, all_dumps(api))
    use(monkeypatch, "staging")
    b_before = snapshot(tmp_path)

    a.mutate(share=0.25, seed=4)
    b.mutate(share=0.25, seed=4)
    second = bridge(
        tmp_path, "native", "--environment", "all", keys={"KEY_A": KEY_A, "KEY_B": WRONG}
    )
    assert second.returncode == 1, second.stderr[-3000:]
    assert statuses(second) == {"a": "ok", "staging": "failed"}
    assert "HTTP 401" in report(second)["staging"]["error"]
    assert_no_key(second, KEY_A, WRONG)
    use(monkeypatch, "a")
    assert_tables_equal_dump(tmp_path, all_dumps(a))
    use(monkeypatch, "staging")
    assert snapshot(tmp_path) == b_before


def test_deletes_follow_each_environment_and_change_only_its_tables(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deletes: hard` in the file for a; b takes the command line's --deletes."""
    a, b = fakes
    write_environments(tmp_path, entry("a", a, "KEY_A", deletes="hard"), entry("b", b, "KEY_B"))
    keys = {"KEY_A": KEY_A, "KEY_B": KEY_B}
    first = bridge(tmp_path, "run", "--environment", "all", keys=keys)
    assert first.returncode == 0, first.stderr[-3000:]

    gone_a = a.delete_records(share=0.2, seed=3)
    use(monkeypatch, "b")
    b_before = snapshot(tmp_path)
    second = bridge(tmp_path, "run", "--environment", "all", "--deletes", "soft", keys=keys)
    assert second.returncode == 0, second.stderr[-3000:]
    use(monkeypatch, "a")  # hard (the file wins): the rows are gone, none marked
    assert_tables_equal_dump(tmp_path, all_dumps(a))
    assert all(gone_a.values()) and not any(deleted_keys(tmp_path, s.name) for s in STREAMS)
    use(monkeypatch, "b")
    assert snapshot(tmp_path) == b_before

    gone_b = b.delete_records(share=0.2, seed=4)
    use(monkeypatch, "a")
    a_before = snapshot(tmp_path)
    third = bridge(tmp_path, "run", "--environment", "all", "--deletes", "soft", keys=keys)
    assert third.returncode == 0, third.stderr[-3000:]
    use(monkeypatch, "b")  # soft (from the command line): exactly b's deleted rows are marked
    assert_live_rows_equal_dump(tmp_path, b)
    for stream in STREAMS:
        assert deleted_keys(tmp_path, stream.name) == set(gone_b[stream.name]), stream.name
    use(monkeypatch, "a")
    assert snapshot(tmp_path) == a_before


def test_on_postgres_each_environment_has_its_own_dataset(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, postgres: Any
) -> None:
    a, b = fakes
    write_environments(tmp_path, entry("eu", a, "KEY_A"), entry("eu_staging", b, "KEY_B"))
    database = postgres.create_database()
    keys = {
        "KEY_A": KEY_A,
        "KEY_B": KEY_B,
        "DESTINATION__POSTGRES__CREDENTIALS": postgres.dsn(database),
    }
    # dlt's default merge staging of `eu` would be `analytics_eu_staging`: the other's dataset
    for mutate in (False, True):
        if mutate:
            a.mutate(share=0.25, seed=6)
            b.mutate(share=0.25, seed=6)
        argv = ["run", "--environment", "all", "--destination", "postgres"]
        result = bridge(tmp_path, *argv, keys=keys)
        assert result.returncode == 0, result.stderr[-3000:]
        assert {n: r["dataset_name"] for n, r in report(result).items()} == {
            "eu": "analytics_eu",
            "eu_staging": "analytics_eu_staging",
        }
        for name, api in (("eu", a), ("eu_staging", b)):
            for stream in STREAMS:
                key, table = stream.primary_key, f'analytics_{name}."{stream.name}"'
                got = postgres.query(database, f'select "{key}" from {table}')
                want = [r[key] for r in api.dump(stream.name)]
                assert sorted(r[0] for r in got) == sorted(want), (name, stream.name)


def test_state_prints_each_environments_stored_state_without_keys(
    fakes: tuple[FakeHandle, FakeHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fakes
    write_environments(
        tmp_path, entry("a", a, "KEY_A"), entry("b", b, "KEY_B"), entry("never", a, "KEY_A")
    )
    keys = {"KEY_A": KEY_A, "KEY_B": KEY_B}
    loaded = bridge(tmp_path, "run", "--environment", "a", "--environment", "b", keys=keys)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    shown = bridge(tmp_path, "state", "--environment", "all", keys={})  # no key is needed
    assert shown.returncode == 0, shown.stderr[-3000:]
    lines = report(shown)
    assert list(lines) == ["a", "b", "never"]
    for name in ("a", "b"):
        use(monkeypatch, name)
        assert lines[name]["state"] is not None and lines[name]["state"] == stored_state(tmp_path)
        assert lines[name]["pipeline"] == f"analytics_{name}"
        assert lines[name]["location"] == str(tmp_path / f"analytics_{name}.duckdb")
    assert lines["a"]["state"] != lines["b"]["state"]
    assert lines["never"]["state"] is None
    one = bridge(tmp_path, "state", "--environment", "b", keys={})
    assert one.returncode == 0 and list(report(one)) == ["b"]
    conflict = bridge(tmp_path, "state", "--environment", "a", "--pipeline-name", "x", keys={})
    assert conflict.returncode == 2 and not conflict.stdout.strip()
    unknown = bridge(tmp_path, "state", "--environment", "nope", keys={})
    assert unknown.returncode == 2 and not unknown.stdout.strip()
