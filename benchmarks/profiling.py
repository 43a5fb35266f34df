"""Where the tap's time goes: cProfile of one tap run, grouped into a few buckets.

    python -m benchmarks.profiling [--max-concurrency 1] [--quick] [--top 15]

Starts the fake API (own process, 100,000 records, no latency), runs
`python -m cProfile -m tap_analytics` with stdout to a file, and sums each function's own time
(`tottime`, wall clock) into buckets by module. cProfile only sees the main thread: with
`max_concurrency > 1` the time the main thread spends waiting for the pool's threads shows up
as "waiting on other threads". Its per-call overhead inflates Python-heavy buckets relative to C
calls; read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("start-up: imports", ("<frozen importlib", "importlib/", "<module>")),
    ("HTTP: socket I/O (waiting for the server)", ("recv_into", "sendall", "socket.py")),
    (
        "HTTP: requests/urllib3/http.client",
        ("requests/", "urllib3/", "http/client.py", "email/", "urllib/parse.py", "idna"),
    ),
    ("page JSON decode (msgspec)", ("msgspec.json.Decoder", "'decode' of", "_decode_page")),
    ("output: encode + write", ("encode_into", "_io.BufferedWriter", "writer.py", "encode")),
    ("waiting on other threads", ("acquire' of '_thread", "threading.py", "queue.py")),
    ("singer_sdk: stream/state/metrics machinery", ("singer_sdk/",)),
    ("tap_analytics: streams, client, checks", ("tap_analytics/",)),
    ("jsonschema / typing / config", ("jsonschema/", "referencing/", "typing.py")),
]


def bucket_of(key: tuple[str, int, str]) -> str:
    filename, _line, func = key
    text = f"{filename} {func}"
    for name, needles in BUCKETS:
        if any(n in text for n in needles):
            return name
    if filename == "~":
        return "other C built-ins"
    return "other Python (stdlib, logging, ...)"


def summarize(profile_path: str | Path, top: int = 12) -> dict[str, Any]:
    stats = pstats.Stats(str(profile_path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    buckets: dict[str, float] = {}
    for key, value in raw.items():
        name = bucket_of(key)
        buckets[name] = buckets.get(name, 0.0) + value[2]
    functions = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "total_seconds": total,
        "buckets": sorted(buckets.items(), key=lambda kv: kv[1], reverse=True),
        "top_functions": [(f"{Path(k[0]).name}:{k[1]}({k[2]})", v[2], v[1]) for k, v in functions],
    }


def format_summary(summary: dict[str, Any], title: str) -> str:
    total = summary["total_seconds"]
    lines = [f"{title}: {total:.2f} s profiled (main thread, cProfile wall clock)"]
    for name, seconds in summary["buckets"]:
        lines.append(f"  {seconds / total:6.1%}  {seconds:6.2f} s  {name}")
    lines.append("  top functions by own time:")
    for name, seconds, calls in summary["top_functions"]:
        lines.append(f"  {seconds / total:6.1%}  {seconds:6.2f} s  {calls:>9,} calls  {name}")
    return "\n".join(lines)


def profile_tap(api: Any, workdir: Path, max_concurrency: int) -> dict[str, Any]:
    from benchmarks.measure import run_measured

    config = workdir / "tap_config.json"
    config.write_text(json.dumps(api.tap_config(max_concurrency=max_concurrency)))
    prof = workdir / "tap.prof"
    api.reset_stats()
    measured = run_measured(
        [
            [
                *(sys.executable, "-m", "cProfile", "-o", str(prof)),
                *("-m", "tap_analytics", "--config", str(config)),
            ]
        ],
        cwd=workdir,
        stdout=workdir / "tap.jsonl",
        label="profile",
    )
    if not measured.ok:
        raise RuntimeError(measured.stderr_tail())
    summary = summarize(prof)
    summary["wall"] = measured.wall
    summary["requests"] = api.stats()["total"]
    return summary


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import DATASET_100K, QUICK_DATASET
    from fake_api import FakeAPIProcess

    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("--max-concurrency", default="1,8")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    dataset = QUICK_DATASET if args.quick else DATASET_100K
    results = {}
    with (
        FakeAPIProcess(dataset=dataset, prerender=250) as api,
        tempfile.TemporaryDirectory(prefix="tap-profile-") as tmp,
    ):
        for mc in (int(x) for x in args.max_concurrency.split(",")):
            workdir = Path(tmp) / f"mc{mc}"
            workdir.mkdir()
            summary = profile_tap(api, workdir, mc)
            results[mc] = summary
            title = (
                f"tap, {dataset.total_records:,} records, max_concurrency={mc}, "
                f"{summary['wall']:.2f} s wall under cProfile"
            )
            print(format_summary(summary, title))
            print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
