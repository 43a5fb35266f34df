"""The checks `dlt-bridge run` makes before it opens a destination or starts the tap.

Bad configuration must exit 2 with nothing created and no request sent, so the tap's config
file is read here and, for our own tap, checked with the contract's setting rules.
"""

from __future__ import annotations

import json
from typing import Any

from analytics_api.config import (
    api_key_problem,
    base_url_problem,
    start_date_problem,
)
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
)
from analytics_api.settings import TAP, numbers_from_text, setting_problems

_NUMERIC_DEFAULTS = {
    "page_size": DEFAULT_PAGE_SIZE,
    "max_retries": DEFAULT_MAX_RETRIES,
    "backoff_factor": DEFAULT_BACKOFF_FACTOR,
    "request_timeout": DEFAULT_TIMEOUT,
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
}


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
    (another `--tap-command` has settings of its own)."""
    config, problem = read_config(path)
    if problem:
        return [problem]
    if not ours:
        return []
    problems = []
    for name, check in (("api_key", api_key_problem), ("base_url", base_url_problem)):
        value = config.get(name)
        if not isinstance(value, str):
            problems.append(f"setting '{name}': required (a string); add it to {path}.")
        elif found := check(value):
            problems.append(found)
    start_date = config.get("start_date")
    if start_date is not None:
        if not isinstance(start_date, str):
            problems.append("setting 'start_date': must be a timestamp string, e.g. 2024-01-31.")
        elif found := start_date_problem(start_date):
            problems.append(found)
    numbers = {name: config.get(name) for name in _NUMERIC_DEFAULTS}
    problems += setting_problems(numbers_from_text(numbers), TAP, require=False)  # as the tap
    return problems
