"""Issue 7.3: kill -9 at random points, then one clean rerun: the destination equals the dump,
zero duplicates, and the stored state is consistent.

Kill points are drawn from a seeded RNG inside an early, middle or late window of the run:
during `dlt-bridge run`, the tap child is killed after the N-th API request (the fake has
latency, so the run is mid-flight); during `tap | dlt-bridge load`, the tap is killed after it
wrote N bytes (the stream ending there, or torn mid-line); the bridge itself is killed after its
k-th commit plus a random delay. Consistency of the stored state: right after the crash it
covers no row that is not in the table; after the rerun every stream is bookmarked at exactly
its newest record, and a tap started from it emits nothing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_api import DatasetConfig
from tests.e2e.bridge_support import assert_tables_equal_dump, pending_packages, stored_state
from tests.reliability.support import (
    Workspace,
    assert_final_state,
    assert_stored_state_not_ahead,
    clean_env,
    new_key,
)
from tests.support import all_dumps, json_lines

pytestmark = pytest.mark.e2e

DATASET = DatasetConfig(
    applications=12, endpoints_per_app=3, integrations_per_app=2, event_types=15
)
PAGE_SIZE = 3
LATENCY_MS = 10


def pages(n: int) -> int:
    return max(1, -(-n // PAGE_SIZE))


REQUESTS = (  # requests of one complete run (see tests/e2e/test_tap_e2e.py)
    pages(DATASET.applications)
    + DATASET.applications
    * (pages(DATASET.endpoints_per_app) + pages(DATASET.integrations_per_app))
    + pages(DATASET.event_types)
    + pages(DATASET.tokens)
    + pages(DATASET.ingest_sources)
    + DATASET.ingest_sources * pages(DATASET.endpoints_per_source)
    + pages(DATASET.webhook_endpoints)
)


def tap_child(pid: int) -> int | None:
    """The `tap_analytics` process among the children of `pid` (Linux /proc)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                if b"tap_analytics" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except OSError:
                continue
    return None


def kill_after_requests(api: Any, victim: Any, requests: int, timeout: float = 60) -> bool:
    """SIGKILL the process `victim()` returns once the fake has answered `requests` requests.
    True if the kill landed on a live process."""
    deadline = time.monotonic() + timeout
    while api.stats()["total"] < requests:
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never reached {requests} requests")
        time.sleep(0.002)
    pid = victim()
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def assert_rerun_completes(ws: Workspace, api: Any, config: dict[str, Any], rerun: Any) -> None:
    dumps = all_dumps(api)
    rerun()
    assert pending_packages(ws.root) == []
    assert_tables_equal_dump(ws.root, dumps)  # every row, once
    state = stored_state(ws.root)
    assert_final_state(state, dumps)
    api.set_latency(0)
    after = ws.tap(config, state=state)
    assert after.returncode == 0, after.stderr[-3000:]
    assert after.of_type("RECORD") == [], "the stored state does not cover what was loaded"


WINDOWS = {"early": (0.05, 0.35), "middle": (0.35, 0.65), "late": (0.65, 0.9)}


def kill_point(seed: int, window: str, total: int) -> int:
    """A seeded random point inside a window (a share of `total`) of the run."""
    low, high = WINDOWS[window]
    return max(1, round(total * random.Random(seed).uniform(low, high)))


@pytest.mark.parametrize(
    ("seed", "window", "concurrency", "commit_every"),
    [(1, "early", 1, 0), (2, "middle", 8, 25), (3, "late", 1, 25)],
)
def test_tap_killed_during_bridge_run(
    ws: Workspace,
    fake_api_factory: Any,
    seed: int,
    window: str,
    concurrency: int,
    commit_every: int,
) -> None:
    """The tap child of `dlt-bridge run` is SIGKILLed after a random number of API requests."""
    api = fake_api_factory(DATASET, token=ws.key, latency_ms=LATENCY_MS)
    config = ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=concurrency)
    args = ["run", "--config", str(ws.write_config(config)), "--commit-every", str(commit_every)]
    with (ws.out_dir / "crashed-bridge.log").open("wb") as err:
        bridge = subprocess.Popen(
            ws.bridge_args(args),
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ws.root,
            env=clean_env(),
        )
        try:
            landed = kill_after_requests(
                api,
                lambda: tap_child(bridge.pid),
                kill_point(seed, window, REQUESTS),
            )
            code = bridge.wait(timeout=120)
        finally:
            if bridge.poll() is None:
                bridge.kill()
    log = (ws.out_dir / "crashed-bridge.log").read_text()
    assert landed, "the tap had already finished: the kill point is past the run"
    assert code == 4, log[-3000:]  # the tap failed; what it sent is loaded with its last STATE
    assert "the tap failed (exit -9)" in log
    assert pending_packages(ws.root) == []
    assert_stored_state_not_ahead(ws.root, all_dumps(api))

    def rerun() -> None:
        res = ws.bridge_run(config)
        assert res.returncode == 0, res.stderr[-3000:]

    assert_rerun_completes(ws, api, config, rerun)


@pytest.fixture(scope="module")
def output_size(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Bytes of Singer output of one complete run over DATASET (to place byte kill points)."""
    from fake_api import FakeAPI

    with FakeAPI(DATASET, token=new_key()) as api:
        workspace = Workspace(tmp_path_factory.mktemp("calibration"), key=api.token)
        run = workspace.tap(workspace.config_for(api, page_size=PAGE_SIZE, max_concurrency=8))
        assert run.returncode == 0, run.stderr[-3000:]
        return len(run.stdout.encode())


class _Drain(threading.Thread):
    """Reads a pipe to its end; counts lines as they come."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.data = b""
        self.lines = 0

    def run(self) -> None:
        for line in self.stream:
            self.data += line
            self.lines += 1


class _TapReader(threading.Thread):
    """Reads the tap's stdout as fast as the tap writes it (so the tap never waits for the
    bridge, and is really mid-run at the kill point) and SIGKILLs the tap once `after_bytes`
    were read. With `torn`, nothing after byte `after_bytes` is passed on."""

    def __init__(self, tap: Any, after_bytes: int, torn: bool) -> None:
        super().__init__(daemon=True)
        self.tap = tap
        self.after_bytes = after_bytes
        self.torn = torn
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        self.landed = False

    def run(self) -> None:
        fd = self.tap.stdout.fileno()
        total = 0
        killed = False
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            if not killed and total + len(chunk) >= self.after_bytes:
                killed = True
                self.landed = self.tap.poll() is None
                self.tap.send_signal(signal.SIGKILL)
                if self.torn:
                    self.chunks.put(chunk[: self.after_bytes - total])
                    break
            total += len(chunk)
            self.chunks.put(chunk)
        self.chunks.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self.chunks.get()) is not None:
            yield chunk


def _read_directly(tap: Any) -> Iterator[bytes]:
    while chunk := os.read(tap.stdout.fileno(), 1024):
        yield chunk


def pipe_tap_into_load(
    ws: Workspace,
    config: dict[str, Any],
    state: Any,
    load_args: list[str],
    kill: str = "",
    after_bytes: int = 0,
    after_commits: tuple[int, float] = (0, 0.0),
    torn: bool = False,
) -> tuple[int, str, bool]:
    """`tap | dlt-bridge load` with this test forwarding the pipe.

    kill="tap": SIGKILL the tap once it has written `after_bytes` bytes; what it wrote before
    dying still reaches the bridge, or, with `torn`, the stream ends exactly at byte
    `after_bytes` (mid-line, as when a writer dies inside a write). kill="bridge": SIGKILL the
    bridge `after_commits[1]` s after it printed its `after_commits[0]`-th committed STATE; the
    tap then dies of the broken pipe. Returns the bridge's exit code, its stderr and whether
    the kill hit a live process."""
    tap_log = (ws.out_dir / f"pipe-tap-{ws.runs}.log").open("wb")
    tap = subprocess.Popen(
        ws.tap_command(config, state),
        stdout=subprocess.PIPE,
        stderr=tap_log,
        stdin=subprocess.DEVNULL,
        cwd=ws.root,
        env=clean_env(),
    )
    bridge = subprocess.Popen(
        ws.bridge_args(["load", *load_args]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ws.root,
        env=clean_env(),
    )
    assert tap.stdout is not None and bridge.stdin is not None
    drains = [_Drain(bridge.stdout), _Drain(bridge.stderr)]
    for drain in drains:
        drain.start()
    reader: _TapReader | None = None
    source: Iterable[bytes] = _read_directly(tap)
    if kill == "tap":
        reader = _TapReader(tap, after_bytes, torn)
        reader.start()
        source = reader
    elif kill == "bridge":
        killer = threading.Thread(
            target=_kill_after_commits, args=(bridge, drains[0], *after_commits), daemon=True
        )
        killer.start()
    try:
        for chunk in source:
            try:
                bridge.stdin.write(chunk)
                bridge.stdin.flush()
            except BrokenPipeError:
                break
        with contextlib.suppress(BrokenPipeError):
            bridge.stdin.close()
        tap.stdout.close()  # a tap still writing now gets a broken pipe
        bridge.wait(timeout=120)
        tap.wait(timeout=60)
        for drain in drains:
            drain.join(timeout=60)
    finally:
        for proc in (tap, bridge):
            if proc.poll() is None:
                proc.kill()
        tap_log.close()
    landed = not kill
    if reader is not None:
        landed = reader.landed
    elif kill == "bridge":
        killer.join(timeout=60)
        landed = bridge.returncode == -signal.SIGKILL
    out, err = drains[0].data, drains[1].data
    ws.keep("pipe-bridge.stdout", out)
    ws.keep("pipe-bridge.stderr", err)
    printed = json_lines(out.decode())
    if printed and kill != "bridge":  # STATE is printed only after its data was committed
        assert printed[-1] == stored_state(ws.root)
    return bridge.returncode, err.decode("utf-8", "replace"), landed


def _kill_after_commits(bridge: Any, stdout: _Drain, commits: int, delay: float) -> None:
    while stdout.lines < commits and bridge.poll() is None:
        time.sleep(0.005)
    time.sleep(delay)
    if bridge.poll() is None:
        bridge.send_signal(signal.SIGKILL)


def clean_rerun_with_load(ws: Workspace, config: dict[str, Any], state: Any) -> None:
    """What an orchestrator does next: `tap --state <last STATE the target printed> | load`."""
    code, err, _ = pipe_tap_into_load(ws, config, state, [])
    assert code == 0, err[-3000:]


def last_printed_state(ws: Workspace) -> Any:
    """The last STATE line the previous `load` printed (what Meltano would have stored)."""
    outputs = sorted(ws.out_dir.glob("*pipe-bridge.stdout"))
    printed = json_lines(outputs[-1].read_text())
    return printed[-1] if printed else None


@pytest.mark.parametrize(
    ("seed", "window", "concurrency", "commit_every", "torn"),
    [(4, "early", 8, 0, False), (5, "middle", 1, 20, True), (6, "late", 8, 20, True)],
)
def test_tap_killed_during_bridge_load(
    ws: Workspace,
    fake_api_factory: Any,
    output_size: int,
    seed: int,
    window: str,
    concurrency: int,
    commit_every: int,
    torn: bool,
) -> None:
    """`tap | dlt-bridge load`: the tap is SIGKILLed after a random number of output bytes."""
    api = fake_api_factory(DATASET, token=ws.key, latency_ms=LATENCY_MS)
    config = ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=concurrency)
    code, err, landed = pipe_tap_into_load(
        ws,
        config,
        None,
        ["--commit-every", str(commit_every)],
        kill="tap",
        after_bytes=kill_point(seed, window, output_size),
        torn=torn,
    )
    assert landed, "the tap had already finished: the kill point is past the run"
    # A Singer target cannot see its producer die: at EOF it commits what came with the last
    # STATE (exit 0); when the dying tap left half a line, it rejects the input (exit 3) and
    # commits nothing of the unfinished segment (segments closed earlier stay committed).
    assert code == (3 if torn else 0), err[-3000:]
    assert pending_packages(ws.root) == []
    assert_stored_state_not_ahead(ws.root, all_dumps(api))
    assert_rerun_completes(
        ws, api, config, lambda: clean_rerun_with_load(ws, config, last_printed_state(ws))
    )


@pytest.mark.parametrize("seed", [7])
def test_bridge_killed_during_load(ws: Workspace, fake_api_factory: Any, seed: int) -> None:
    """The loader itself dies (kill -9) after a random number of commits, at a random moment
    (between commits or inside one); the tap then dies of the broken pipe. The next `load`
    finishes the package it left, and one clean rerun completes the table."""
    api = fake_api_factory(DATASET, token=ws.key, latency_ms=LATENCY_MS)
    config = ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=8)
    rng = random.Random(seed)
    code, err, landed = pipe_tap_into_load(
        ws,
        config,
        None,
        ["--commit-every", "15"],
        kill="bridge",
        after_commits=(rng.randint(1, 4), rng.uniform(0.0, 0.3)),
    )
    assert landed and code == -signal.SIGKILL, err[-3000:]
    assert_stored_state_not_ahead(ws.root, all_dumps(api))
    assert_rerun_completes(
        ws, api, config, lambda: clean_rerun_with_load(ws, config, last_printed_state(ws))
    )


def test_torn_input_after_commits_does_not_claim_nothing_was_committed(
    ws: Workspace, fake_api_factory: Any
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    full = ws.tap(ws.config_for(api, page_size=PAGE_SIZE, max_concurrency=1))
    assert full.returncode == 0, full.stderr[-3000:]
    data = full.stdout.encode()
    cut = data.index(b'{"type":"RECORD"', int(len(data) * 0.7)) + 40  # mid-line, late in the run
    res = ws.bridge(["load", "--commit-every", "20"], stdin=data[:cut])
    assert res.returncode == 3, res.stderr[-3000:]
    assert res.printed_states, "segments before the torn line were committed and printed"
    assert res.printed_states[-1] == stored_state(ws.root)
    assert "nothing of this run was committed" not in res.stderr
