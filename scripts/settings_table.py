"""Regenerate the settings and streams tables of README.md (or, with --check, verify them).

* Settings: the table printed by `python -m tap_analytics --about --format=markdown` (the tap's own
  settings, row by row, as the tap describes them), followed by one line naming the singer-sdk's
  standard settings from the same table. Written between `<!-- settings:start -->` and
  `<!-- settings:end -->`.
* Streams: `analytics_api.streams.STREAMS` (name, path, primary key, replication key, parent),
  written between `<!-- streams:start -->` and `<!-- streams:end -->`.

    python scripts/settings_table.py            # rewrite README.md in place
    python scripts/settings_table.py --check    # exit 1 if README.md is stale

No network: `--about` needs no configuration and makes no request.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETTINGS_MARKERS = ("<!-- settings:start -->", "<!-- settings:end -->")
STREAMS_MARKERS = ("<!-- streams:start -->", "<!-- streams:end -->")
ABOUT_COMMAND = ("-m", "tap_analytics", "--about", "--format=markdown")


class StaleError(Exception):
    """README.md cannot be updated (markers missing) or does not match the generated tables."""


def about_markdown() -> str:
    """The tap's `--about --format=markdown`, run with this interpreter."""
    # The tap's own settings only: variables a caller happens to have set (TAP_ANALYTICS_*,
    # Meltano's, singer-sdk's) must not change what the README documents.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_ANALYTICS_", "MELTANO_", "SINGER_SDK_", "SDK_"))
    }
    result = subprocess.run(
        [sys.executable, *ABOUT_COMMAND],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`python {' '.join(ABOUT_COMMAND)}` exited with {result.returncode}:\n"
            f"{result.stderr.strip()}"
        )
    return result.stdout


def settings_rows(about: str) -> tuple[str, str, list[str]]:
    """Header, separator and rows of the table under `## Settings` in the about output."""
    lines = about.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Settings")
    except StopIteration:
        raise RuntimeError("no '## Settings' section in the tap's --about output") from None
    table: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line.rstrip())
        elif table:
            break
    if len(table) < 3:
        raise RuntimeError("no settings table under '## Settings' in the tap's --about output")
    return table[0], table[1], table[2:]


def _setting_name(row: str) -> str:
    return row.strip("|").split("|", 1)[0].strip()


def settings_block(about: str) -> str:
    """The tap's own settings as a table, then the SDK's standard ones as one line."""
    from tap_analytics.settings import TAP_SETTING_NAMES

    own = set(TAP_SETTING_NAMES)
    header, separator, rows = settings_rows(about)
    ours = [row for row in rows if _setting_name(row) in own]
    missing = own - {_setting_name(row) for row in ours}
    if missing:
        raise RuntimeError(f"settings missing from --about: {', '.join(sorted(missing))}")
    standard = [
        name for name in (_setting_name(row) for row in rows) if name not in own and "." not in name
    ]
    out = [header, separator, *ours]
    if standard:
        names = ", ".join(f"`{name}`" for name in standard)
        out += ["", f"Plus the singer-sdk's standard settings: {names} (see `--about`)."]
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


def render(readme: str, about: str) -> str:
    """README text with both generated tables in place."""
    text = replace_between(readme, SETTINGS_MARKERS, settings_block(about))
    return replace_between(text, STREAMS_MARKERS, streams_block())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    args = parser.parse_args(argv)

    current = args.readme.read_text(encoding="utf-8")
    try:
        wanted = render(current, about_markdown())
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
