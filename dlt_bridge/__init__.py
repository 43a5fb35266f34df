"""Load Singer messages (from tap-analytics or any Singer tap) into a dlt destination.

Importing this package switches dlt's anonymous telemetry off unless the user chose otherwise
through the environment (`RUNTIME__DLTHUB_TELEMETRY`); it must happen before dlt is imported,
which is why it is done here, before any submodule imports dlt.
"""

from __future__ import annotations

import os

TELEMETRY_ENV = "RUNTIME__DLTHUB_TELEMETRY"
os.environ.setdefault(TELEMETRY_ENV, "false")

__version__ = "0.1.0"
__all__ = ["TELEMETRY_ENV", "__version__"]
