"""One set of metrics per child stream, not one per parent record.

The SDK syncs a child stream once per parent and logs two METRIC lines each time: 4,000 lines
for 2,000 parents, shown at the default level. Child streams here count into one running total
(still logged every minute while it runs) and report once when the run ends, through the
SDK's documented override points `Stream.get_record_counter` and `Stream.get_sync_timer`
(`tests/unit/test_compat.py` checks that the SDK still uses them once per sync).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from singer_sdk import Stream, metrics


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


class ChildTotals(Stream):
    """A child stream's record counter and sync timer: one each for the whole run."""

    _total_counter: StreamTotalCounter | None = None
    _total_timer: StreamTotalTimer | None = None

    def get_record_counter(self, **kwargs: Any) -> metrics.Counter:
        if self.parent_stream_type is None:
            return super().get_record_counter(**kwargs)
        if self._total_counter is None:
            self._total_counter = StreamTotalCounter(
                metrics.Metric.RECORD_COUNT, {metrics.Tag.STREAM: self.name}
            )
        return self._total_counter

    def get_sync_timer(self) -> metrics.Timer:
        if self.parent_stream_type is None:
            return super().get_sync_timer()
        if self._total_timer is None:
            self._total_timer = StreamTotalTimer(
                metrics.Metric.SYNC_DURATION, {metrics.Tag.STREAM: self.name}
            )
        return self._total_timer

    def finish_totals(self) -> None:
        """At the end of the run: log the totals once."""
        for meter in (self._total_counter, self._total_timer):
            if meter is not None:
                meter.finish()
