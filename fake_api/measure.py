"""Measure the fake server's own throughput: ``python -m fake_api.measure``.

The server runs in its own process (:class:`FakeAPIProcess`); this process is the client:
``--clients`` keep-alive connections (each in its own process) walk ``/v1/app`` with
``limit=250`` from the first page to ``done``, again and again, for ``--seconds``. The client
does as little as possible (raw ``http.client``, the next iterator found with a byte search,
not a JSON parse), so the numbers are the server's, not the client's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import time
from typing import Any

from .api import FakeAPIProcess
from .data import DatasetConfig


def _walk(port: int, token: str, limit: int, seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {token}"}
    requests = records = nbytes = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    iterator: str | None = None
    while time.perf_counter() < deadline:
        path = f"/v1/app?limit={limit}" + (f"&iterator={iterator}" if iterator else "")
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {body[:200]!r}")
        requests += 1
        nbytes += len(body)
        # The envelope is {"data":[...],"iterator":"...","prevIterator":...,"done":...}
        tail = body[body.rfind(b'],"iterator":') :]
        records += body.count(b'{"id":')
        iterator = None if tail.endswith(b'"done":true}') else tail.split(b'"')[3].decode()
    out.put((requests, records, nbytes, time.perf_counter() - start))


def measure(
    applications: int = 20_000, clients: int = 1, seconds: float = 5.0, limit: int = 250
) -> dict[str, Any]:
    dataset = DatasetConfig(
        seed=7,
        applications=applications,
        endpoints_per_app=0,
        integrations_per_app=0,
        event_types=0,
        tokens=0,
        ingest_sources=0,
        webhook_endpoints=0,
    )
    with FakeAPIProcess(dataset, prerender=limit) as api:
        ctx = mp.get_context("spawn")
        out: Any = ctx.Queue()
        procs = [
            ctx.Process(target=_walk, args=(api.port, api.token, limit, seconds, out))
            for _ in range(clients)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 60) for _ in procs]
        for p in procs:
            p.join()
        server_stats = api.stats()
    reqs = sum(r[0] for r in results)
    recs = sum(r[1] for r in results)
    nbytes = sum(r[2] for r in results)
    elapsed = max(r[3] for r in results)
    return {
        "clients": clients,
        "limit": limit,
        "seconds": round(elapsed, 2),
        "requests": reqs,
        "requests_per_s": round(reqs / elapsed),
        "records_per_s": round(recs / elapsed),
        "mb_per_s": round(nbytes / elapsed / 1e6, 1),
        "server_counted_requests": server_stats["total"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--applications", type=int, default=20_000)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--limit", type=int, default=250)
    args = p.parse_args(argv)
    for n in args.clients:
        print(json.dumps(measure(args.applications, n, args.seconds, args.limit)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
