"""`target-dlt`: Meltano's loader entry point for the project's dlt bridge.

Meltano starts a loader as ``<executable> --config <file.json>`` and nothing else; ``dlt-bridge``
wants the ``load`` subcommand and flags. This shim reads Meltano's config file, turns each
setting into the matching ``dlt-bridge load`` flag (the DuckDB file goes through dlt's own
``DESTINATION__DUCKDB__CREDENTIALS``) and runs the bridge in this process, so stdin (Singer
messages), stdout (STATE, printed only after the load has committed) and the exit code are the
bridge's own. Any other argument (``--help``, ``--input FILE``) is passed through.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

FLAGS = {  # Meltano setting -> `dlt-bridge load` flag
    "destination": "--destination",
    "dataset_name": "--dataset-name",
    "pipeline_name": "--pipeline-name",
    "pipelines_dir": "--pipelines-dir",
    "loader_file_format": "--loader-file-format",
    "batch_size": "--batch-size",
    "commit_every": "--commit-every",
    "on_pending": "--on-pending",
    "wait_if_busy": "--wait-if-busy",
    "deletes": "--deletes",
    "history": "--history",
    "progress_interval": "--progress-interval",
    "log_level": "--log-level",
}
SWITCHES = ("history",)
"""Boolean settings: `true` passes the flag alone."""
PATHS = ("pipelines_dir", "duckdb_path")
"""Settings holding paths: relative ones are taken from the project root (Meltano's cwd)."""
DUCKDB_ENV = "DESTINATION__DUCKDB__CREDENTIALS"


def bridge_argv(config: dict[str, object], extra: Sequence[str] = ()) -> list[str]:
    """The `dlt-bridge` argv for a Meltano config (unset and empty settings are left out)."""
    argv = ["load"]
    for key, flag in FLAGS.items():
        value = config.get(key)
        if value is None or value == "":
            continue
        if key in PATHS:
            value = os.path.abspath(str(value))
        if key in SWITCHES:  # a boolean: the flag alone, or nothing
            argv += [flag] if value is True or str(value).lower() == "true" else []
            continue
        argv += [flag, str(value)]
    return argv + list(extra)


def split_config(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the `--config` file or None, the other arguments)."""
    rest = list(args)
    path = None
    for i, arg in enumerate(rest):
        if arg == "--config" and i + 1 < len(rest):
            path = rest[i + 1]
            del rest[i : i + 2]
            break
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
            del rest[i]
            break
    return path, rest


def main(argv: Sequence[str] | None = None) -> int:
    path, rest = split_config(sys.argv[1:] if argv is None else argv)
    config: dict[str, object] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    duckdb_path = config.get("duckdb_path")
    if duckdb_path:
        database = os.path.abspath(str(duckdb_path))
        os.makedirs(os.path.dirname(database), exist_ok=True)
        os.environ[DUCKDB_ENV] = database

    # after the environment is set; the bridge keeps dlt's telemetry off unless the user
    # turned it on
    from dlt_bridge.cli import main as bridge_main

    return bridge_main(bridge_argv(config, rest))


if __name__ == "__main__":
    raise SystemExit(main())
