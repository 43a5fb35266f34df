"""The bridge loading synthetic Singer streams into a DuckDB file under tmp_path."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from dlt_bridge import loader as bridge_loader
from tests.e2e.bridge_support import (
    FAIL_AT,
    column_types,
    count,
    failed_at,
    load_ids,
    pending_packages,
    query,
    record,
    rows,
    run_bridge,
    run_bridge_process,
    schema,
    singer_lines,
    state,
    stored_state,
    tables,
)
from tests.support import json_lines

PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "name": {"type": ["string", "null"]},
    "n": {"type": ["integer", "null"]},
    "score": {"type": ["number", "null"]},
    "ok": {"type": ["boolean", "null"]},
    "updatedAt": {"type": ["string", "null"], "format": "date-time"},
    "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
}
pytestmark = pytest.mark.e2e

APPS = schema("apps", PROPS)
EVENTS = schema(
    "events", {"uuid": {"type": "string"}, "what": {"type": ["string", "null"]}}, ["uuid"]
)


def app(i: int, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": f"app_{i}",
        "name": f"name {i}",
        "n": 70000 + i,
        "score": i / 4,
        "ok": i % 2 == 0,
        "updatedAt": f"2024-01-01T00:00:{i % 60:02d}.5Z",
        "metadata": {"k": str(i)},
        "tags": ["a", str(i)],
    }
    fields.update(extra)
    return record("apps", **fields)


GOOD = [APPS, app(1), state({"v": 1})]


def load(tmp_path: Path, *messages: Any, args: list[str] | None = None, **kw: Any) -> Any:
    return run_bridge(tmp_path, ["load", *(args or [])], singer_lines(*messages), **kw)


def test_one_table_per_stream_with_typed_columns(tmp_path: Path) -> None:
    res = load(
        tmp_path,
        APPS,
        EVENTS,
        app(1),
        app(2, name=None, metadata=None, tags=None),
        record("events", uuid="u1", what="x"),
        state({"bookmarks": {"apps": 2}}),
    )
    assert res.returncode == 0, res.stderr
    assert res.states == [{"bookmarks": {"apps": 2}}]
    assert {t for t in tables(tmp_path) if not t.startswith("_dlt")} == {"apps", "events"}
    assert column_types(tmp_path, "apps") == {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "n": "BIGINT",
        "score": "DOUBLE",
        "ok": "BOOLEAN",
        "updated_at": "TIMESTAMP WITH TIME ZONE",
        "metadata": "JSON",
        "tags": "JSON",
        "_sdc_sequence": "BIGINT",
        "_dlt_load_id": "VARCHAR",
        "_dlt_id": "VARCHAR",
    }
    got = rows(tmp_path, "apps", "id, name, n, score, ok, metadata, tags, epoch_us(updated_at)")
    assert got[0] == (
        "app_1",
        "name 1",
        70001,
        0.25,
        False,
        '{"k":"1"}',
        '["a","1"]',
        1704067201500000,
    )
    assert got[1][:2] == ("app_2", None) and got[1][5:7] == (None, None)
    assert rows(tmp_path, "events", "uuid, what") == [("u1", "x")]
    nulls = query(
        tmp_path,
        "select is_nullable from information_schema.columns"
        " where table_schema = 'analytics' and table_name = 'apps' and column_name = 'id'",
    )
    assert nulls == [("NO",)]
    assert "loaded into duckdb" in res.stderr and "apps" in res.stderr


def test_json_columns_round_trip_exactly(tmp_path: Path) -> None:
    props = {
        "id": {"type": "string"},
        "config": {"type": ["object", "null"], "additionalProperties": True},
        "tags": {"type": ["array", "null"]},
    }
    res = load(
        tmp_path,
        schema("src", props),
        record("src", id="a", config={"x": 1}, tags=["q"]),
        record("src", id="b", config={"y": {"z": [1, None, "s"]}}, tags=[{"k": 1}]),
        record("src", id="c", config={}, tags=[]),
    )
    assert res.returncode == 0, res.stderr
    got = [
        (i, json.loads(c), json.loads(t)) for i, c, t in rows(tmp_path, "src", "id, config, tags")
    ]
    assert got == [
        ("a", {"x": 1}, ["q"]),
        ("b", {"y": {"z": [1, None, "s"]}}, [{"k": 1}]),
        ("c", {}, []),
    ]
    assert {t for t in tables(tmp_path) if t.startswith("src")} == {"src"}


def test_jsonl_on_duckdb_warns(tmp_path: Path) -> None:
    res = load(tmp_path, *GOOD, args=["--loader-file-format", "jsonl"])
    assert res.returncode == 0
    assert "jsonl load files on DuckDB rewrite json columns" in res.stderr


def test_timestamps_keep_microseconds_only(tmp_path: Path) -> None:
    res = load(
        tmp_path,
        APPS,
        app(1, updatedAt="2024-01-01T00:00:00.123456789Z"),
        app(2, updatedAt="2024-01-01T00:00:00.9999999Z"),
        app(3, updatedAt="2024-01-01T02:00:00+02:00"),
    )
    assert res.returncode == 0, res.stderr
    got = rows(tmp_path, "apps", "id, epoch_us(updated_at) % 10000000")
    assert got == [("app_1", 123456), ("app_2", 999999), ("app_3", 0)]


def test_rerun_is_idempotent_and_updates_replace(tmp_path: Path) -> None:
    batch = [APPS, *[app(i) for i in range(10)], state({"v": 1})]
    assert load(tmp_path, *batch).returncode == 0
    assert load(tmp_path, *batch).returncode == 0
    assert count(tmp_path, "apps") == 10
    res = load(tmp_path, APPS, app(3, name="renamed", n=None), app(11), state({"v": 2}))
    assert res.returncode == 0
    assert count(tmp_path, "apps") == 11
    assert query(tmp_path, "select name, n from analytics.apps where id = 'app_3'") == [
        ("renamed", None)
    ]
    assert len(load_ids(tmp_path)) == 3
    assert stored_state(tmp_path) == {"v": 2}


def test_last_copy_of_a_key_wins_within_one_run(tmp_path: Path) -> None:
    copies = [app(1, name=f"copy {i}") for i in range(7)]
    # batch size 2: the copies end up in several files of the same package
    res = load(tmp_path, APPS, *copies, app(2), args=["--batch-size", "2"])
    assert res.returncode == 0, res.stderr
    assert rows(tmp_path, "apps", "id, name") == [("app_1", "copy 6"), ("app_2", "name 2")]
    # and across runs the newer load replaces
    load(tmp_path, APPS, app(1, name="later"), app(1, name="latest"))
    assert rows(tmp_path, "apps", "name")[0] == ("latest",)


def test_stream_without_keys_appends(tmp_path: Path) -> None:
    log_schema = schema("log", {"msg": {"type": ["string", "null"]}}, keys=[])
    messages = [log_schema, record("log", msg="a"), record("log", msg="a")]
    assert load(tmp_path, *messages).returncode == 0
    assert load(tmp_path, *messages).returncode == 0
    assert count(tmp_path, "log") == 4


def test_schema_change_mid_run_evolves_table(tmp_path: Path) -> None:
    wider = schema("apps", {**PROPS, "rateLimit": {"type": ["integer", "null"]}})
    res = load(tmp_path, APPS, app(1), wider, app(2, rateLimit=70000))
    assert res.returncode == 0, res.stderr
    assert column_types(tmp_path, "apps")["rate_limit"] == "BIGINT"
    assert rows(tmp_path, "apps", "id, rate_limit") == [("app_1", None), ("app_2", 70000)]
    # a later run with another new field
    newer = schema(
        "apps", {**PROPS, "rateLimit": {"type": ["integer", "null"]}, "x": {"type": "boolean"}}
    )
    assert load(tmp_path, newer, app(3, x=True)).returncode == 0
    assert column_types(tmp_path, "apps")["x"] == "BOOLEAN"


def test_repeated_schema_costs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = bridge_loader.table_hints

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(bridge_loader, "table_hints", counting)
    messages: list[Any] = [APPS]
    for i in range(3000):
        messages += [EVENTS, app(i)]
    res = load(tmp_path, *messages)
    assert res.returncode == 0, res.stderr
    assert sorted(calls) == ["apps", "events"]  # hints built once per stream, not per SCHEMA
    assert count(tmp_path, "apps") == 3000


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ("this is not json", ["line 4:", "not valid JSON"]),
        (record("nope", id="x"), ["line 4, stream 'nope'", "RECORD before the stream's SCHEMA"]),
        (record("apps", name="no key"), ["line 4, stream 'apps'", "key property 'id' is missing"]),
        (record("apps", id=None), ["line 4, stream 'apps'", "key property 'id' is null"]),
        (app(9, n="12"), ["line 4, stream 'apps'", "field 'n': expected integer, got string '12'"]),
        (app(9, updatedAt="soon"), ["line 4, stream 'apps'", "field 'updatedAt'"]),
        (app(9, metadata={"a": 1}), ["line 4, stream 'apps'", "field 'metadata'"]),
        ({"type": "RECORD", "stream": "apps"}, ["line 4, stream 'apps'", "invalid RECORD"]),
    ],
)
def test_bad_input_fails_without_committing(tmp_path: Path, bad: Any, fragments: list[str]) -> None:
    assert load(tmp_path, *GOOD).returncode == 0
    res = load(tmp_path, APPS, app(2), state({"v": 2}), bad, app(3), state({"v": 3}))
    assert res.returncode == 3
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr
    assert "nothing of this run was committed" in res.stderr
    assert res.stdout == ""
    assert stored_state(tmp_path) == {"v": 1}
    assert rows(tmp_path, "apps", "id") == [("app_1",)]
    assert pending_packages(tmp_path) == []
    # the next good run starts from the stored state and completes
    res = load(tmp_path, APPS, app(2), state({"v": 2}))
    assert res.returncode == 0 and res.states == [{"v": 2}]
    assert count(tmp_path, "apps") == 2


def test_unknown_message_type_warns_once_per_type(tmp_path: Path) -> None:
    res = load(tmp_path, APPS, {"type": "FOO"}, app(1), {"type": "FOO"}, {"type": "BAR"}, state(1))
    assert res.returncode == 0
    assert res.stderr.count("unknown type 'FOO'") == 1
    assert res.stderr.count("unknown type 'BAR'") == 1
    assert count(tmp_path, "apps") == 1


def test_activate_version_with_deletions_off_keeps_rows_and_warns_once(tmp_path: Path) -> None:
    """Regression: ACTIVATE_VERSION was dropped with a debug line, so a Meltano set-up for
    deletions silently deleted nothing."""
    av = {"type": "ACTIVATE_VERSION", "stream": "apps", "version": 5}
    res = load(tmp_path, APPS, av, {**app(1), "version": 5}, av)
    assert res.returncode == 0 and count(tmp_path, "apps") == 1
    warnings = [line for line in res.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "--deletes" in warnings[0]


def test_state_printed_only_after_a_successful_load(tmp_path: Path) -> None:
    assert load(tmp_path, *GOOD).returncode == 0
    res = load(tmp_path, APPS, app(2), state({"v": 2}), extra_env=FAIL_AT["load"])
    assert res.returncode == 1
    assert res.stdout == ""
    assert failed_at(res.stderr, "load"), res.stderr
    assert stored_state(tmp_path) == {"v": 1}
    assert count(tmp_path, "apps") == 1
    assert len(pending_packages(tmp_path)) == 1
    # default policy: the pending package (data + its state) is loaded before anything else
    res = load(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "finishing 1 pending load package" in res.stderr
    assert stored_state(tmp_path) == {"v": 2}
    assert count(tmp_path, "apps") == 2
    assert pending_packages(tmp_path) == []


def test_pending_after_failed_normalize_is_loaded(tmp_path: Path) -> None:
    res = load(tmp_path, *GOOD, extra_env=FAIL_AT["normalize"])
    assert res.returncode == 1 and res.stdout == ""
    assert failed_at(res.stderr, "normalize"), res.stderr
    assert stored_state(tmp_path) is None
    res = load(tmp_path, APPS, app(2), state({"v": 2}))
    assert res.returncode == 0, res.stderr
    assert res.states == [{"v": 2}]
    assert stored_state(tmp_path) == {"v": 2}
    assert count(tmp_path, "apps") == 2


def test_pending_abort_policy_discards(tmp_path: Path) -> None:
    assert load(tmp_path, *GOOD).returncode == 0
    res = load(tmp_path, APPS, app(2), state({"v": 2}), extra_env=FAIL_AT["load"])
    assert res.returncode == 1
    shown = run_bridge(tmp_path, ["state"])
    assert json.loads(shown.stdout) == {"v": 1}
    assert "pending" in shown.stderr
    assert len(pending_packages(tmp_path)) == 1  # `state` changes nothing
    res = load(tmp_path, args=["--on-pending", "abort"])
    assert res.returncode == 0, res.stderr
    assert "aborting 1 pending load package" in res.stderr
    assert stored_state(tmp_path) == {"v": 1}
    assert count(tmp_path, "apps") == 1
    assert pending_packages(tmp_path) == []
    res = run_bridge(tmp_path, ["state"])
    assert json.loads(res.stdout) == {"v": 1}


def test_state_is_restored_from_destination(tmp_path: Path) -> None:
    assert load(tmp_path, *GOOD).returncode == 0
    shutil.rmtree(tmp_path / "pipelines")
    res = run_bridge(tmp_path, ["state"])
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"v": 1}
    # and loading again on a fresh working dir still merges
    assert load(tmp_path, APPS, app(1, name="again"), state({"v": 2})).returncode == 0
    assert rows(tmp_path, "apps", "name") == [("again",)]


def test_commit_every_emits_state_after_each_load(tmp_path: Path) -> None:
    messages: list[Any] = [APPS]
    for i in range(10):
        messages += [app(i), state({"v": i})]
    res = load(tmp_path, *messages, args=["--commit-every", "4"])
    assert res.returncode == 0, res.stderr
    assert res.states == [{"v": 3}, {"v": 7}, {"v": 9}]
    assert len(load_ids(tmp_path)) == 3
    assert count(tmp_path, "apps") == 10


def test_commit_every_keeps_earlier_segments_on_bad_input(tmp_path: Path) -> None:
    messages: list[Any] = [APPS]
    for i in range(6):
        messages += [app(i), state({"v": i})]
    res = load(tmp_path, *messages, "oops", args=["--commit-every", "2"])
    assert res.returncode == 3
    assert res.states == [{"v": 1}, {"v": 3}, {"v": 5}][: len(res.states)]
    assert stored_state(tmp_path) == res.states[-1]
    assert count(tmp_path, "apps") == 2 * len(res.states)


def test_batch_messages(tmp_path: Path) -> None:
    body = b"".join(json.dumps(app(i)["record"]).encode() + b"\n" for i in range(5))
    gz = tmp_path / "apps-1.json.gz"
    gz.write_bytes(gzip.compress(body))
    batch = {
        "type": "BATCH",
        "stream": "apps",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": [gz.as_uri()],
    }
    res = load(tmp_path, APPS, batch, app(9), state({"v": 1}))
    assert res.returncode == 0, res.stderr
    assert count(tmp_path, "apps") == 6
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(json.dumps(app(7)["record"]).encode() + b"\n" + b'{"name": "no id"}\n')
    batch = {**batch, "encoding": {"format": "jsonl"}, "manifest": [str(bad)]}
    res = load(tmp_path, APPS, batch)
    assert res.returncode == 3
    assert "line 2, stream 'apps'" in res.stderr and "line 2: key property 'id'" in res.stderr


def test_duckdb_file_must_not_be_named_like_the_dataset(tmp_path: Path) -> None:
    res = load(tmp_path, *GOOD, args=["--pipeline-name", "analytics"])
    assert res.returncode == 2
    assert "same name as the dataset" in res.stderr


def test_process_exit_codes_and_stdout(tmp_path: Path) -> None:
    ok = run_bridge_process(tmp_path, ["load"], singer_lines(*GOOD))
    assert ok.returncode == 0, ok.stderr
    assert ok.states == [{"v": 1}]
    bad = run_bridge_process(tmp_path, ["load"], singer_lines(APPS, app(2, n="x"), state({"v": 2})))
    assert bad.returncode == 3
    assert "line 2, stream 'apps'" in bad.stderr
    assert bad.stdout == ""
    assert stored_state(tmp_path) == {"v": 1}


# -- run mode with a stand-in tap ------------------------------------------------------------------

FAKE_TAP = r"""
import json, os, signal, sys, time
args = sys.argv[1:]
seen = None
if "--state" in args:
    seen = json.load(open(args[args.index("--state") + 1]))
with open(os.environ["FAKE_TAP_SEEN"], "a") as fh:
    fh.write(json.dumps({"args": args, "state": seen}) + "\n")
n = (seen or {}).get("n", 0)
out = sys.stdout
out.write(json.dumps(SCHEMA) + "\n")
for i in range(int(os.environ.get("FAKE_TAP_RECORDS", "3"))):
    rec = {"type": "RECORD", "stream": "apps", "record": {"id": f"app_{n}_{i}"}}
    out.write(json.dumps(rec) + "\n")
out.write(json.dumps({"type": "STATE", "value": {"n": n + 1}}) + "\n")
mode = os.environ.get("FAKE_TAP_MODE", "")
if mode == "bad":
    def stopped(signum, frame):
        with open(os.environ["FAKE_TAP_SEEN"], "a") as fh:
            fh.write(json.dumps({"signal": signum}) + "\n")
        sys.exit(1)
    signal.signal(signal.SIGTERM, stopped)
    out.write('{"type": "RECORD", "stream": "apps", "record": {"id": 5}}\n')
    out.flush()
    time.sleep(600)  # only a signal ends this tap in time
if mode == "crash":
    out.write('{"type": "RECORD", "stream": "apps", "record": {"id": "app_after_st')
    out.flush()
    sys.exit(7)
"""


def make_tap(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_tap.py"
    apps = schema("apps", {"id": {"type": "string"}})
    script.write_text("SCHEMA = " + repr(apps) + "\n" + FAKE_TAP)
    (tmp_path / "config.json").write_text("{}")
    return [
        "run",
        "--config",
        str(tmp_path / "config.json"),
        "--tap-command",
        f"{sys.executable} {script}",
    ]


def tap_runs(tmp_path: Path) -> list[dict[str, Any]]:
    return json_lines((tmp_path / "seen.jsonl").read_text())


def test_run_passes_the_stored_state_to_the_tap(tmp_path: Path) -> None:
    env = {"FAKE_TAP_SEEN": str(tmp_path / "seen.jsonl")}
    args = make_tap(tmp_path)
    assert run_bridge(tmp_path, args, extra_env=env).returncode == 0
    assert run_bridge(tmp_path, [*args, "--catalog", "cat.json"], extra_env=env).returncode == 0
    shutil.rmtree(tmp_path / "pipelines")  # the state comes from the destination
    res = run_bridge(tmp_path, args, extra_env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    seen = tap_runs(tmp_path)
    assert [s["state"] for s in seen] == [None, {"n": 1}, {"n": 2}]
    assert seen[1]["args"][-4:-2] == ["--catalog", "cat.json"]
    assert stored_state(tmp_path) == {"n": 3}
    assert count(tmp_path, "apps") == 9


def test_run_tap_crash_loads_what_was_sent_up_to_its_state(tmp_path: Path) -> None:
    env = {"FAKE_TAP_SEEN": str(tmp_path / "seen.jsonl"), "FAKE_TAP_MODE": "crash"}
    res = run_bridge(tmp_path, make_tap(tmp_path), extra_env=env)
    assert res.returncode == 4  # the tap failed; its half-written last line was dropped:
    assert stored_state(tmp_path) == {"n": 1}
    assert count(tmp_path, "apps") == 3
    env.pop("FAKE_TAP_MODE")
    res = run_bridge(tmp_path, make_tap(tmp_path), extra_env=env)
    assert res.returncode == 0
    assert stored_state(tmp_path) == {"n": 2}


def test_run_bad_tap_output_stops_the_tap(tmp_path: Path) -> None:
    """The stand-in tap sleeps after its bad line: the bridge must stop it (SIGTERM), not wait
    for it. As a process, so a bridge that waits is cut off by the timeout (a hang guard)."""
    env = {"FAKE_TAP_SEEN": str(tmp_path / "seen.jsonl"), "FAKE_TAP_MODE": "bad"}
    res = run_bridge_process(tmp_path, make_tap(tmp_path), extra_env=env, timeout=300)
    assert res.returncode == 3
    assert tap_runs(tmp_path)[-1] == {"signal": signal.SIGTERM}
    assert "line 6, stream 'apps'" in res.stderr
    assert stored_state(tmp_path) is None
    assert count(tmp_path, "apps") == 0
