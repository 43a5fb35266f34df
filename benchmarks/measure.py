"""Measuring runs: wall time and per-process peak RSS, output checks, statistics.

Every measured command runs under a small *launcher* process (`python -m benchmarks.measure`,
spec as JSON on stdin, result as JSON on stdout). Why not spawn from the benchmark process
itself: on Linux a child's `ru_maxrss` is at least the RSS high-water mark of the address space
it was forked from (the kernel carries it over at `exec`), and the benchmark process holds the
fake API's dump, hundreds of MB. The launcher is ~10 MB, so the peak RSS it reports is the
command's own. It starts the commands (optionally piped into each other), reaps each with
`os.wait4` and reports per command: exit code, peak RSS (`ru_maxrss`, which includes waited-for
descendants, e.g. the tap under `dlt-bridge run`), user and system CPU seconds; and the wall time
from the first `exec` to the last exit. The launcher's own start-up is not timed; each command's
Python start-up and imports are.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- the launcher ------------------------------------------------------------------------------


@dataclass
class Measured:
    """What the launcher saw for one run (a command or a pipeline of commands)."""

    wall: float
    returncodes: list[int]
    maxrss_kb: list[int]
    cpu_seconds: list[float]
    stderr_paths: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(code == 0 for code in self.returncodes)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.maxrss_kb, default=0) / 1024

    def stderr_tail(self, limit: int = 1500) -> str:
        parts = []
        for path in self.stderr_paths:
            try:
                text = Path(path).read_text("utf-8", errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"[{Path(path).name}] {text[-limit:]}")
        return "\n".join(parts)


def run_measured(
    commands: Sequence[Sequence[str]],
    *,
    cwd: str | os.PathLike[str],
    stdout: str | os.PathLike[str] = os.devnull,
    stdin: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
    label: str = "run",
) -> Measured:
    """Run `commands` piped into each other (one command: no pipe) under the launcher.

    stdout of the last command goes to `stdout`; each command's stderr to
    `<cwd>/<label>.<i>.stderr`. `env` entries are added to this process's environment.
    """
    cwd = str(cwd)
    stderr_paths = [os.path.join(cwd, f"{label}.{i}.stderr") for i in range(len(commands))]
    spec = {
        "commands": [list(c) for c in commands],
        "stderr": stderr_paths,
        "cwd": cwd,
        "stdin": str(stdin) if stdin is not None else None,
        "stdout": str(stdout),
        "env": dict(env or {}),
        "timeout": timeout,
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.measure"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=False,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    if done.returncode != 0:
        raise RuntimeError(f"launcher failed: {done.stderr.decode(errors='replace')[-2000:]}")
    result = json.loads(done.stdout)
    return Measured(
        wall=result["wall"],
        returncodes=result["returncodes"],
        maxrss_kb=result["maxrss_kb"],
        cpu_seconds=result["cpu_seconds"],
        stderr_paths=stderr_paths,
        timed_out=result["timed_out"],
    )


def _launch(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, **spec["env"]}
    commands: list[list[str]] = spec["commands"]
    n = len(commands)
    stdin = open(spec["stdin"], "rb") if spec["stdin"] else subprocess.DEVNULL  # noqa: SIM115
    out = open(spec["stdout"], "wb")  # noqa: SIM115
    errs = [open(p, "wb") for p in spec["stderr"]]  # noqa: SIM115
    procs: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    upstream: Any = stdin
    for i, argv in enumerate(commands):
        last = i == n - 1
        proc = subprocess.Popen(
            argv,
            stdin=upstream,
            stdout=out if last else subprocess.PIPE,
            stderr=errs[i],
            cwd=spec["cwd"],
            env=env,
        )
        if i > 0 and upstream is not None:
            upstream.close()  # only the next command holds the read end
        upstream = proc.stdout
        procs.append(proc)
    timed_out = threading.Event()

    def kill_all() -> None:
        timed_out.set()
        for p in procs:
            with contextlib.suppress(OSError):
                p.kill()

    timer = threading.Timer(float(spec["timeout"]), kill_all)
    timer.daemon = True
    timer.start()
    index = {p.pid: i for i, p in enumerate(procs)}
    codes = [0] * n
    rss = [0] * n
    cpu = [0.0] * n
    while index:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in index:
            continue
        i = index.pop(pid)
        codes[i] = os.waitstatus_to_exitcode(status)
        rss[i] = usage.ru_maxrss
        cpu[i] = usage.ru_utime + usage.ru_stime
        procs[i].returncode = codes[i]  # reaped here, not by Popen
    wall = time.perf_counter() - started
    timer.cancel()
    return {
        "wall": wall,
        "returncodes": codes,
        "maxrss_kb": rss,
        "cpu_seconds": cpu,
        "timed_out": timed_out.is_set(),
    }


# -- a quiet machine ---------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def cpu_busy(interval: float = 0.5) -> float:
    """Share of all CPUs busy over `interval` seconds (0..1); 0 where /proc/stat is missing."""
    try:
        b0, t0 = _cpu_times()
        time.sleep(interval)
        b1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def wait_for_quiet(max_wait: float, threshold: float = 0.15, interval: float = 0.5) -> float:
    """Wait (at most `max_wait` s) until the machine is idle; return the last busy share.

    Other processes on a 2-CPU machine (a test suite, another benchmark) easily double a wall
    time; runs start when less than `threshold` of the CPUs were busy for `interval` seconds.
    """
    deadline = time.monotonic() + max_wait
    busy = cpu_busy(interval)
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy(interval)
    return busy


# -- statistics --------------------------------------------------------------------------------


@dataclass
class Summary:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        data = sorted(values)
        if not data:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(data), data[0], data[-1], len(data))

    def text(self, unit: str = "s") -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.median:.2f} {unit}"
        return f"{self.median:.2f} {unit} ({self.low:.2f}-{self.high:.2f})"


# -- ground truth and output checks ------------------------------------------------------------


@dataclass
class Expected:
    """The fake API's dump: primary keys per stream in list order, optionally whole records."""

    keys: dict[str, list[str]]
    pk: dict[str, str]
    records: dict[str, list[dict[str, Any]]] | None = None

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.keys.values())

    @classmethod
    def from_api(cls, api: Any, *, keep_records: bool = True) -> Expected:
        from analytics_api.streams import STREAMS

        keys: dict[str, list[str]] = {}
        pks: dict[str, str] = {}
        records: dict[str, list[dict[str, Any]]] = {}
        for definition in STREAMS:
            rows = api.dump(definition.name)
            pks[definition.name] = definition.primary_key
            keys[definition.name] = [r[definition.primary_key] for r in rows]
            if keep_records:
                records[definition.name] = rows
        return cls(keys=keys, pk=pks, records=records if keep_records else None)


@dataclass
class Check:
    ok: bool
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.counts.values())


@dataclass
class SingerOutput:
    """RECORD messages per stream (without `time_extracted`), and the STATE messages."""

    records: dict[str, list[dict[str, Any]]]
    states: int
    last_state_bytes: int


def read_singer(path: str | os.PathLike[str], *, keep_records: bool = True) -> SingerOutput:
    import orjson

    records: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    states = 0
    last_state = b""
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b'{"type":"RECORD"') or b'"RECORD"' in line[:40]:
                msg = orjson.loads(line)
                stream = msg["stream"]
                counts[stream] = counts.get(stream, 0) + 1
                if keep_records:
                    records.setdefault(stream, []).append(msg["record"])
            elif b'"STATE"' in line[:40]:
                states += 1
                last_state = line.rstrip(b"\n")
    if not keep_records:
        records = {s: [] for s in counts}
    return SingerOutput(records=records, states=states, last_state_bytes=len(last_state))


def last_state_size(path: str | os.PathLike[str]) -> int:
    """Bytes of the last STATE message line of a Singer output file (without the newline)."""
    last = b""
    with open(path, "rb") as fh:
        for line in fh:
            if b'"STATE"' in line[:40]:
                last = line
    return len(last.rstrip(b"\n"))


def check_singer(path: str | os.PathLike[str], expected: Expected) -> Check:
    """Every stream's RECORD messages equal the dump: same count, keys, order (and records)."""
    import orjson

    problems: list[str] = []
    seen: dict[str, int] = {s: 0 for s in expected.keys}
    mismatched: set[str] = set()
    with open(path, "rb") as fh:
        for line in fh:
            if b'"RECORD"' not in line[:40]:
                continue
            msg = orjson.loads(line)
            stream = msg["stream"]
            if stream not in seen:
                problems.append(f"unexpected stream {stream!r}")
                seen[stream] = 0
                mismatched.add(stream)
            i = seen[stream]
            seen[stream] = i + 1
            if stream in mismatched:
                continue
            keys = expected.keys.get(stream, [])
            record = msg["record"]
            if i >= len(keys) or record.get(expected.pk[stream]) != keys[i]:
                mismatched.add(stream)
                problems.append(f"{stream}: record #{i} has key out of order or unexpected")
            elif expected.records is not None and record != expected.records[stream][i]:
                mismatched.add(stream)
                problems.append(f"{stream}: record #{i} differs from the dump")
    for stream, keys in expected.keys.items():
        if seen.get(stream, 0) != len(keys):
            problems.append(f"{stream}: {seen.get(stream, 0)} records, dump has {len(keys)}")
    return Check(not problems, "; ".join(problems[:5]), seen)


def check_duckdb(db_path: str | os.PathLike[str], dataset: str, expected: Expected) -> Check:
    """Each stream's table holds exactly the dump's keys, each once."""
    import duckdb

    problems: list[str] = []
    counts: dict[str, int] = {}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        for stream, keys in expected.keys.items():
            pk = expected.pk[stream]
            try:
                rows = con.execute(f'SELECT "{pk}" FROM "{dataset}"."{stream}"').fetchall()
            except duckdb.Error as exc:
                problems.append(f"{stream}: {str(exc).splitlines()[0]}")
                continue
            got = [r[0] for r in rows]
            counts[stream] = len(got)
            if len(got) != len(keys):
                problems.append(f"{stream}: {len(got)} rows, dump has {len(keys)}")
            elif set(got) != set(keys) or len(set(got)) != len(got):
                problems.append(f"{stream}: keys differ from the dump")
    finally:
        con.close()
    return Check(not problems, "; ".join(problems[:5]), counts)


def check_keys_file(path: str | os.PathLike[str], expected: Expected) -> Check:
    """A baseline's `{stream: [keys in the order fetched]}` JSON against the dump."""
    got: dict[str, list[str]] = json.loads(Path(path).read_text("utf-8"))
    problems = []
    for stream, keys in expected.keys.items():
        mine = got.get(stream, [])
        if len(mine) != len(keys):
            problems.append(f"{stream}: {len(mine)} records, dump has {len(keys)}")
        elif mine != keys:
            problems.append(f"{stream}: keys or order differ from the dump")
    return Check(not problems, "; ".join(problems[:5]), {s: len(v) for s, v in got.items()})


def same_records(a: SingerOutput, b: SingerOutput) -> Check:
    """Two tap outputs carry the same records in the same per-stream order."""
    problems = []
    for stream in sorted(set(a.records) | set(b.records)):
        ra, rb = a.records.get(stream, []), b.records.get(stream, [])
        if ra != rb:
            first = next((i for i, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y), None)
            problems.append(f"{stream}: {len(ra)} vs {len(rb)} records, first difference #{first}")
    return Check(not problems, "; ".join(problems[:5]), {s: len(v) for s, v in a.records.items()})


# -- the machine -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import platform
    from importlib import metadata

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    versions = {}
    for dist in ("singer-sdk", "dlt", "duckdb", "requests", "msgspec", "orjson", "pyarrow"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "-"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "env": {
            k: os.environ.get(k, "(unset)") for k in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")
        },
    }


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(_launch(spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
