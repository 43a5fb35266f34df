"""Singer messages -> one dlt resource fanning out to one table per stream, state in the package.

Flow of one run (`SingerLoader.load`):

1. `prepare()`: finish or abort load packages left pending by a failed run, then
   `pipeline.sync_destination()`, then read the Singer state stored with the last completed load.
2. Messages are read once (msgspec) and checked; records are buffered per stream and yielded in
   lists of `batch_size` rows to tables named after the streams, with hints from
   `analytics_source.hints` (merge on the key properties, `_sdc_sequence` with `dedup_sort`).
3. Every STATE message is written to `dlt.current.source_state()["singer_state"]`, so the last one
   travels in the same load package as the records before it. dlt only returns a stored state
   whose load completed (`_dlt_loads.status = 0`), so stored state is never ahead of stored data.
4. extract -> normalize -> load; only then is the last STATE handed to `on_state_committed`
   (the CLI prints it on stdout for Meltano).

Bad input raises `BridgeInputError` inside extraction: dlt discards the unfinished package and the
local state, so nothing of that run (or segment) is committed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.extract.items import DataItemWithMeta

from analytics_api.validate import RecordValidator, SchemaViolation
from analytics_source.hints import (
    MAX_TABLE_NESTING,
    SEQUENCE_COLUMN,
    SequenceGenerator,
    destination_column_name,
    table_hints,
)
from dlt_bridge.arrow import ArrowBatcher
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

__all__ = [
    "DEFAULT_DATASET_NAME",
    "DEFAULT_PIPELINE_NAME",
    "STATE_KEY",
    "BridgeOptions",
    "LoadSummary",
    "SingerLoader",
    "create_pipeline",
    "destination_singer_state",
    "format_summary",
    "prepare",
    "source_name_for",
    "stored_singer_state",
]

log = logging.getLogger("dlt_bridge")

DEFAULT_PIPELINE_NAME = "tap_analytics"
DEFAULT_DATASET_NAME = "analytics"
DEFAULT_DESTINATION = "duckdb"
STATE_KEY = "singer_state"
"""Key of the Singer state inside the dlt source state (`state["sources"][<source>][STATE_KEY]`)."""
RESOURCE_NAME = "singer_messages"
TEST_FAIL_ENV = "DLT_BRIDGE_TEST_FAIL_AT"
"""Tests only: `normalize` or `load` makes the bridge raise right before that step."""

PendingPolicy = Literal["load", "abort"]


@dataclass
class BridgeOptions:
    pipeline_name: str = DEFAULT_PIPELINE_NAME
    destination: str | None = None
    """dlt destination name; None -> dlt config (`destination_type`) -> duckdb."""
    dataset_name: str | None = None
    """None -> dlt config (`dataset_name`) -> `analytics`."""
    pipelines_dir: str | None = None
    """dlt working directory root; None -> dlt's default (~/.dlt/pipelines)."""
    loader_file_format: str = "parquet"
    batch_size: int = 5000
    """Rows per yielded list, per table."""
    progress_interval: float = 10.0
    """Seconds between progress lines on stderr (0 disables)."""
    on_pending: PendingPolicy = "load"
    commit_every: int = 0
    """Records after which the next STATE message closes a load package (0: one per run)."""
    source_name: str | None = None
    """dlt source/schema name holding the state; defaults to the pipeline name."""
    arrow: bool = True
    """Hand dlt pyarrow tables where they give the same tables as dicts (`dlt_bridge.arrow`)."""


@dataclass
class LoadSummary:
    records: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    state_committed: bool = False
    last_state: Any = None
    destination: str = ""
    dataset_name: str = ""
    location: str = ""
    seconds: float = 0.0
    unknown_messages: int = 0


def source_name_for(options: BridgeOptions) -> str:
    return destination_column_name(options.source_name or options.pipeline_name)


EXTRACT_COMPRESSION_ENV = "SOURCES__DATA_WRITER__DISABLE_COMPRESSION"
"""Set to `true` unless the user set it: the extracted (intermediate) files are read back once by
normalize on the same machine, gzip only costs CPU there (~0.6 s per 100k records). The load
files' compression (`NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION`) is left to dlt's default."""


ARROW_DLT_COLUMNS_ENV = (
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID",
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID",
)
"""Set to `true` unless the user set them: rows handed to dlt as arrow tables (`dlt_bridge.arrow`)
get `_dlt_load_id` and `_dlt_id` like rows handed as dicts, so both give the same tables."""


DUCKDB_LOAD_WORKERS_ENV = "LOAD__WORKERS"
"""Set to `1` for DuckDB unless the user set it: one DuckDB file takes one writer at a time, so
dlt's 20 parallel load jobs buy little time (~0.3 s per 100k records) and cost memory that grows
with the data (peak RSS 290 MB at 100k and 590 MB at 1M records with 20; 230 and 290 MB with 1)."""


DUCKDB_GLOBAL_CONFIG_ENV = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"
DUCKDB_GLOBAL_CONFIG_DEFAULT = '{"memory_limit": "64MB"}'
"""Set to `{"memory_limit": "64MB"}` for a DuckDB file unless the user set `global_config` (env or
toml): DuckDB's buffer pool defaults to 80 % of RAM and, while inserting the parquet load files,
keeps pages it could evict, so the load step grew with the data (bridge peak RSS ~280 MB at 100k
and ~570 MB at 1M records). With 64 MB it evicts them (blocks are written to the file, spills go
to `<file>.tmp`): ~270 and ~305 MB, load time unchanged. 128 MB still grew to ~370 MB at 1M. Only
for parquet load files: DuckDB's `read_json` (jsonl) takes 32 MB per thread and fails with "Out of
Memory" under 64 MB; not for `:memory:` databases, which have no file to evict pages to."""

_BRIDGE_SET_ENV: dict[str, str] = {}
"""Env defaults this process set itself (not the user), so a later pipeline can take them back."""


class _ArrowHintsFilter(logging.Filter):
    """Drops dlt's warning that our json hints override the arrow tables' string columns.

    json columns travel as JSON text in arrow `string` columns (`dlt_bridge.arrow`); the hint
    making them `json` is meant to win, so the warning (one per batch) is noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(f"In resource: {RESOURCE_NAME}, when merging arrow schema"))


_ARROW_HINTS_FILTER = _ArrowHintsFilter()


def create_pipeline(options: BridgeOptions) -> dlt.Pipeline:
    """dlt pipeline from flags, then dlt's own config (toml / env), then the bridge defaults."""
    os.environ.setdefault(EXTRACT_COMPRESSION_ENV, "true")
    for name in ARROW_DLT_COLUMNS_ENV:
        os.environ.setdefault(name, "true")
    dlt_logger = logging.getLogger("dlt")
    if _ARROW_HINTS_FILTER not in dlt_logger.filters:
        dlt_logger.addFilter(_ARROW_HINTS_FILTER)
    kwargs: dict[str, Any] = {"pipeline_name": options.pipeline_name}
    if options.pipelines_dir:
        kwargs["pipelines_dir"] = options.pipelines_dir
    pipeline = dlt.pipeline(
        destination=options.destination,
        dataset_name=options.dataset_name,  # type: ignore[arg-type]
        **kwargs,
    )
    if pipeline.destination is None or pipeline.dataset_name is None:
        pipeline = dlt.pipeline(
            destination=options.destination
            or (pipeline.destination if pipeline.destination is not None else DEFAULT_DESTINATION),
            dataset_name=options.dataset_name or pipeline.dataset_name or DEFAULT_DATASET_NAME,
            **kwargs,
        )
    _check_duckdb_name(pipeline)
    destination = pipeline.destination
    if destination is not None and destination.destination_name == "duckdb":
        os.environ.setdefault(DUCKDB_LOAD_WORKERS_ENV, "1")
        if _BRIDGE_SET_ENV.get(DUCKDB_GLOBAL_CONFIG_ENV) == os.environ.get(
            DUCKDB_GLOBAL_CONFIG_ENV
        ):
            # ours from an earlier pipeline in this process (maybe parquet, maybe another file)
            os.environ.pop(DUCKDB_GLOBAL_CONFIG_ENV, None)
        if (
            options.loader_file_format == "parquet"
            and _duckdb_is_file(pipeline)
            and not _duckdb_global_config_set()
        ):
            os.environ[DUCKDB_GLOBAL_CONFIG_ENV] = DUCKDB_GLOBAL_CONFIG_DEFAULT
            _BRIDGE_SET_ENV[DUCKDB_GLOBAL_CONFIG_ENV] = DUCKDB_GLOBAL_CONFIG_DEFAULT
    if (
        options.loader_file_format == "jsonl"
        and destination is not None
        and destination.destination_name == "duckdb"
    ):
        log.warning(
            "jsonl load files on DuckDB rewrite json columns: DuckDB reads them as one STRUCT"
            " type and adds every key seen in other rows as null ({'x': 1} becomes"
            " {'x': 1, 'y': null}). Use parquet (the default) to keep objects as sent."
        )
    return pipeline


def _duckdb_is_file(pipeline: dlt.Pipeline) -> bool:
    try:
        credentials: Any = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
        database = credentials.database
    except Exception:  # credentials not resolvable yet: dlt reports it on use
        return False
    return isinstance(database, str) and database not in ("", ":memory:")


def _duckdb_global_config_set() -> bool:
    """Whether the user set DuckDB's `global_config` (env, config.toml or secrets.toml)."""
    if DUCKDB_GLOBAL_CONFIG_ENV in os.environ:
        return True
    key = "destination.duckdb.credentials.global_config"
    for accessor in (dlt.config, dlt.secrets):
        try:
            if accessor.get(key) is not None:
                return True
        except Exception:  # an unparsable value: leave it to dlt to report
            return True
    return False


def _check_duckdb_name(pipeline: dlt.Pipeline) -> None:
    destination = pipeline.destination
    if destination is None or destination.destination_name != "duckdb":
        return
    try:
        credentials: Any = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
        database = credentials.database
    except Exception:  # credentials not resolvable yet: dlt reports it on use
        return
    if not isinstance(database, str) or database == ":memory:":
        return
    stem = os.path.splitext(os.path.basename(database))[0]
    if stem == pipeline.dataset_name:
        raise ValueError(
            f"the DuckDB file {database!r} has the same name as the dataset"
            f" {pipeline.dataset_name!r}; DuckDB then fails with 'Ambiguous reference to catalog"
            " or schema'. Choose another --dataset-name or --pipeline-name (the default file is"
            " <pipeline_name>.duckdb)."
        )


def location_of(pipeline: dlt.Pipeline) -> str:
    try:
        credentials = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
    except Exception:
        return ""
    database = getattr(credentials, "database", None)
    if isinstance(database, str) and database:
        return database
    return str(getattr(credentials, "to_native_representation", lambda: "")() or "")


def prepare(pipeline: dlt.Pipeline, on_pending: PendingPolicy = "load") -> None:
    """Deal with packages left by a failed run, then sync state and schemas from the destination.

    `load` (default): finish them. A pending package holds data and the Singer state that covers
    exactly that data, so loading it is as safe as the original run would have been, and the work
    is not lost. `abort`: discard them; dlt rewinds the local state to before them, and the next
    tap run starts from the state stored with the last completed load.
    """
    if pipeline.has_pending_data:
        extracted = list(pipeline.list_extracted_load_packages())
        normalized = list(pipeline.list_normalized_load_packages())
        if on_pending == "abort":
            log.warning(
                "aborting %d pending load package(s) from an interrupted run: %s",
                len(extracted) + len(normalized),
                ", ".join(normalized + extracted),
            )
            pipeline.abort_packages()
        else:
            log.warning(
                "finishing %d pending load package(s) from an interrupted run: %s",
                len(extracted) + len(normalized),
                ", ".join(normalized + extracted),
            )
            if extracted:
                pipeline.normalize()
            pipeline.load()
    pipeline.sync_destination()


def stored_singer_state(pipeline: dlt.Pipeline, source_name: str) -> Any:
    """The Singer state saved by the last completed load (call after `prepare`)."""
    sources = pipeline.state.get("sources") or {}
    return (sources.get(source_name) or {}).get(STATE_KEY)


def destination_singer_state(pipeline: dlt.Pipeline, source_name: str) -> Any:
    """The Singer state of the last completed load, read from the destination only.

    Unlike `stored_singer_state` this touches neither pending packages nor the local working
    directory (for `dlt-bridge state`).
    """
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    try:
        state = pipeline._restore_state_from_destination()
    except DestinationUndefinedEntity:
        return None
    if not state:
        return None
    return ((state.get("sources") or {}).get(source_name) or {}).get(STATE_KEY)


def _test_hook(step: str) -> None:
    if os.environ.get(TEST_FAIL_ENV) == step:
        raise RuntimeError(f"{TEST_FAIL_ENV}={step}: injected failure before {step}")


class _Stream:
    __slots__ = (
        "arrow",
        "arrow_checked",
        "arrow_off",
        "buffer",
        "declared",
        "hints",
        "hints_dirty",
        "key_properties",
        "known_fields",
        "name",
        "records",
        "schema",
        "validator",
        "warned_fields",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema: dict[str, Any] = {}
        self.key_properties: list[str] = []
        self.validator: RecordValidator | None = None
        self.hints: dict[str, Any] = {}
        self.hints_dirty = True
        self.buffer: list[dict[str, Any]] = []
        self.records = 0
        self.warned_fields: set[str] = set()
        self.known_fields: frozenset[str] = frozenset()
        self.arrow: ArrowBatcher | None = None
        """Converts batches to arrow tables; None: dicts only (see `_arrow_allowed`)."""
        self.arrow_checked = False
        self.arrow_off = False
        self.declared: dict[str, Any] = {}
        """Column -> data type declared by this run's SCHEMA messages so far."""


class SingerLoader:
    """Loads a stream of Singer messages through a dlt pipeline. One instance per run."""

    def __init__(
        self,
        pipeline: dlt.Pipeline,
        options: BridgeOptions,
        *,
        on_state_committed: Callable[[Any], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.options = options
        self.source_name = source_name_for(options)
        self.on_state_committed = on_state_committed
        self.summary = LoadSummary(
            destination=str(pipeline.destination.destination_name if pipeline.destination else ""),
            dataset_name=str(pipeline.dataset_name or ""),
        )
        self._streams: dict[str, _Stream] = {}
        self._sequence = SequenceGenerator()
        self._exhausted = False
        self._segment_state: Any = None
        self._segment_has_state = False
        self._committed_state: Any = None
        self._has_committed_state = False
        self._started = time.monotonic()
        self._next_progress = self._started + options.progress_interval
        self._since_commit = 0

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
            if self._segment_has_state:
                self._committed_state = self._segment_state
                self._has_committed_state = True
                self.summary.state_committed = True
                self.summary.last_state = self._segment_state
                if self.on_state_committed is not None:
                    self.on_state_committed(self._segment_state)
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
                yield from loader._consume(iterator, dlt.current.source_state())

            return singer_messages

        pipeline = self.pipeline
        pipeline.extract(singer(), loader_file_format=self.options.loader_file_format)  # type: ignore[arg-type]
        received = sum(s.records for s in self._streams.values())
        log.info("extracted %s records so far; normalizing", f"{received:,}")
        _test_hook("normalize")
        pipeline.normalize()
        log.info("loading")
        _test_hook("load")
        info: LoadInfo = pipeline.load()
        self.summary.load_ids.extend(info.loads_ids)
        trace = pipeline.last_trace
        normalize_info = trace.last_normalize_info if trace is not None else None
        if normalize_info is not None:
            for table, count in normalize_info.row_counts.items():
                if table.startswith("_dlt_"):
                    continue
                self.summary.rows_by_table[table] = self.summary.rows_by_table.get(table, 0) + count

    def _consume(
        self, iterator: Iterator[tuple[int, Message]], source_state: dict[str, Any]
    ) -> Iterator[Any]:
        batch_size = self.options.batch_size
        commit_every = self.options.commit_every
        streams = self._streams
        sequence = self._sequence
        progress = self.options.progress_interval > 0
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
                    self._warn_unknown_fields(line, stream, record)
                record[SEQUENCE_COLUMN] = sequence()
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
            elif kind is ActivateVersionMessage:
                log.debug(
                    "line %d: ACTIVATE_VERSION for %r ignored (merge/append tables keep rows)",
                    line,
                    message.stream,  # type: ignore[union-attr]
                )
        self._exhausted = True
        yield from self._flush_all()

    def _on_schema(self, line: int, message: SchemaMessage) -> Iterator[Any]:
        stream = self._streams.get(message.stream)
        keys = list(message.key_properties or [])
        if stream is not None and stream.schema == message.schema and stream.key_properties == keys:
            return  # repeated SCHEMA (singer-sdk re-sends child schemas per parent): nothing to do
        if not isinstance(message.schema.get("properties", {}), dict):
            raise BridgeInputError(line, "SCHEMA 'properties' is not an object", message.stream)
        if stream is None:
            stream = self._streams[message.stream] = _Stream(message.stream)
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
        stream.hints_dirty = True
        columns = stream.hints["columns"]
        retyped = any(
            stream.declared.get(name, c.get("data_type")) != c.get("data_type")
            for name, c in columns.items()
        )
        stream.declared.update({name: c.get("data_type") for name, c in columns.items()})
        if retyped:
            stream.arrow_off = True  # a column changed type in this run: dlt makes variants
        stream.arrow = (
            ArrowBatcher(columns) if self.options.arrow and not stream.arrow_off else None
        )
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
                stream.buffer.append(record)
                stream.records += 1
                self._since_commit += 1
                if len(stream.buffer) >= batch_size:
                    yield self._flush(stream)
        except (ValueError, OSError) as exc:
            raise BridgeInputError(line, str(exc), stream.name) from None
        self._maybe_progress()

    def _warn_unknown_fields(self, line: int, stream: _Stream, record: dict[str, Any]) -> None:
        assert stream.validator is not None
        new = [
            k
            for k in record
            if k not in stream.validator.property_names and k not in stream.warned_fields
        ]
        if new:
            stream.warned_fields.update(new)
            stream.known_fields = stream.known_fields.union(new)
            log.warning(
                "line %d: stream %r: field(s) %s not in its SCHEMA; dlt infers their type",
                line,
                stream.name,
                ", ".join(repr(k) for k in new),
            )

    def _arrow_allowed(self, stream: _Stream) -> bool:
        """False when the stored table has a hinted column with another type (dlt variants)."""
        try:
            schema = self.pipeline.schemas[self.source_name]
        except Exception:  # no stored schema yet
            return True
        table = schema.tables.get(destination_column_name(stream.hints["table_name"]))
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

    def _flush(self, stream: _Stream) -> DataItemWithMeta:
        items: Any = stream.buffer
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
        if stream.hints_dirty:
            stream.hints_dirty = False
            return dlt.mark.with_hints(
                items, dlt.mark.make_hints(**stream.hints), create_table_variant=True
            )
        return dlt.mark.with_table_name(items, stream.hints["table_name"])

    def _flush_all(self) -> Iterator[Any]:
        for stream in self._streams.values():
            if stream.buffer or stream.hints_dirty:
                # an empty list with hints still creates the (empty) table of a stream
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


def format_summary(summary: LoadSummary) -> str:
    """Human-readable summary lines."""
    lines = []
    ids = ", ".join(summary.load_ids) or "none"
    where = summary.destination
    if summary.location:
        where += f" at {summary.location}"
    lines.append(f"loaded to {where}, dataset {summary.dataset_name!r}, load id(s) {ids}")
    width = max((len(t) for t in summary.rows_by_table), default=0)
    for table, rows in sorted(summary.rows_by_table.items()):
        lines.append(f"  {table:<{width}}  {rows:>10,} rows")
    rate = summary.records / summary.seconds if summary.seconds > 0 else 0.0
    lines.append(
        f"{summary.records:,} records in {summary.seconds:.1f} s ({rate:,.0f} rec/s);"
        f" state {'committed' if summary.state_committed else 'unchanged (no STATE received)'}"
    )
    return "\n".join(lines)
