"""The code location's own settings, read once from the variables of the process that loads it.

Everything about an environment (URL, key variable, start date, deletes, ...) lives in the
environments file (`analytics_dlt.environments`); what is here applies to all of them: when the
schedule fires, where the data goes and how often a failed run is tried again. Values are read,
never written, so the code location leaves the process environment as it found it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCHEDULE_VARIABLE = "ANALYTICS_SCHEDULE"
DESTINATION_VARIABLE = "ANALYTICS_DESTINATION"
DUCKDB_DIR_VARIABLE = "ANALYTICS_DUCKDB_DIR"
RETRIES_VARIABLE = "ANALYTICS_RETRIES"
RETRY_DELAY_VARIABLE = "ANALYTICS_RETRY_DELAY"

DEFAULT_SCHEDULE = "0 * * * *"
"""Hourly, on the hour (UTC): the API has no change feed, so each run scans every list."""
DEFAULT_DESTINATION = "duckdb"
DEFAULT_RETRIES = 2
"""Extra attempts of a run's load after a transient failure (the HTTP client already retried
each request `max_retries` times; this covers an API or destination down for minutes)."""
DEFAULT_RETRY_DELAY = 60.0
"""Seconds before the first extra attempt; doubled for each one after it."""
MAX_RETRIES = 10
MAX_RETRY_DELAY = 3600.0

DUCKDB = "duckdb"
"""The destination that gets one file per environment; every other one gets one dataset each."""


class SettingsError(ValueError):
    """A variable of the code location cannot be used; the message names it."""


@dataclass(frozen=True)
class OrchestrationSettings:
    """How every environment is scheduled, loaded and retried."""

    schedule: str = DEFAULT_SCHEDULE
    destination: str = DEFAULT_DESTINATION
    duckdb_dir: Path | None = None
    retries: int = DEFAULT_RETRIES
    retry_delay: float = DEFAULT_RETRY_DELAY

    @property
    def per_environment_file(self) -> bool:
        """DuckDB: one file per environment, each with dataset `analytics`."""
        return self.destination == DUCKDB

    def retry_wait(self, retry_number: int) -> float:
        """Seconds to wait before attempt `retry_number + 1` (0-based count of retries so far)."""
        return min(self.retry_delay * 2**retry_number, MAX_RETRY_DELAY)


def settings_from(environ: Mapping[str, str]) -> OrchestrationSettings:
    """The settings in `environ`; unset or empty variables take their defaults."""
    problems: list[str] = []
    schedule = _text(environ, SCHEDULE_VARIABLE) or DEFAULT_SCHEDULE
    destination = (_text(environ, DESTINATION_VARIABLE) or DEFAULT_DESTINATION).lower()
    directory = _text(environ, DUCKDB_DIR_VARIABLE)
    retries = _number(environ, RETRIES_VARIABLE, DEFAULT_RETRIES, 0, MAX_RETRIES, problems)
    delay = _number(
        environ, RETRY_DELAY_VARIABLE, DEFAULT_RETRY_DELAY, 0, MAX_RETRY_DELAY, problems
    )
    if directory and destination != DUCKDB:
        problems.append(
            f"{DUCKDB_DIR_VARIABLE} is set but {DESTINATION_VARIABLE} is not duckdb: the "
            "directory only applies to DuckDB files; unset one of them."
        )
    if problems:
        raise SettingsError("analytics_dagster settings:\n  " + "\n  ".join(problems))
    return OrchestrationSettings(
        schedule=schedule,
        destination=destination,
        duckdb_dir=Path(directory).expanduser() if directory else None,
        retries=int(retries),
        retry_delay=float(delay),
    )


def _text(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    problems: list[str],
) -> float:
    text = _text(environ, name)
    if not text:
        return default
    try:
        value = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number of seconds"
        problems.append(f"{name}: needs {kind} from {low:g} to {high:g}.")
        return default
    if not math.isfinite(value) or not low <= value <= high:
        problems.append(f"{name}: must be from {low:g} to {high:g}.")
    return value
