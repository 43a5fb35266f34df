"""Singer messages -> one dlt resource fanning out to one table per stream, state in the package.

Flow of one run (`SingerLoader.load`, after `analytics_dlt.pipeline.prepare`):

1. Messages are read once (msgspec) and checked; records are buffered per stream and yielded in
   lists of `batch_size` rows to tables named after the streams, with hints from
   `analytics_dlt.hints` (merge on the key properties, `_sdc_sequence` with `dedup_sort`).
2. Every STATE message is written to `dlt.current.source_state()[STATE_KEY]`, so the last one
   travels in the same load package as the records before it (`dlt_bridge.state`).
3. extract -> normalize -> load; only then is the last STATE handed to `on_state_committed`
   (the CLI prints it on stdout for Meltano).

Bad input raises `BridgeInputError` inside extraction: dlt discards the unfinished package and the
local state, so nothing of that run (or segment) is committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo

from analytics_api.validate import RecordValidator, SchemaViolation
from analytics_dlt.arrow import ArrowBatcher, arrow_matches_dicts
from analytics_dlt.deletions import DeleteMode, with_deleted_at
from analytics_dlt.hints import (
    MAX_TABLE_NESTING,
    SEQUENCE_COLUMN,
    SequenceGenerator,
    destination_column_name,
    table_hints,
)
from analytics_dlt.history import RunHistory
from analytics_dlt.pipeline import (
    LoadOptions,
    extracted_nothing,
    load_workers,
    location_of,
    schema_hash,
    source_name_for,
)
from dlt_bridge.deletes import DeletionTracker
from dlt_bridge.messages import (
    ActivateVersionMessage,
    BatchMessage,
    BridgeInputError,
    Message,
    RecordMessage,
    SchemaMessage,
    StateMessage,
    iter_batch_records,
)
from dlt_bridge.state import STATE_KEY
from dlt_bridge.stream_buffer import StreamBuffer
from dlt_bridge.summary import LoadSummary, format_summary, table_row_counts

__all__ = ["RESOURCE_NAME", "LoadSummary", "SingerLoader", "format_summary"]

log = logging.getLogger("dlt_bridge")

RESOURCE_NAME = "singer_messages"


class SingerLoader:
    """Loads a stream of Singer messages through a dlt pipeline. One instance per run."""

    def __init__(
        self,
        pipeline: dlt.Pipeline,
        options: LoadOptions,
        *,
        on_state_committed: Callable[[Any], None] | None = None,
        deletes: DeleteMode = "off",
        on_input_end: Callable[[], None] | None = None,
        history: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.options = options
        self.source_name = source_name_for(options)
        self.on_state_committed = on_state_committed
        self.summary = LoadSummary(
            destination=str(pipeline.destination.destination_name if pipeline.destination else ""),
            dataset_name=str(pipeline.dataset_name or ""),
        )
        self._streams: dict[str, StreamBuffer] = {}
        self._sequence = SequenceGenerator()
        self._exhausted = False
        self._warned_activate = False
        self._segment_state: Any = None
        self._segment_has_state = False
        self._committed_state: Any = None
        self._has_committed_state = False
        self._started = time.monotonic()
        self._next_progress = self._started + options.progress_interval
        self._since_commit = 0
        self._arrow = options.arrow and arrow_matches_dicts(pipeline)
        self.deletes = (  # ACTIVATE_VERSION applied at the end of the input (dlt_bridge.deletes)
            DeletionTracker(pipeline, deletes, self._sequence, on_input_end=on_input_end)
            if deletes != "off"
            else None
        )
        every = deletes != "off"  # deletion mode: the input has every record
        run_history = RunHistory(pipeline, self._sequence, log, every_record=every)
        self.history = run_history if history else None

    # -- public ---------------------------------------------------------------------------------

    def load(self, messages: Iterable[tuple[int, Message]]) -> LoadSummary:
        """Consume all messages; one load package per segment (per run unless `commit_every`)."""
        iterator = iter(messages)
        self._started = time.monotonic()
        while not self._exhausted:
            self._segment_state = None
            self._segment_has_state = False
            for stream in self._streams.values():
                stream.hints_dirty = True  # a new source object needs the hints again
            self._run_segment(iterator)
            self._commit_segment()
        return self._finish()

    def _commit_segment(self) -> None:
        if self._segment_has_state:
            self._committed_state = self._segment_state
            self._has_committed_state = True
            self.summary.state_committed = True
            self.summary.last_state = self._segment_state
            if self.on_state_committed is not None:
                self.on_state_committed(self._segment_state)

    def _finish(self) -> LoadSummary:
        self.summary.records = sum(s.records for s in self._streams.values())
        self.summary.seconds = time.monotonic() - self._started
        self.summary.location = location_of(self.pipeline)
        return self.summary

    # -- one load package -----------------------------------------------------------------------

    def _run_segment(self, iterator: Iterator[tuple[int, Message]]) -> None:
        loader = self

        @dlt.source(name=self.source_name, max_table_nesting=MAX_TABLE_NESTING)
        def singer() -> Any:
            @dlt.resource(name=RESOURCE_NAME)
            def singer_messages() -> Iterator[Any]:
                items = loader._consume(iterator, dlt.current.source_state())
                yield from items if loader.history is None else loader.history.drain(items)

            return singer_messages

        pipeline = self.pipeline
        schema_before = schema_hash(pipeline, self.source_name)
        pipeline.extract(singer(), loader_file_format=self.options.loader_file_format)  # type: ignore[arg-type]
        received = sum(s.records for s in self._streams.values())
        if extracted_nothing(pipeline, self.source_name, schema_before):
            # no rows, no schema change and the stored state: normalize and load have no work
            pipeline.abort_packages()
            log.debug("nothing new: no rows, the same schemas and state; nothing to load")
            return
        log.debug("extracted %s records so far; normalizing", f"{received:,}")
        pipeline.normalize()
        trace = pipeline.last_trace
        normalize_info = trace.last_normalize_info if trace is not None else None
        written = {
            table: count
            for table, count in (normalize_info.row_counts if normalize_info else {}).items()
            if not table.startswith("_dlt_")
        }
        before = table_row_counts(pipeline, written)
        log.debug("loading the package into the destination")
        info: LoadInfo = pipeline.load(**load_workers(pipeline))
        self.summary.load_ids.extend(info.loads_ids)
        after = table_row_counts(pipeline, written)
        deleted = self.deletes.deleted if self.deletes is not None else {}
        removed = self.deletes is not None and self.deletes.mode == "hard"
        for table, rows in written.items():
            grown = after[table] - before[table]
            self.summary.add(table, rows, grown, deleted.get(table, 0), removed=removed)

    def _consume(
        self, iterator: Iterator[tuple[int, Message]], source_state: dict[str, Any]
    ) -> Iterator[Any]:
        batch_size = self.options.batch_size
        commit_every = self.options.commit_every
        streams = self._streams
        sequence = self._sequence
        progress = self.options.progress_interval > 0
        deletes = self.deletes
        for line, message in iterator:
            kind = type(message)
            if kind is RecordMessage:
                stream = streams.get(message.stream)  # type: ignore[union-attr]
                if stream is None or stream.validator is None:
                    raise BridgeInputError(
                        line,
                        "RECORD before the stream's SCHEMA",
                        message.stream,  # type: ignore[union-attr]
                    )
                record = message.record  # type: ignore[union-attr]
                try:
                    stream.validator.validate(record)
                except SchemaViolation as exc:
                    raise BridgeInputError(line, exc.reason, stream.name) from None
                if not record.keys() <= stream.known_fields:
                    stream.warn_unknown_fields(line, record)
                record[SEQUENCE_COLUMN] = sequence()
                if deletes is not None:
                    deletes.on_record(stream.name, stream.key_properties, record, message.version)  # type: ignore[union-attr]
                buffer = stream.buffer
                buffer.append(record)
                stream.records += 1
                self._since_commit += 1
                if len(buffer) >= batch_size:
                    yield self._flush(stream)
                if progress and not stream.records & 4095:
                    self._maybe_progress()
            elif kind is StateMessage:
                value = message.value  # type: ignore[union-attr]
                source_state[STATE_KEY] = value
                self._segment_state = value
                self._segment_has_state = True
                if commit_every and self._since_commit >= commit_every:
                    self._since_commit = 0
                    yield from self._flush_all()
                    return
            elif kind is SchemaMessage:
                yield from self._on_schema(line, message)  # type: ignore[arg-type]
            elif kind is BatchMessage:
                yield from self._on_batch(line, message)  # type: ignore[arg-type]
            elif kind is ActivateVersionMessage and deletes is not None:
                stream = streams.get(message.stream)  # type: ignore[union-attr]
                has_schema = stream is not None and stream.validator is not None
                deletes.on_activate(line, message, has_schema, source_state)  # type: ignore[arg-type]
            elif kind is ActivateVersionMessage and not self._warned_activate:
                self._warned_activate = True
                log.warning(
                    "line %d: ACTIVATE_VERSION received but deletions are off: rows deleted"
                    " upstream stay in the tables. Use --deletes soft|hard (target-dlt: the"
                    " `deletes` setting) to apply it.",
                    line,
                )
        self._exhausted = True
        yield from self._flush_all()
        if deletes is not None:
            yield from deletes.finish(streams, source_state)
        if self.history is not None:  # after the deletions: they close versions
            gone = deletes.gone if deletes is not None else {}
            yield from self.history.finish(gone, deletes.deleted_at if deletes else None)

    def _on_schema(self, line: int, message: SchemaMessage) -> Iterator[Any]:
        stream = self._streams.get(message.stream)
        keys = list(message.key_properties or [])
        if stream is not None and stream.schema == message.schema and stream.key_properties == keys:
            return  # repeated SCHEMA (singer-sdk re-sends child schemas per parent): nothing to do
        if not isinstance(message.schema.get("properties", {}), dict):
            raise BridgeInputError(line, "SCHEMA 'properties' is not an object", message.stream)
        if stream is None:
            stream = self._streams[message.stream] = StreamBuffer(message.stream)
        elif stream.buffer:
            yield self._flush(stream)  # rows received under the previous schema go first
        if stream.validator is not None:
            log.info("line %d: stream %r: SCHEMA changed, table evolves", line, message.stream)
        for key in keys:
            if key not in message.schema.get("properties", {}):
                log.warning(
                    "line %d: stream %r: key property %r is not among the schema's properties",
                    line,
                    message.stream,
                    key,
                )
        stream.schema = message.schema
        stream.key_properties = keys
        stream.validator = RecordValidator(message.schema, keys)
        stream.known_fields = stream.validator.property_names.union(
            stream.warned_fields, (SEQUENCE_COLUMN,)
        )
        stream.hints = table_hints(message.stream, message.schema, keys)
        if self.deletes is not None:
            self.deletes.on_schema(line, message.stream, keys)
            stream.hints = with_deleted_at(stream.hints, self.deletes.mode)
        if self.history is not None:
            bookmarks = message.bookmark_properties
            if problem := self.history.on_schema(stream.name, keys, bookmarks, stream.hints):
                raise BridgeInputError(line, problem, stream.name)
        stream.hints_dirty = True
        columns = stream.hints["columns"]
        retyped = any(
            stream.declared.get(name, c.get("data_type")) != c.get("data_type")
            for name, c in columns.items()
        )
        stream.declared.update({name: c.get("data_type") for name, c in columns.items()})
        if retyped:
            stream.arrow_off = True  # a column changed type in this run: dlt makes variants
        stream.arrow = ArrowBatcher(columns) if self._arrow and not stream.arrow_off else None
        stream.arrow_checked = False

    def _on_batch(self, line: int, message: BatchMessage) -> Iterator[Any]:
        stream = self._streams.get(message.stream)
        if stream is None or stream.validator is None:
            raise BridgeInputError(line, "BATCH before the stream's SCHEMA", message.stream)
        validator = stream.validator
        batch_size = self.options.batch_size
        try:
            for file, file_line, record in iter_batch_records(message):
                try:
                    validator.validate(record)
                except SchemaViolation as exc:
                    raise BridgeInputError(
                        line, f"BATCH file {file!r} line {file_line}: {exc.reason}", stream.name
                    ) from None
                record[SEQUENCE_COLUMN] = self._sequence()
                if self.deletes is not None:
                    self.deletes.on_record(stream.name, stream.key_properties, record, None)
                stream.buffer.append(record)
                stream.records += 1
                self._since_commit += 1
                if len(stream.buffer) >= batch_size:
                    yield self._flush(stream)
        except (ValueError, OSError) as exc:
            raise BridgeInputError(line, str(exc), stream.name) from None
        self._maybe_progress()

    def _stored_table(self, stream: StreamBuffer) -> Any:
        """The stream's table in the pipeline's stored schema, or None."""
        schema = self.pipeline.schemas.get(self.source_name)
        if schema is None:
            return None
        return schema.tables.get(destination_column_name(stream.hints["table_name"]))

    def _arrow_allowed(self, stream: StreamBuffer) -> bool:
        """False when the stored table has a hinted column with another type (dlt variants)."""
        table = self._stored_table(stream)
        if not table:
            return True
        stored = table.get("columns") or {}
        for name, column in stream.hints["columns"].items():
            existing = stored.get(destination_column_name(name))
            if existing is not None and existing.get("data_type") not in (
                None,
                column.get("data_type"),
            ):
                return False
        return True

    def _flush(self, stream: StreamBuffer) -> Any:
        """The stream's buffered rows as one item for dlt (a list of dicts or an arrow table).

        json columns travel in arrow tables as JSON text in `string` columns; the hints make
        them `json`, and dlt logs a warning per arrow table that its hints override the arrow
        types (they do: the tables get JSON columns, as from dicts).
        """
        items: Any = stream.buffer
        records = items
        stream.buffer = []
        if stream.arrow is not None and items:
            if not stream.arrow_checked:
                stream.arrow_checked = True
                if not self._arrow_allowed(stream):
                    stream.arrow = None
            if stream.arrow is not None:
                table = stream.arrow.to_arrow(items)
                if table is not None:
                    items = table
        if self.history is not None:  # its rows follow this item (`drain`)
            self.history.on_batch(stream.name, records, None if items is records else items)
        if stream.hints_dirty:
            stream.hints_dirty = False
            return dlt.mark.with_hints(
                items, dlt.mark.make_hints(**stream.hints), create_table_variant=True
            )
        return dlt.mark.with_table_name(items, stream.hints["table_name"])

    def _flush_all(self) -> Iterator[Any]:
        for stream in self._streams.values():
            if stream.buffer or (stream.hints_dirty and not self._stored_table(stream)):
                # an empty list with hints creates the (empty) table of a new stream; for a
                # stored table it is not sent: dlt would record a changed schema (a new column)
                # without altering the table (no rows, no job), and fail on the next rows
                yield self._flush(stream)
        self._maybe_progress()

    def _maybe_progress(self) -> None:
        if self.options.progress_interval <= 0:
            return
        now = time.monotonic()
        if now < self._next_progress:
            return
        self._next_progress = now + self.options.progress_interval
        total = sum(s.records for s in self._streams.values())
        elapsed = max(now - self._started, 1e-9)
        per_stream = " ".join(f"{s.name}={s.records:,}" for s in self._streams.values())
        log.info(
            "received %s records (%s rec/s) %s", f"{total:,}", f"{total / elapsed:,.0f}", per_stream
        )
