"""The eight streams, built from `analytics_api.streams`.

Incremental sync is a client-side bookmark over a full scan (the API cannot filter or sort by
`updatedAt`): every page is read, and only records newer than the bookmark reach the SDK, so
its `record_count` metric, RECORD and BATCH messages count emitted records only. Parents are
always scanned in full: the children of a parent that did not change are still synced, so a
child that changed under an unchanged parent is found. A stream the catalog sets to FULL_TABLE
sends every record every run (`tap_analytics.versions` for its ACTIVATE_VERSION).

With `max_concurrency` > 1 the run's `FetchPool` fetches the next parents' child lists ahead,
and reads the top-level lists still to come a few pages ahead; everything is taken in the order
a sequential run reads it, so records, their order and the state are the same for every value.
"""

from __future__ import annotations

import datetime as dt
import time
import typing as t
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from singer_sdk.exceptions import AbortedSyncFailedException, AbortedSyncPausedException
from singer_sdk.helpers.types import Context
from singer_sdk.singerlib.catalog import MetadataMapping, StreamMetadata

from analytics_api.client import ApiClient
from analytics_api.errors import AnalyticsAPIError, ParentNotFoundError, RecordError
from analytics_api.records import FieldFilter, check_keys
from analytics_api.streams import STREAMS, StreamDefinition, child_path
from analytics_api.timestamps import TimestampError, canonical, canonical_from_datetime
from tap_analytics.quiet import ChildTotals
from tap_analytics.versions import VersionedStream
from tap_analytics.writer import FastSingerWriter

if t.TYPE_CHECKING:
    from tap_analytics.tap import TapAnalytics

Records = list[dict[str, Any]]
_RUN_GOES_ON = (GeneratorExit, AbortedSyncFailedException, AbortedSyncPausedException)
"""How a top-level stream may stop without ending the run (`--test`'s record limit)."""


@dataclass(slots=True)
class ChildStreamMetadata(StreamMetadata):
    """Stream metadata that also names the parent, so the catalog shows the hierarchy."""

    parent_tap_stream_id: str | None = None


class AnalyticsStream(VersionedStream, ChildTotals):
    """Base stream: pages from `ApiClient`, key checks, bookmark filtering, lean state."""

    definition: t.ClassVar[StreamDefinition]
    child_key: t.ClassVar[str] = ""
    """Name under which this stream's id is passed to its child streams (`app_id`, `src_id`)."""
    # Upstream orders by id (or name), never by updatedAt: the SDK keeps the new bookmark aside
    # and promotes it when the stream's scan is complete (docs/incremental.md).
    is_sorted = False
    # `ignore_parent_replication_key` stays False: its only effect in the SDK is to force the
    # parent to full table. Children never depend on the parent's bookmark here: every
    # parent's children are synced, changed or not (see `_new_records`).

    def __init__(self, tap: TapAnalytics) -> None:
        super().__init__(tap=tap, name=self.definition.name, schema=self.definition.schema)
        self.primary_keys = [self.definition.primary_key]
        self.replication_key = self.definition.replication_key
        if self.definition.is_child:
            # One bookmark per child stream, not one per parent: the SDK's default rewrites
            # a state that grows with the number of parents after every parent.
            self.state_partitioning_keys = []
        self._tap_analytics = tap
        self._thresholds: tuple[str | None, str | None] | None = None
        self._extracted_at: tuple[float, str] = (0.0, "")
        self._newest: str | None = None  # newest replication value passed to the SDK this run
        self._last_canonical: tuple[object, str] = (None, "")  # is_new and bookmark share it
        self._scanned = 0
        self._emitted = 0
        self._signpost: tuple[str | None] | None = None
        self._keeps_bookmark: bool | None = None  # not FULL_TABLE; read once per run

    # -- wiring -------------------------------------------------------------------------

    @property
    def client(self) -> ApiClient:
        return self._tap_analytics.client

    @property
    def metadata(self) -> MetadataMapping:
        """Standard metadata, plus `parent-tap-stream-id` on child streams."""
        mapping = super().metadata
        root = mapping.get(())
        if self.definition.parent and type(root) is StreamMetadata:
            mapping[()] = ChildStreamMetadata(
                **asdict(root), parent_tap_stream_id=self.definition.parent
            )
        return mapping

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        """Children receive the parent's primary key under their path parameter's name."""
        return {self.child_key: record[self.definition.primary_key]}

    def get_replication_key_signpost(self, context: Context | None = None) -> str | None:
        """The sync's start time: no bookmark may pass it (records changing during the scan).
        The SDK's value is the tap's start, the same for every parent: computed once."""
        if self._signpost is None:
            signpost = super().get_replication_key_signpost(context)
            value = None if signpost is None else canonical_from_datetime(t.cast("Any", signpost))
            self._signpost = (value,)
        return self._signpost[0]

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """No child context for a stream without selected children: the SDK would otherwise
        copy a context and look for children to sync for every record, finding none."""
        if not self._has_selected_children:
            return ()
        return super().generate_child_contexts(record, context)

    # -- records --------------------------------------------------------------------------

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self.scan_started()
        try:
            yield from self._new_records(context)
        except BaseException:
            # Everything emitted so far goes out before the error is logged, so the error is
            # the last thing a reader (or Meltano's one-line summary) sees.
            writer = self._tap_analytics.message_writer
            if isinstance(writer, FastSingerWriter):
                writer.flush()
            raise
        self.scan_finished(context)  # complete: a FULL_TABLE stream may send ACTIVATE_VERSION

    def _new_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """The records to emit; an unchanged parent is not emitted, its children are synced."""
        is_new, fields = self._is_new, self._field_filter
        visit = self.sync_children if self._has_selected_children else None
        scanned = emitted = 0
        try:
            for record in self._scan_records(context):
                scanned += 1
                if is_new(record):
                    emitted += 1
                    yield fields(record)
                elif visit is not None:
                    visit(record, context)
        finally:
            self._scanned += scanned
            self._emitted += emitted

    def _scan_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        definition = self.definition
        if definition.is_child:
            yield from self._child_records(context)
            return
        tap = self._tap_analytics
        try:
            yield from self._top_level_records()
        except _RUN_GOES_ON:
            tap.top_level_scan_ended(self, run_goes_on=True)
            raise
        except BaseException:
            tap.top_level_scan_ended(self, run_goes_on=False)
            raise
        tap.top_level_scan_ended(self, run_goes_on=True)

    def _top_level_records(self) -> Iterator[dict[str, Any]]:
        """The list's records; with selected children and `max_concurrency` > 1, the child
        lists of the next parents are fetched ahead on the pool and taken in parent order."""
        records = self._scan(self.definition.path)
        children = self._selected_child_fetchers()
        tap = self._tap_analytics
        if tap.max_concurrency <= 1 or not children:
            yield from records
            return
        pk = self.definition.primary_key
        prefetched = tap.prefetched

        def fetch(record: dict[str, Any]) -> dict[tuple[str, str], Records | Exception]:
            """Every selected child list of one parent (on a pool thread)."""
            parent_id = str(record[pk])
            return {(name, parent_id): _fetched(fn, parent_id) for name, fn in children.items()}

        for record, lists in tap.fetch_pool.map(fetch, records):
            prefetched.update(lists)
            yield record  # the SDK syncs its children, which take their lists, before resuming
            for key in lists:
                prefetched.pop(key, None)  # not taken: a stream map filtered the parent out

    @cached_property
    def _has_selected_children(self) -> bool:
        return any(c.selected or c.has_selected_descendents for c in self.child_streams)

    @cached_property
    def _field_filter(self) -> FieldFilter:
        """Fields outside the schema are dropped with one warning per field."""
        return FieldFilter(self.definition, self.logger)

    def list_pages(self) -> Iterator[Records]:
        """The pages of this (top-level) stream's list."""
        return self.client.iter_pages(self.name, self.definition.path, self.definition.params)

    def _scan(self, path: str, parent: tuple[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of one list path, checked for its keys (parent id added for children)."""
        definition = self.definition
        if parent is None:
            pages = self._tap_analytics.top_level_pages(self)
        else:
            pages = self.client.iter_pages(self.name, path, definition.params, child=True)
        for page in pages:
            for record in page:
                check_keys(definition, record, path)
                if parent is not None:
                    record[parent[0]] = parent[1]
                yield record

    def _child_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        key = t.cast("str", self.definition.parent_key)
        if not context or key not in context:
            raise AnalyticsAPIError(
                f"stream '{self.name}' needs a '{key}' from its parent stream "
                f"'{self.definition.parent}'; it cannot be synced on its own."
            )
        parent_id = str(context[key])
        fetched = self._tap_analytics.prefetched.pop((self.name, parent_id), None)
        if isinstance(fetched, Exception):
            raise fetched  # the fetch ahead failed: raised here, where a sequential run fails
        yield from self.fetch_children(parent_id) if fetched is None else fetched

    def fetch_children(self, parent_id: str) -> Records:
        """All records of this child stream under one parent; a 404 means the parent is gone."""
        key = t.cast("str", self.definition.parent_key)
        path = child_path(self.definition.path, **{key: parent_id})
        try:
            return list(self._scan(path, parent=(key, parent_id)))
        except ParentNotFoundError:
            self.logger.warning(
                "stream '%s': GET %s answered 404 - %s %r was deleted after it was listed; "
                "skipping its %s.",
                self.name,
                path,
                self.definition.parent,
                parent_id,
                self.name,
            )
            return []

    def _selected_child_fetchers(self) -> dict[str, t.Callable[[str], Records]]:
        return {
            child.name: child.fetch_children
            for child in self.child_streams
            if isinstance(child, AnalyticsStream)
            and (child.selected or child.has_selected_descendents)
        }

    # -- incremental filter -----------------------------------------------------------------

    def _is_new(self, record: dict[str, Any]) -> bool:
        """Newer than the bookmark (strictly) and not older than `start_date` (inclusive)."""
        if self._thresholds is None:
            self._thresholds = self._load_thresholds()
        bookmark, start = self._thresholds
        if bookmark is None and start is None:
            return True
        value = self._canonical_rk(record)
        return (bookmark is None or value > bookmark) and (start is None or value >= start)

    def _canonical_rk(self, record: dict[str, Any]) -> str:
        rk = self.definition.replication_key
        raw = record[rk]
        cached = self._last_canonical
        if cached[0] is raw:
            return cached[1]
        try:
            value = canonical(raw)
            self._last_canonical = (raw, value)
            return value
        except TimestampError as exc:
            raise RecordError(
                f"stream '{self.name}': record {record.get(self.definition.primary_key)!r} has "
                f"an unreadable '{rk}': {exc}"
            ) from None

    def _load_thresholds(self) -> tuple[str | None, str | None]:
        if self.full_table:
            return None, None  # every record, every run: a full table has no bookmark
        # Read before this run moves anything: during the run the SDK keeps new values in
        # progress markers and only promotes them when the stream finishes.
        saved = self.stream_state.get("replication_key_value")
        bookmark = canonical(saved) if isinstance(saved, str) else None
        start_date = self.config.get("start_date")
        start = canonical(start_date) if start_date else None
        return bookmark, start

    def bookmark_value(self, record: dict[str, Any]) -> str | None:
        """The canonical form, so the SDK's text max is a time max; None when not newer."""
        keeps = self._keeps_bookmark
        if keeps is None:
            keeps = self._keeps_bookmark = not self.full_table
        if not keeps:
            return None  # the SDK keeps no bookmark for a full table
        value = self._canonical_rk(record)
        if self._newest is not None and value <= self._newest:
            return None  # the SDK would keep its max; skip its bookkeeping
        self._newest = value
        return value

    # -- metrics and output -----------------------------------------------------------------

    def log_sync_costs(self) -> None:
        """Called once per stream at the end of the run: child totals, scanned vs emitted."""
        self.finish_totals()
        if self._scanned:
            skipped = self._scanned - self._emitted
            self.logger.info(
                "stream '%s': %d records read, %d emitted%s",
                self.name,
                self._scanned,
                self._emitted,
                f" ({skipped} not newer than the bookmark or start_date)" if skipped else "",
            )
        super().log_sync_costs()

    @cached_property
    def fast_writer(self) -> FastSingerWriter | None:  # type: ignore[override]
        """The writer for the fast path, or None when the SDK's per-record work is needed.

        The fast path is taken when that work would change nothing: every property selected,
        no stream map or flattening configured, and a writer that can take records directly.
        Records are parsed JSON restricted to the schema's fields, so their values are
        already JSON types; the SDK's conformance would pass them through unchanged.
        Anything else (stream maps, flattening, field deselection) takes the SDK's full path.
        """
        writer = self._tap_analytics.message_writer
        if isinstance(writer, FastSingerWriter) and self.records_pass_unchanged():
            return writer
        return None

    def time_extracted(self) -> str:
        """One timestamp per second of extraction, not one `datetime.now()` per record."""
        now = time.time()
        if now - self._extracted_at[0] >= 1:
            stamp = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).isoformat()
            self._extracted_at = (now, stamp)
        return self._extracted_at[1]


def _fetched(fetch: t.Callable[[str], Records], parent_id: str) -> Records | Exception:
    """`fetch(parent_id)`, or the error it raised (kept for the child stream to raise)."""
    try:
        return fetch(parent_id)
    except Exception as exc:
        return exc


def _stream_class(definition: StreamDefinition) -> type[AnalyticsStream]:
    class_name = "".join(part.title() for part in definition.name.split("_")) + "Stream"
    return type(
        class_name,
        (AnalyticsStream,),
        {
            "definition": definition,
            "__doc__": (
                f"`{definition.path}`: primary key `{definition.primary_key}`, "
                f"replication key `{definition.replication_key}`."
            ),
        },
    )


STREAM_TYPES: dict[str, type[AnalyticsStream]] = {d.name: _stream_class(d) for d in STREAMS}
for _definition in STREAMS:
    if _definition.parent:
        STREAM_TYPES[_definition.name].parent_stream_type = STREAM_TYPES[_definition.parent]
        STREAM_TYPES[_definition.parent].child_key = t.cast("str", _definition.parent_key)
