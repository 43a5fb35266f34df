"""Helpers for the dlt bridge tests (unit and end to end): run it, read what it loaded."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tests.support import json_lines

DATASET = "analytics"
DB_FILE = "tap_analytics.duckdb"


@dataclass
class BridgeResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[Any]:
        """STATE values the bridge printed (one JSON document per stdout line)."""
        return json_lines(self.stdout)


def singer_lines(*messages: dict[str, Any] | str | bytes) -> bytes:
    """Encode messages (dicts as JSON; str/bytes taken verbatim) one per line."""
    out = []
    for m in messages:
        if isinstance(m, bytes):
            out.append(m)
        elif isinstance(m, str):
            out.append(m.encode())
        else:
            out.append(json.dumps(m).encode())
    return b"\n".join(out) + b"\n"


def schema(
    stream: str, properties: dict[str, Any], keys: Iterable[str] = ("id",)
) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(keys),
    }


def record(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


def state(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


FAIL_AT: dict[str, dict[str, str]] = {
    "normalize": {"NORMALIZE__WORKERS": "0"},
    "load": {"LOAD__WORKERS": "0"},
}
"""dlt settings (extra env) that make a bridge run fail at exactly that dlt step.

dlt refuses a pool of 0 workers (`ValueError`) when the step starts. `prepare()` only runs those
steps for packages a failed run left pending, so a run after a successful one extracts its data
and fails at the step, leaving its package (with its Singer state) pending, as a destination
failing at that point would."""


def failed_at(stderr: str, step: str) -> bool:
    """Whether the bridge reported a dlt failure at `step` (normalize or load)."""
    return f"load failed at the {step} step" in stderr


def common_args(workdir: Path, command: str = "run") -> list[str]:
    """The test's own pipelines folder; no progress lines where the command has them."""
    quiet = ["--progress-interval", "0"] if command in ("load", "run") else []
    return ["--pipelines-dir", str(workdir / "pipelines"), *quiet]


def run_bridge(
    workdir: Path,
    args: list[str],
    stdin: bytes | None = None,
    *,
    extra_env: dict[str, str] | None = None,
) -> BridgeResult:
    """`dlt-bridge <args>` in this process (fast), cwd = workdir; stdin via a file."""
    argv = list(args)
    if stdin is not None:
        path = workdir / f"input-{os.getpid()}-{id(stdin)}.jsonl"
        path.write_bytes(stdin)
        argv += ["--input", str(path)]
    return main_in_process(workdir, argv + common_args(workdir, argv[0]), extra_env)


def main_in_process(
    workdir: Path, argv: list[str], extra_env: dict[str, str] | None = None
) -> BridgeResult:
    """`dlt_bridge.cli.main(argv)` in this process, cwd = workdir, `extra_env` for this call."""
    from dlt_bridge.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)  # extra_env is for this run only
    os.environ.update(extra_env or {})
    try:
        with chdir(workdir), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return BridgeResult(code, out.getvalue(), err.getvalue())


def run_bridge_process(
    workdir: Path,
    args: list[str],
    stdin: bytes | None = None,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
) -> BridgeResult:
    """`python -m dlt_bridge <args>` as a separate process, cwd = workdir."""
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "dlt_bridge", *args, *common_args(workdir, args[0])],
        input=stdin,
        capture_output=True,
        cwd=workdir,
        env=env,
        timeout=timeout,
        check=False,
    )
    return BridgeResult(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def query(workdir: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    db = workdir / DB_FILE
    if not db.exists():
        return []
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def tables(workdir: Path) -> set[str]:
    rows = query(
        workdir,
        "select table_name from information_schema.tables where table_schema = ?",
        [DATASET],
    )
    return {r[0] for r in rows}


def column_types(workdir: Path, table: str) -> dict[str, str]:
    rows = query(
        workdir,
        "select column_name, data_type from information_schema.columns"
        " where table_schema = ? and table_name = ? order by ordinal_position",
        [DATASET, table],
    )
    return dict(rows)


def count(workdir: Path, table: str) -> int:
    if table not in tables(workdir):
        return 0
    return int(query(workdir, f'select count(*) from {DATASET}."{table}"')[0][0])


def rows(workdir: Path, table: str, columns: str = "*", order: str = "1") -> list[tuple[Any, ...]]:
    return query(workdir, f'select {columns} from {DATASET}."{table}" order by {order}')


def stored_state(workdir: Path) -> Any:
    """The Singer state in the destination (newest completed load), read with SQL only."""
    if "_dlt_pipeline_state" not in tables(workdir):
        return None
    found = query(
        workdir,
        f"select s.state from {DATASET}._dlt_pipeline_state s join {DATASET}._dlt_loads l"
        " on l.load_id = s._dlt_load_id where l.status = 0 order by l.load_id desc limit 1",
    )
    if not found:
        return None
    from dlt.pipeline.state_sync import decompress_state

    decoded = decompress_state(found[0][0])
    for source in (decoded.get("sources") or {}).values():
        if "singer_state" in source:
            return source["singer_state"]
    return None


def load_ids(workdir: Path) -> list[str]:
    if "_dlt_loads" not in tables(workdir):
        return []
    return [r[0] for r in query(workdir, f"select load_id from {DATASET}._dlt_loads order by 1")]


def pending_packages(workdir: Path, pipeline_name: str = "tap_analytics") -> list[str]:
    base = workdir / "pipelines" / pipeline_name
    found = []
    for sub in ("normalize/extracted", "load/normalized", "load/new"):
        d = base / sub
        if d.is_dir():
            found += [p.name for p in d.iterdir() if p.is_dir()]
    return found


# -- comparing loaded tables with the fake API's dump ---------------------------------------------


def parse_rfc3339_us(text: str) -> Any:
    """An RFC 3339 string as an aware UTC datetime truncated to microseconds (what dlt stores)."""
    import re
    from datetime import datetime, timezone

    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m is not None, text
    frac = (m.group(2) or "")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").astimezone(timezone.utc)


def loaded_records(workdir: Path, stream: str) -> list[dict[str, Any]]:
    """Rows of a stream's table as records keyed by the schema's property names.

    Timestamps as aware UTC datetimes, json columns decoded, missing table -> no rows.
    """
    from datetime import timezone

    from analytics_api.streams import STREAMS_BY_NAME
    from analytics_dlt.hints import columns_from_json_schema, destination_column_name

    definition = STREAMS_BY_NAME[stream]
    if stream not in tables(workdir):
        return []
    columns = columns_from_json_schema(definition.schema, [definition.primary_key])
    names = [n for n in columns if n != "_sdc_sequence"]
    select = ", ".join(f'"{destination_column_name(n)}"' for n in names)
    out = []
    for row in query(workdir, f'select {select} from {DATASET}."{stream}"'):
        rec: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            kind = columns[name]["data_type"]
            if value is not None and kind == "json":
                value = json.loads(value)
            elif value is not None and kind == "timestamp":
                value = value.astimezone(timezone.utc)
            rec[name] = value
        out.append(rec)
    return out


def expected_records(stream: str, dump: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dump as the table should hold it: every declared field, timestamps truncated to µs."""
    from analytics_api.streams import STREAMS_BY_NAME
    from analytics_dlt.hints import columns_from_json_schema

    definition = STREAMS_BY_NAME[stream]
    columns = columns_from_json_schema(definition.schema, [definition.primary_key])
    out = []
    for source in dump:
        rec = {}
        for name, column in columns.items():
            if name == "_sdc_sequence":
                continue
            value = source.get(name)
            if value is not None and column["data_type"] == "timestamp":
                value = parse_rfc3339_us(value)
            rec[name] = value
        out.append(rec)
    return out


def assert_tables_equal_dump(workdir: Path, dumps: dict[str, list[dict[str, Any]]]) -> None:
    """Each stream's table: same row count, same keys (no duplicates), same values and types."""
    from analytics_api.streams import STREAMS

    for definition in STREAMS:
        key = definition.primary_key
        got = loaded_records(workdir, definition.name)
        want = expected_records(definition.name, dumps[definition.name])
        got_keys = [r[key] for r in got]
        assert len(got_keys) == len(set(got_keys)), f"{definition.name}: duplicate keys"
        assert len(got) == len(want), f"{definition.name}: {len(got)} rows, dump has {len(want)}"
        by_key = {r[key]: r for r in want}
        for rec in got:
            assert rec == by_key.get(rec[key]), f"{definition.name} {rec[key]}: differs"
            for name, value in rec.items():  # python types, not just equal values (True == 1)
                assert type(value) is type(by_key[rec[key]][name]), (definition.name, name)


def write_tap_config(workdir: Path, api: Any, **extra: Any) -> Path:
    path = workdir / "tap-config.json"
    path.write_text(json.dumps({"api_key": api.token, "base_url": api.url, **extra}))
    return path
