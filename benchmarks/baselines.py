"""Baselines, each run as its own process: `python -m benchmarks.baselines <name> ...`.

* `bare`: the bare `requests` + stdlib `json` loop that walks every page of every stream (child
  paths for every parent), sequential or with child pages on N threads. It parses each page and
  keeps only the primary keys (written to `--keys-out` at the end, so the run can be checked
  against the dump). No Singer messages, no schema, no type checks: the floor for any client.

The dlt baselines (the contract's `rest_api_source`, corrected, and the native source) live in
`benchmarks.native_source`.

The API token comes from the environment (`BENCH_API_TOKEN`), never the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

TOKEN_ENV = "BENCH_API_TOKEN"

# -- the bare loop -----------------------------------------------------------------------------


def _pages(
    session: Any, base: str, path: str, params: dict[str, str], page_size: int
) -> Iterator[list[dict[str, Any]]]:
    iterator: str | None = None
    while True:
        query: dict[str, Any] = {"limit": page_size, **params}
        if iterator is not None:
            query["iterator"] = iterator
        response = session.get(base + path, params=query, timeout=60)
        response.raise_for_status()
        page = json.loads(response.content)
        yield page["data"]
        if page["done"]:
            return
        iterator = page["iterator"]


def bare_loop(
    base_url: str, token: str, *, page_size: int = 250, threads: int = 1
) -> dict[str, list[str]]:
    """Walk every page of every stream; return each stream's primary keys in dump order.

    `threads > 1`: top-level lists are walked on the main thread and each parent's child lists
    are fetched on a pool of `threads` threads (one `requests.Session` each) as soon as the
    parent's page arrives; results are collected in parent order.
    """
    import requests

    from analytics_api.streams import STREAMS, StreamDefinition

    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    local = threading.local()

    def session() -> requests.Session:
        s: requests.Session | None = getattr(local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers.update(headers)
            local.session = s
        return s

    children_of = {
        d.name: [c for c in STREAMS if c.parent == d.name] for d in STREAMS if not d.is_child
    }

    def fetch_child(child: StreamDefinition, parent_id: str) -> list[str]:
        key = "{" + str(child.parent_key) + "}"
        path = child.path.replace(key, quote(parent_id, safe=""))
        pk = child.primary_key
        out: list[str] = []
        for page in _pages(session(), base, path, child.params, page_size):
            out.extend(r[pk] for r in page)
        return out

    keys: dict[str, list[str]] = {d.name: [] for d in STREAMS}
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    pending: list[tuple[str, Future[list[str]]]] = []
    for parent in STREAMS:
        if parent.is_child:
            continue
        parent_ids: list[str] = []
        for page in _pages(session(), base, parent.path, parent.params, page_size):
            for record in page:
                keys[parent.name].append(record[parent.primary_key])
                if children_of[parent.name]:
                    parent_ids.append(record[parent.primary_key])
            if pool is not None:
                for parent_id in parent_ids:
                    for child in children_of[parent.name]:
                        pending.append((child.name, pool.submit(fetch_child, child, parent_id)))
                parent_ids = []
        if pool is None:
            for parent_id in parent_ids:
                for child in children_of[parent.name]:
                    keys[child.name].extend(fetch_child(child, parent_id))
    for name, future in pending:
        keys[name].extend(future.result())
    if pool is not None:
        pool.shutdown()
    return keys


# -- dlt rest_api_source, plain ----------------------------------------------------------------


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bare")
    p.add_argument("--base-url", required=True)
    p.add_argument("--page-size", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keys-out", required=True)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"set {TOKEN_ENV}", file=sys.stderr)
        return 2
    keys = bare_loop(args.base_url, token, page_size=args.page_size, threads=args.threads)
    with open(args.keys_out, "w", encoding="utf-8") as fh:
        json.dump(keys, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
