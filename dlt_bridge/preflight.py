"""The checks `dlt-bridge run` makes before it opens a destination or starts the tap.

Bad configuration must exit 2 with nothing created and no request sent, so the tap's config
file is read here and, for our own tap, checked with the contract's settings table.
"""

from __future__ import annotations

import json
from typing import Any

from analytics_api.settings import TAP, numbers_from_text, setting_problems


def read_config(path: str) -> tuple[dict[str, Any], str | None]:
    """The config file's settings, or a problem naming the file and the fix (never a value)."""
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except OSError as exc:
        return {}, f"--config {path}: cannot read it ({exc.strerror}); check the path."
    except ValueError:
        return {}, f"--config {path}: not valid JSON; fix the file (a JSON object of settings)."
    if not isinstance(config, dict):
        return {}, f"--config {path}: needs a JSON object of tap settings."
    return config, None


def tap_config_problems(path: str, *, ours: bool) -> list[str]:
    """Every problem of the tap config at `path`; the settings are checked for our own tap only
    (another `--tap-command` has settings of its own), with the rules the tap applies."""
    config, problem = read_config(path)
    if problem:
        return [problem]
    if not ours:
        return []
    return setting_problems(numbers_from_text(config), TAP, where=lambda _: f"in {path}")
