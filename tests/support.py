"""Helpers shared by all tests: parse the tap's Singer output (one parser, one result type), run
the tap as a process, compare with the fake's dump."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics_api.streams import STREAMS, STREAMS_BY_NAME


def json_lines(text: str) -> list[Any]:
    """One JSON document per non-blank line (Singer messages, printed states, JSONL files)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def records_by_stream(messages: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """RECORD payloads per stream, in order; every stream of the API has a (maybe empty) list."""
    out: dict[str, list[dict[str, Any]]] = {s.name: [] for s in STREAMS}
    for m in messages:
        if m["type"] == "RECORD":
            out.setdefault(m["stream"], []).append(m["record"])
    return out


@dataclass
class TapRun:
    """A tap run's Singer output, parsed (the one result type of every tap runner in tests/:
    in-process `tests.unit.mockapi.run_tap`, `run_tap_process` here, the reliability
    `Workspace.tap`, the conformance tap engine)."""

    messages: list[dict[str, Any]]
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def records_by_stream(self) -> dict[str, list[dict[str, Any]]]:
        return records_by_stream(self.messages)

    @property
    def last_state(self) -> dict[str, Any]:
        """The value of the last STATE message ({} when there was none)."""
        states = self.of_type("STATE")
        return states[-1]["value"] if states else {}


def parse_tap_output(
    stdout: str, *, returncode: int = 0, stderr: str = "", singer: bool = True
) -> TapRun:
    """The tap's stdout read as Singer lines. `singer=False` for `--discover` / `--about`, which
    print one JSON document instead (kept in `stdout`, no messages)."""
    return TapRun(json_lines(stdout) if singer else [], returncode, stdout, stderr)


def run_tap_process(
    tmp_path: Path,
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> TapRun:
    """`python -m tap_analytics --config ...` as users run it; stdout parsed as Singer lines."""
    config_path = tmp_path / "tap-config.json"
    config_path.write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_analytics", "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "tap-state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = tmp_path / "tap-catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        args += ["--catalog", str(catalog_path)]
    args += extra_args or []
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    return parse_tap_output(result.stdout, returncode=result.returncode, stderr=result.stderr)


def normalized(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record as the tap's schema sees it: every declared field, missing read as null."""
    properties = STREAMS_BY_NAME[stream].schema["properties"]
    return {name: record.get(name) for name in properties}


def assert_equals_dump(
    run_records: dict[str, list[dict[str, Any]]], dump: dict[str, list[dict[str, Any]]]
) -> None:
    """Every stream: same count, same keys, same values (order-insensitive), no duplicates."""
    for stream in STREAMS:
        key = stream.primary_key
        got = [normalized(stream.name, r) for r in run_records.get(stream.name, [])]
        want = [normalized(stream.name, r) for r in dump[stream.name]]
        got_keys = [r[key] for r in got]
        assert len(got_keys) == len(set(got_keys)), f"{stream.name}: duplicate keys"
        assert len(got) == len(want), f"{stream.name}: {len(got)} records, dump has {len(want)}"
        by_key = {r[key]: r for r in want}
        for record in got:
            assert record == by_key.get(record[key]), f"{stream.name}: {record[key]} differs"


def all_dumps(api: Any) -> dict[str, list[dict[str, Any]]]:
    return {s.name: api.dump(s.name) for s in STREAMS}


@dataclass
class CommandResult:
    """A finished command: its arguments (as shown in failures), exit code, output, duration."""

    args: list[str]
    returncode: int
    output: str
    seconds: float

    def check(self) -> CommandResult:
        assert self.returncode == 0, (
            f"`{' '.join(self.args)}` exited {self.returncode} after"
            f" {self.seconds:.1f} s:\n{self.output[-6000:]}"
        )
        return self


def run_command(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    shown: list[str] | None = None,
) -> CommandResult:
    """Run a program with stdin closed, stdout and stderr together; `shown`: the arguments
    failure messages show (default `argv`)."""
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    return CommandResult(shown or argv, proc.returncode, proc.stdout, seconds)


NATIVE_SETTING_VARIABLES = (
    "SOURCES__ANALYTICS__API_KEY",
    "SOURCES__ANALYTICS__BASE_URL",
    "API_KEY",
    "BASE_URL",
    "TAP_ANALYTICS_API_KEY",
    "TAP_ANALYTICS_BASE_URL",
)
"""Variables that would hand `dlt-bridge native` settings from the test runner's environment."""


def isolate_native_cli(monkeypatch: Any, tmp_path: Path) -> None:
    """`dlt-bridge native` in this test: run from `tmp_path` (no .dlt folder), none of the
    runner's settings variables, its log records to caplog instead of its own stderr handler."""
    import analytics_source.cli as native

    monkeypatch.chdir(tmp_path)
    for name in NATIVE_SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(native, "_ensure_logging", lambda level: None)
    monkeypatch.setattr(native.log, "propagate", True)
