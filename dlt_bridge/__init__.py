"""Load Singer messages (from tap-analytics or any Singer tap) into a dlt destination.

Importing this package changes nothing in the process: the bridge's dlt settings (telemetry off
unless the user turned it on, DuckDB memory limit, ...) are a config provider consulted after the
user's own settings (`analytics_dlt.defaults`), added by the CLI and by `create_pipeline`.
"""

from __future__ import annotations

from analytics_api import __version__  # the one version, from package metadata

__all__ = ["__version__"]
