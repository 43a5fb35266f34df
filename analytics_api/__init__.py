"""The analytics API's contract, shared by every engine of this project.

The stream table and JSON schemas (`streams`), timestamps (`timestamps`), the cursor rule
(`paging`), the retry policy (`retry`), limits (`limits`), the settings table (`settings`) and its
checks (`config`), errors (`errors`), key redaction (`redact`), record rules (`records`) and the
HTTP client that applies them (`client`). Import each name from the module that defines it. It
imports neither singer-sdk nor dlt, and nothing here imports the engines: the Singer tap
(`tap_analytics`) and the dlt source (`analytics_source`) import it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-analytics")
    """The project's one version, from its package metadata (pyproject.toml's `version`)."""
except PackageNotFoundError:  # a checkout on sys.path that was never installed
    __version__ = "0+unknown"
