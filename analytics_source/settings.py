"""Names and defaults of the native dlt source, in one place for the source, its CLI and docs.

The settings themselves (types, defaults, bounds) are the contract's table
(`analytics_api.settings`); this module only adds what belongs to the dlt side: the
source/section name, where dlt config and secrets are looked up, and the default pipeline and
dataset names.
"""

from __future__ import annotations

from analytics_api import __version__

SOURCE_NAME = "analytics"
"""dlt source and schema name; also the config section: `[sources.analytics]`."""

DEFAULT_PIPELINE_NAME = "analytics_native"
"""Default pipeline name, hence the default DuckDB file `analytics_native.duckdb`."""

DEFAULT_DATASET_NAME = "analytics"
"""Same default dataset as the Singer bridge, so both engines fill the same tables."""

BASE_URL_KEYS: tuple[str, ...] = (f"sources.{SOURCE_NAME}.base_url", "base_url")
"""dlt config keys for the API root, first match wins (env `SOURCES__ANALYTICS__BASE_URL`)."""

API_KEY_KEYS: tuple[str, ...] = (f"sources.{SOURCE_NAME}.api_key", "api_key")
"""dlt secrets keys for the API key, first match wins (env `SOURCES__ANALYTICS__API_KEY`); the
root `api_key` is the contract's `dlt.secrets["api_key"]`."""

API_KEY_ENV = "SOURCES__ANALYTICS__API_KEY"
BASE_URL_ENV = "SOURCES__ANALYTICS__BASE_URL"

API_KEY_ENV_FALLBACK = "TAP_ANALYTICS_API_KEY"
"""Read by the CLI when dlt has no key: the tap's variable, so one environment serves both."""
BASE_URL_ENV_FALLBACK = "TAP_ANALYTICS_BASE_URL"

USER_AGENT = f"analytics-source/{__version__}"
"""`User-Agent` of the source's requests (the tap sends `tap-analytics/<version>`)."""

ROWS_PER_BATCH = 2_000
"""Rows handed to dlt at once: dlt's per-item overhead makes single rows ~3x slower, and child
lists are small (a few dozen rows per parent), so they are gathered up to this size."""
