"""`make demo`: the whole tool against the bundled fake API, no API key needed.

Starts the fake API on a free loopback port, runs `tap-analytics` into per-stream JSONL files
and `dlt-bridge run` into DuckDB, checks both against the fake's ground truth, prints where the
output is, and stops the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from analytics_api.streams import STREAMS
from fake_api import DEMO_DATASET, FakeAPIProcess

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--applications", type=int, default=100)
    args = parser.parse_args()

    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    (out / "jsonl").mkdir(parents=True)
    dataset = dataclasses.replace(DEMO_DATASET, applications=args.applications)
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    with FakeAPIProcess(dataset=dataset, token="demo-token") as api:
        print(f"fake API      {api.url}  (token 'demo-token', {dataset.total_records} records)")
        config_path = out / "config.json"
        config_path.write_text(json.dumps(api.tap_config(), indent=2))

        started = time.perf_counter()
        singer = out / "singer.jsonl"
        with singer.open("wb") as handle:
            subprocess.run(
                [str(BIN / "tap-analytics"), "--config", str(config_path)],
                stdout=handle,
                stderr=(out / "tap.log").open("w"),
                check=True,
                env=env,
            )
        jsonl_counts = split_into_jsonl(singer, out / "jsonl")
        tap_seconds = time.perf_counter() - started

        started = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "dlt-bridge"),
                "run",
                "--config",
                str(config_path),
                "--pipelines-dir",
                str(out / ".dlt-pipelines"),
                "--progress-interval",
                "0",
            ],
            cwd=out,
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(out / "bridge.log").open("w"),
        )
        bridge_seconds = time.perf_counter() - started
        duckdb_path = out / "tap_analytics.duckdb"
        table_counts = duckdb_counts(duckdb_path)
        truth = {s.name: len(api.dump(s.name)) for s in STREAMS}

    print(f"\n{'stream':<24}{'API':>8}{'JSONL':>8}{'DuckDB':>8}")
    ok = True
    for stream in STREAMS:
        name = stream.name
        row = (truth[name], jsonl_counts.get(name, 0), table_counts.get(name, 0))
        same = row[0] == row[1] == row[2]
        ok &= same
        mark = "ok" if same else "MISMATCH"
        print(f"{stream.name:<24}{row[0]:>8}{row[1]:>8}{row[2]:>8}  {mark}")
    print(f"\ntap -> JSONL   {tap_seconds:.1f} s   {out / 'jsonl'}/<stream>.jsonl")
    print(f"tap -> DuckDB  {bridge_seconds:.1f} s   {duckdb_path} (dataset 'analytics')")
    print(f"logs           {out / 'tap.log'}, {out / 'bridge.log'}")
    query = "select app_id, count(*) as endpoints from endpoints group by 1 limit 3"
    show = f"cd {out} && {BIN / 'dlt-bridge'} show --pipelines-dir .dlt-pipelines"
    print(f"try:           {show}")
    print(f'               {show} --sql "{query}"')
    return 0 if ok else 1


def split_into_jsonl(singer: Path, folder: Path) -> dict[str, int]:
    """One JSON object per line per stream, as target-jsonl writes them."""
    counts: dict[str, int] = {}
    handles = {}
    try:
        with singer.open("rb") as lines:
            for line in lines:
                message = json.loads(line)
                if message.get("type") != "RECORD":
                    continue
                stream = message["stream"]
                if stream not in handles:
                    handles[stream] = (folder / f"{stream}.jsonl").open("w")
                handles[stream].write(json.dumps(message["record"]) + "\n")
                counts[stream] = counts.get(stream, 0) + 1
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def duckdb_counts(path: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as db:
        return {
            s.name: db.execute(f'select count(*) from analytics."{s.name}"').fetchone()[0]  # type: ignore[index]
            for s in STREAMS
        }


if __name__ == "__main__":
    sys.exit(main())
