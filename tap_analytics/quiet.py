"""One set of metrics and log lines per child stream, not one per parent record.

The SDK syncs a child stream once per parent and logs two METRIC lines and two INFO lines each
time: 8,000 lines for 2,000 parents, a real share of run time and of little use to anyone.
Child streams here count into one running total (still logged every minute while it runs) and
report once when the run ends. Of the two INFO lines, "Beginning sync of" is logged once per
child stream (`AnalyticsStream.log`); "Starting incremental sync of" comes from the SDK's state
manager once per parent: there is no public hook for it, and no logger is filtered.
"""

from __future__ import annotations

from types import TracebackType

from singer_sdk import metrics


class StreamTotalCounter(metrics.Counter):
    """A record counter shared by every per-parent sync of one child stream."""

    def __enter__(self) -> StreamTotalCounter:
        return self  # keep counting across parents; no reset, no log

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Leaving one parent's sync: keep the running total (the SDK would log and reset)."""

    def with_context(self, value: object) -> None:
        """Parent ids are not tags here: the total covers all parents."""

    def finish(self) -> None:
        """Log the run's total once (the SDK's own exit: log and reset)."""
        super().exit()


class StreamTotalTimer(metrics.Timer):
    """A sync timer from the first parent's sync to the end of the run."""

    started = False

    def __enter__(self) -> StreamTotalTimer:
        if not self.started:
            self.started = True
            super().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.tags[metrics.Tag.STATUS] = metrics.Status.FAILED

    def with_context(self, value: object) -> None:
        """Parent ids are not tags here."""

    def finish(self) -> None:
        if self.started:
            super().__exit__(None, None, None)
