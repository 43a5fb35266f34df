"""`python -m tap_analytics` and the `tap-analytics` script: singer-sdk's command line, quiet
by default and short on failure.

* Level: singer-sdk's switches, `TAP_ANALYTICS_LOGLEVEL` or `LOGLEVEL` (default INFO). When
  neither is set, the tap's own INFO lines (start-up, one per stream and parent) stay out of
  stderr; METRIC lines (Singer's convention), warnings and errors show.
* Failure: one ERROR line naming the cause and what to do (after the SDK's line naming the
  stream, for a sync), exit code 1. The traceback only at the DEBUG level.
"""

from __future__ import annotations

import logging
import os

from analytics_api.errors import AnalyticsAPIError
from tap_analytics.compat import ConfigFileError
from tap_analytics.tap import TapAnalytics

LEVEL_VARIABLES = (f"{TapAnalytics.name.upper().replace('-', '_')}_LOGLEVEL", "LOGLEVEL")
"""singer-sdk's level switches for this tap, the first one set wins."""


def main() -> None:
    """Run the tap's command line."""
    level = next((os.environ[v] for v in LEVEL_VARIABLES if os.environ.get(v)), "").upper()
    logger = logging.getLogger(TapAnalytics.name)
    if not level:
        logger.setLevel(logging.WARNING)
    try:
        TapAnalytics.cli()
    except Exception as exc:
        if level == "DEBUG":
            raise  # singer-sdk logs it with its traceback
        logger.error("%s", failure_message(exc))
        raise SystemExit(1) from None


def failure_message(exc: Exception) -> str:
    """The cause and the fix: the tap's own errors say both; anything else is named."""
    if isinstance(exc, AnalyticsAPIError | ConfigFileError):
        return str(exc)
    hint = f"{LEVEL_VARIABLES[0]}=DEBUG shows where it happened"
    return f"{type(exc).__name__}: {exc} ({hint})"


if __name__ == "__main__":
    main()
