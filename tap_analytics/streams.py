"""The eight streams, built from `analytics_api.streams`.

Incremental sync is a client-side bookmark over a full scan (the API cannot filter or sort by
`updatedAt`): every page is read, and records not newer than the bookmark are not emitted.
Parents are always scanned in full, so a child that changed under an unchanged parent is found.
"""

from __future__ import annotations

import datetime as dt
import time
import typing as t
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from singer_sdk import Stream, metrics
from singer_sdk.batch import Batcher
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
from singer_sdk.helpers.types import Context
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.catalog import MetadataMapping, StreamMetadata

from analytics_api.client import ApiClient
from analytics_api.errors import AnalyticsAPIError, ParentNotFoundError, RecordError
from analytics_api.records import check_keys
from analytics_api.streams import STREAMS, StreamDefinition, child_path
from analytics_api.timestamps import TimestampError, canonical, canonical_from_datetime
from tap_analytics.quiet import FirstOnly, StreamTotalCounter, StreamTotalTimer
from tap_analytics.writer import FastSingerWriter

if t.TYPE_CHECKING:
    from tap_analytics.tap import TapAnalytics


@dataclass(slots=True)
class ChildStreamMetadata(StreamMetadata):
    """Stream metadata that also names the parent, so the catalog shows the hierarchy."""

    parent_tap_stream_id: str | None = None


class AnalyticsStream(Stream):
    """Base stream: pages from `ApiClient`, key checks, bookmark filtering, lean state."""

    definition: t.ClassVar[StreamDefinition]
    child_key: t.ClassVar[str] = ""
    """Name under which this stream's id is passed to its child streams (`app_id`, `src_id`)."""
    is_sorted = False  # upstream orders by id (or name), never by updatedAt
    ignore_parent_replication_key = True  # a child can change while its parent does not

    def __init__(self, tap: TapAnalytics) -> None:
        super().__init__(tap=tap, name=self.definition.name, schema=self.definition.schema)
        self.primary_keys = [self.definition.primary_key]
        self.replication_key = self.definition.replication_key
        self._total_counter: StreamTotalCounter | None = None
        self._total_timer: StreamTotalTimer | None = None
        if self.definition.is_child:
            # One bookmark per child stream, not one per parent: the SDK's default rewrites a
            # state that grows with the number of parents after every parent (NOTES.md).
            self.state_partitioning_keys = []
            self.logger.addFilter(FirstOnly("Beginning sync of", "Starting incremental sync of"))
        self._tap_analytics = tap
        self._schema_sent = False
        self._thresholds: tuple[str | None, str | None] | None = None
        self._extracted_at: tuple[float, str] = (0.0, "")
        self._newest: str | None = None  # newest replication value passed to the SDK this run
        self._last_canonical: tuple[object, str] = (None, "")  # is_new and increment share it

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
        """The sync's start time: no bookmark may pass it (records changing during the scan)."""
        signpost = super().get_replication_key_signpost(context)
        if signpost is None:
            return None
        return canonical_from_datetime(t.cast("Any", signpost))

    # -- records --------------------------------------------------------------------------

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        try:
            yield from self._records(context)
        except BaseException:
            # Everything emitted so far goes out before the error is logged, so the error is
            # the last thing a reader (or Meltano's one-line summary) sees.
            writer = self._tap_analytics.message_writer
            if isinstance(writer, FastSingerWriter):
                writer.flush()
            raise

    def _records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        definition = self.definition
        if definition.is_child:
            yield from self._child_records(context)
            return
        records = self._scan(definition.path)
        prefetcher = self._tap_analytics.prefetcher
        fetchers = self._prefetchable_children()
        if prefetcher is None or not fetchers:
            yield from records
            return
        pk = definition.primary_key
        try:
            yield from prefetcher.iter_with_lookahead(((r[pk], r) for r in records), fetchers)
        finally:
            prefetcher.discard()

    def _scan(self, path: str, parent: tuple[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of one list path, checked for its keys (parent id added for children)."""
        definition = self.definition
        pages: Iterable[list[dict[str, Any]]]
        reader = self._tap_analytics.take_page_reader(self.name) if parent is None else None
        if reader is not None:
            pages = reader
        else:
            pages = self.client.iter_pages(
                self.name, path, definition.params, child=parent is not None
            )
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
        prefetcher = self._tap_analytics.prefetcher
        future = prefetcher.take(self.name, parent_id) if prefetcher else None
        if future is not None:
            yield from future.result()  # re-raises a worker's failure here, in order
            return
        yield from self.fetch_children(parent_id)

    def fetch_children(self, parent_id: str) -> list[dict[str, Any]]:
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

    def _prefetchable_children(self) -> dict[str, t.Callable[[str], list[dict[str, Any]]]]:
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
        # Read before this run moves anything: during the run the SDK keeps new values in
        # progress markers and only promotes them when the stream finishes.
        saved = self.stream_state.get("replication_key_value")
        bookmark = canonical(saved) if isinstance(saved, str) else None
        start_date = self.config.get("start_date")
        start = canonical(start_date) if start_date else None
        return bookmark, start

    # -- SDK hooks -------------------------------------------------------------------------

    def get_record_counter(self, **kwargs: Any) -> metrics.Counter:
        if not self.definition.is_child:
            return super().get_record_counter(**kwargs)
        if self._total_counter is None:
            self._total_counter = StreamTotalCounter(
                metrics.Metric.RECORD_COUNT, {metrics.Tag.STREAM: self.name}
            )
        return self._total_counter

    def get_sync_timer(self) -> metrics.Timer:
        if not self.definition.is_child:
            return super().get_sync_timer()
        if self._total_timer is None:
            self._total_timer = StreamTotalTimer(
                metrics.Metric.SYNC_DURATION, {metrics.Tag.STREAM: self.name}
            )
        return self._total_timer

    def log_sync_costs(self) -> None:
        """Called once per stream at the end of the run: report child-stream totals."""
        for meter in (self._total_counter, self._total_timer):
            if meter is not None:
                meter.finish()
        super().log_sync_costs()

    def _write_record_message(self, record: dict[str, Any]) -> None:
        # Parents yield every record (their children must still be visited); only new ones
        # are emitted.
        if not self._is_new(record):
            return
        writer = self._fast_writer
        if writer is not None:
            writer.write_record(
                self.name, self._project(record), self._time_extracted(), self._stream_version
            )
            self.state_manager.is_flushed = False
        else:
            super()._write_record_message(record)

    @cached_property
    def _fast_writer(self) -> FastSingerWriter | None:
        """The writer for the fast path, or None when the SDK's per-record work is needed.

        The fast path is taken when that work would change nothing.

        That is: every property selected, no stream map or flattening configured, and a
        writer that can take records directly. Records are parsed JSON, so their values are
        already JSON types; the SDK's conformance would pass them through unchanged. Anything
        else (stream maps, flattening, field deselection) takes the SDK's full path.
        """
        maps = self.stream_maps
        all_selected = all(
            self.mask.get(("properties", name), True) for name in self.schema["properties"]
        )
        writer = self._tap_analytics.message_writer
        plain = (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and all_selected
        )
        return writer if plain and isinstance(writer, FastSingerWriter) else None

    def _project(self, record: dict[str, Any]) -> dict[str, Any]:
        """Drop fields the schema does not declare (as the SDK does), cheaply."""
        if self._properties.issuperset(record):
            return record
        return {k: v for k, v in record.items() if k in self._properties}

    @cached_property
    def _properties(self) -> frozenset[str]:
        return frozenset(self.schema["properties"])

    def _time_extracted(self) -> str:
        """One timestamp per second of extraction, not one `datetime.now()` per record."""
        now = time.time()
        if now - self._extracted_at[0] >= 1:
            stamp = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).isoformat()
            self._extracted_at = (now, stamp)
        return self._extracted_at[1]

    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """Bookmark the canonical form, so the SDK's string max is a time max."""
        if not self._is_new(latest_record):
            return
        value = self._canonical_rk(latest_record)
        if self._newest is not None and value <= self._newest:
            return  # the SDK would keep its max; skip its bookkeeping
        self._newest = value
        rk = self.definition.replication_key
        super()._increment_stream_state({rk: value}, context=context)

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH messages hold the same records as RECORD messages would: new ones only."""
        batcher = Batcher(tap_name=self.tap_name, stream_name=self.name, batch_config=batch_config)
        records = (r for r in self._sync_records(context, write_messages=False) if self._is_new(r))
        for manifest in batcher.get_batches(records=records):
            yield batch_config.encoding, manifest

    def _write_schema_message(self) -> None:
        """Once per run: the SDK would resend a child's SCHEMA for every parent record."""
        if not self._schema_sent:
            self._schema_sent = True
            super()._write_schema_message()


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
