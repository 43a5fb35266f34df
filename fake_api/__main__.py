"""``python -m fake_api`` / ``fake-analytics-api``: serve the fake API until Ctrl-C or SIGTERM.

The first line printed is ``READY http://127.0.0.1:PORT`` (machine-readable); then the token.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .data import DatasetConfig
from .faults import ALL_KINDS, DEFAULT_RANDOM_KINDS, FaultConfig, FaultRule
from .server import FakeServer

_SIZES = (
    ("applications", "number of applications"),
    ("endpoints_per_app", "endpoints under each application"),
    ("integrations_per_app", "integrations under each application"),
    ("event_types", "number of event types (archived included)"),
    ("tokens", "number of API tokens"),
    ("ingest_sources", "number of ingest sources"),
    ("endpoints_per_source", "endpoints under each ingest source"),
    ("webhook_endpoints", "number of operational webhook endpoints"),
)


def _rule(text: str) -> FaultRule:
    """KIND[:TARGET[:COUNT]], e.g. ``500:/v1/app`` or ``429:*:5``."""
    kind, _, rest = text.partition(":")
    target, _, count = rest.partition(":")
    return FaultRule(kind=kind, target=target or "*", count=int(count) if count else None)


def build_parser() -> argparse.ArgumentParser:
    defaults = DatasetConfig()
    fdefaults = FaultConfig()
    p = argparse.ArgumentParser(
        prog="fake-analytics-api",
        description="A local fake of the analytics API (binds 127.0.0.1 only).",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free port)")
    p.add_argument("--token", default="test-token", help="accepted bearer token")
    p.add_argument(
        "--forbidden-token",
        default="forbidden-token",
        help="a token answered with 403 (empty string: none)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="data seed")
    for name, help_ in _SIZES:
        p.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(defaults, name), help=help_
        )
    p.add_argument("--archived-share", type=float, default=defaults.archived_share)
    p.add_argument("--dataset-json", help="a DatasetConfig as JSON (overrides the size flags)")
    p.add_argument("--latency-ms", type=float, default=0, help="added latency per API request")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests faulted")
    p.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_RANDOM_KINDS),
        help=f"comma-separated kinds for random faults; known: {','.join(ALL_KINDS)}",
    )
    p.add_argument("--fault-seed", type=int, default=fdefaults.seed)
    p.add_argument(
        "--fault-cap",
        type=int,
        default=fdefaults.max_consecutive,
        help="max consecutive random faults for one request (method+path+query)",
    )
    p.add_argument("--retry-after", default=fdefaults.retry_after, help="Retry-After seconds")
    p.add_argument("--slow-seconds", type=float, default=fdefaults.slow_seconds)
    p.add_argument(
        "--fault-rule",
        action="append",
        default=[],
        type=_rule,
        metavar="KIND[:TARGET[:COUNT]]",
        help="a deterministic fault rule (repeatable), e.g. 500:/v1/app or 429:*:5",
    )
    p.add_argument("--faults-json", help="a FaultConfig as JSON (overrides the fault flags)")
    p.add_argument("--prerender", type=int, metavar="LIMIT", help="render all pages at start")
    p.add_argument("--quiet", action="store_true", help="print only the READY line")
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (used by FakeAPIProcess: the server dies with its parent)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset_json:
        dataset = DatasetConfig.from_dict(json.loads(args.dataset_json))
    else:
        sizes = {name: getattr(args, name) for name, _ in _SIZES}
        dataset = DatasetConfig(seed=args.seed, archived_share=args.archived_share, **sizes)
    if args.faults_json:
        faults = FaultConfig.from_dict(json.loads(args.faults_json))
    else:
        faults = FaultConfig(
            rate=args.fault_rate,
            kinds=tuple(k for k in args.fault_kinds.split(",") if k),
            seed=args.fault_seed,
            max_consecutive=args.fault_cap,
            retry_after=args.retry_after,
            slow_seconds=args.slow_seconds,
            rules=tuple(args.fault_rule),
        )
    try:
        server = FakeServer(
            dataset=dataset,
            token=args.token,
            forbidden_token=args.forbidden_token or None,
            faults=faults,
            latency_ms=args.latency_ms,
            port=args.port,
        )
    except OSError as exc:  # most often: the port is taken by another fake or program
        print(
            f"fake-analytics-api: cannot listen on 127.0.0.1:{args.port} ({exc.strerror});"
            " stop what uses it or pick another --port (0: any free port).",
            file=sys.stderr,
        )
        return 2
    if args.prerender:
        server.prerender(args.prerender)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(65536):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    server.start_background()
    print(f"READY {server.url}", flush=True)
    if not args.quiet:
        print(f"token: {server.token}")
        print(f"records: {dataset.total_records} ({json.dumps(server.data.counts())})")
        print(f"control: {server.url}/_fake/stats  (Ctrl-C to stop)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
