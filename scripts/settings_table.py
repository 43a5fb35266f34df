"""Regenerate the settings and streams tables of README.md (or, with --check, verify them).

* Settings: the contract's settings table, `analytics_api.settings.SETTINGS` (name, type,
  default, bounds, which engines take it, help), the one place every entry point is built from.
  Written between `<!-- settings:start -->` and `<!-- settings:end -->`.
* Streams: `analytics_api.streams.STREAMS` (name, path, primary key, replication key, parent),
  written between `<!-- streams:start -->` and `<!-- streams:end -->`.

    python scripts/settings_table.py            # rewrite README.md in place
    python scripts/settings_table.py --check    # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETTINGS_MARKERS = ("<!-- settings:start -->", "<!-- settings:end -->")
STREAMS_MARKERS = ("<!-- streams:start -->", "<!-- streams:end -->")
ENGINE_NAMES = {"tap": "tap", "source": "dlt source"}


class StaleError(Exception):
    """README.md cannot be updated (markers missing) or does not match the generated tables."""


def settings_block() -> str:
    """One row per setting of the contract's table, then what the engines' columns mean."""
    from analytics_api.settings import SETTINGS

    out = [
        "| setting | type | default | allowed | taken by | description |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        kind = s.kind + (", secret" if s.secret else "")
        value = str(s.default).lower() if isinstance(s.default, bool) else s.default
        default = "required" if s.required else "\u2013" if value is None else f"`{value}`"
        allowed = ", ".join(f"`{o}`" for o in s.options) or s.bounds or "\u2013"
        engines = ", ".join(ENGINE_NAMES[e] for e in ENGINE_NAMES if e in s.engines)
        text = s.help.replace("|", "\\|")
        out.append(f"| `{s.name}` | {kind} | {default} | {allowed} | {engines} | {text} |")
    out += [
        "",
        "*tap*: `tap-analytics`'s config (and Meltano's tap-analytics settings), plus singer-sdk's"
        " standard settings (stream maps, flattening, batch: see `tap-analytics --about`)."
        " *dlt source*: the arguments of `analytics_source()`, the flags of `dlt-bridge native`"
        " (`--page-size`, ...; the key is never a flag) and the fields of the environments file"
        " (where `api_key_env` names the variable holding the key).",
    ]
    return "\n".join(out)


def streams_block() -> str:
    """One row per stream of `analytics_api.streams.STREAMS`."""
    from analytics_api.streams import STREAMS

    out = [
        "| stream | path | primary key | replication key | parent |",
        "|---|---|---|---|---|",
    ]
    for s in STREAMS:
        path = f"`{s.path}`"
        if s.params:
            params = "&".join(f"{k}={v}" for k, v in s.params.items())
            path += f" (with `{params}`)"
        parent = f"{s.parent} (`{s.parent_key}`)" if s.parent else "\u2013"
        out.append(f"| {s.name} | {path} | `{s.primary_key}` | `{s.replication_key}` | {parent} |")
    return "\n".join(out)


def replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise StaleError(f"README.md needs exactly one {start} ... {end} pair")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def render(readme: str) -> str:
    """README text with both generated tables in place."""
    text = replace_between(readme, SETTINGS_MARKERS, settings_block())
    return replace_between(text, STREAMS_MARKERS, streams_block())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    args = parser.parse_args(argv)

    current = args.readme.read_text(encoding="utf-8")
    try:
        wanted = render(current)
    except StaleError as exc:
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if wanted != current:
            diff = difflib.unified_diff(
                current.splitlines(), wanted.splitlines(), "README.md", "generated", lineterm=""
            )
            print(
                f"{args.readme} is stale: run `python scripts/settings_table.py` to update its"
                " settings and streams tables.\n" + "\n".join(diff),
                file=sys.stderr,
            )
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted, encoding="utf-8")
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
