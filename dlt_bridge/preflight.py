"""The checks `dlt-bridge run` makes before it opens a destination or starts the tap.

Bad configuration must exit 2 with nothing created and no request sent, so the tap's config
file is read here and, for our own tap, checked with the contract's settings table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from analytics_api.settings import TAP, numbers_from_text, setting_problems, settings_for

ENV_PREFIX = "TAP_ANALYTICS_"
"""singer-sdk's `--config ENV` reads `<TAP NAME>_<SETTING>` variables."""


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


def config_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """`--config ENV`: the tap's settings from `TAP_ANALYTICS_<SETTING>` variables, integers
    and booleans read as singer-sdk reads them (number settings stay text: `numbers_from_text`)."""
    config: dict[str, Any] = {}
    for setting in settings_for(TAP):
        text = environ.get(f"{ENV_PREFIX}{setting.name.upper()}")
        if text is None:
            continue
        value: Any = text
        if setting.kind == "integer" and text.strip().lstrip("-").isdigit():
            value = int(text)
        elif setting.kind == "boolean" and text.lower() in ("true", "false", "1", "0"):
            value = text.lower() in ("true", "1")
        config[setting.name] = value
    return config


def tap_config_problems(
    path: str, *, ours: bool, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Every problem of the tap config at `path` (`ENV`: the tap's variables); the settings are
    checked for our own tap only (another `--tap-command` has settings of its own), with the
    rules the tap applies."""
    if path == "ENV":
        if not ours:
            return []
        config = config_from_environment(os.environ if environ is None else environ)
        return setting_problems(
            numbers_from_text(config), TAP, where=lambda n: f"env {ENV_PREFIX}{n.upper()}"
        )
    config, problem = read_config(path)
    if problem:
        return [problem]
    if not ours:
        return []
    return setting_problems(numbers_from_text(config), TAP, where=lambda _: f"in {path}")
