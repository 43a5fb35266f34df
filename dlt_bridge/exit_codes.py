"""Exit codes of `dlt-bridge` (documented in docs/bridge.md)."""

from analytics_dlt.guard import EXIT_BUSY as EXIT_BUSY

EXIT_OK = 0
EXIT_LOAD_FAILED = 1
"""The load or the destination failed; nothing after the last committed state was kept."""
EXIT_USAGE = 2
"""Bad command line or configuration: nothing was opened, created or requested."""
EXIT_BAD_INPUT = 3
"""Bad Singer input: nothing of the run (or of the segment) was committed."""
EXIT_TAP_FAILED = 4
"""The tap failed under `run`: what it sent before failing was kept with the state covering it."""
# EXIT_BUSY (5): another run of the pipeline (its folder, DuckDB file or server dataset) is
# loading, this run did nothing; defined with the run guard (`analytics_dlt.guard`).
EXIT_INTERRUPTED = 130
