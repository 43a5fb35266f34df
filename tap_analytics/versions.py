"""FULL_TABLE streams with table versions: one ACTIVATE_VERSION per stream, after its full scan.

With `emit_activate_version_messages` on, singer-sdk sends ACTIVATE_VERSION for a FULL_TABLE
stream at the start of every `sync()` call, before the records, and a child stream's `sync()`
runs once per parent. A SQL target deletes (or marks) every row of an older version the moment
the message arrives, so a run that fails after it has already removed rows that still exist
upstream, and one message per parent means one table-wide delete per parent.

Here the records still carry the version the SDK gives them, but the message is held back. It is
sent once per stream per run, when the stream's scan is known to be complete:

* a top-level stream: when its record generator ends normally. By then every record has been
  written, and (the SDK syncs a record's children before taking the next record) so have the
  children of every parent;
* a child stream: at that same moment of its top-level ancestor, provided every per-parent scan
  it started also ended normally. Children of a parent that answered 404 (deleted after it was
  listed) are an empty, complete scan: they are simply absent from the version.

An error anywhere in a stream's scan (a child path beyond its retry budget, a bad page, a record
limit) leaves its generator unfinished, so no ACTIVATE_VERSION is ever sent for it and a target
deletes nothing. INCREMENTAL streams never send one.
"""

from __future__ import annotations

from singer_sdk.helpers.types import Context

from tap_analytics.compat import CompatStream

FULL_TABLE = "FULL_TABLE"


class VersionedStream(CompatStream):
    """A stream that holds ACTIVATE_VERSION back until its complete scan."""

    _held_version: int | None = None
    _open_scans = 0
    _version_sent = False

    @property
    def full_table(self) -> bool:
        """FULL_TABLE (set in the catalog): every record every run, no bookmark applied."""
        return self.replication_method == FULL_TABLE

    @property
    def sends_versions(self) -> bool:
        """This stream's records carry a version and its scan ends with ACTIVATE_VERSION."""
        return bool(self.selected and self.full_table and self.emit_activate_version_messages)

    def hold_activate_version(self, version: int) -> None:
        """The SDK's ACTIVATE_VERSION before the records: keep the version, send it later."""
        self._held_version = version

    def scan_started(self) -> None:
        self._open_scans += 1

    def scan_finished(self, context: Context | None) -> None:
        """One scan (one `get_records` call) ended normally; a root scan covers its children."""
        self._open_scans -= 1
        if self.parent_stream_type is None:
            for stream in (self, *self.descendent_streams):
                if isinstance(stream, VersionedStream):
                    stream.activate_if_complete()

    def activate_if_complete(self) -> None:
        """Send this run's single ACTIVATE_VERSION, unless a scan of it did not end."""
        if self._version_sent or not self.sends_versions or self._open_scans:
            return
        self._version_sent = True
        version = self._held_version
        if version is None:  # never synced (no parent left): the SDK's version for this run
            version = self.default_table_version()
        self.send_activate_version(version)
