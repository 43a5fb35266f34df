"""One set of metrics and log lines per child stream, not one per parent record.

The SDK syncs a child stream once per parent and logs two METRIC lines and two INFO lines each
time: 8,000 lines for 2,000 parents, a real share of run time and of little use to anyone.
Child streams here count into one running total (still logged every minute while it runs) and
report once when the run ends.
"""

from __future__ import annotations

import logging
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
        self._pop()


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


class FirstOnly(logging.Filter):
    """Let through the first INFO line that starts with each prefix; drop the repeats."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        for prefix in self._prefixes:
            if record.msg.startswith(prefix):
                if prefix in self._seen:
                    return False
                self._seen.add(prefix)
        return True
