"""Resources and their generators: the analytics API's lists, as dlt resources.

Every request goes through one `analytics_api.client.ApiClient` per source run, so the contract's
rules (cursor paging, retries and `Retry-After`, no redirects, key redaction, the 250 limit) are
the same as the Singer tap's. Each stream becomes a plain `dlt.resource`:

* top-level lists (`applications`, `event_types`, ...) read their pages in order;
* child lists (`endpoints` under `/v1/app/{app_id}/...`) scan their parent's list themselves and
  fetch each parent's children. The scan is unfiltered, so children of parents that did not
  change are still visited (an endpoint can change while its application does not), and the
  child's incremental is a plain resource's, bound once per run: a `dlt.transformer` would see
  only the parents that passed the parent's incremental, and bind its own once per parent page;
* records are checked (keys, JSON schema), trimmed to the schema, numbered (`_sdc_sequence`)
  and handed to dlt in lists of a few thousand rows; after dlt's incremental filter a step
  (`after_filter`) turns each list into an arrow table where it loads the same
  (`arrow_batcher`: parquet load files, dlt adding its own columns, as `dlt-bridge native` has
  it), which spares dlt's row-by-row normalize, and adds the history rows;
* `dlt.sources.incremental` on the replication key, compared as instants (`latest_timestamp`):
  the API cannot filter by it, so every run reads everything and dlt keeps what is new. After a
  complete scan the bookmark is capped at the run's start, as the tap's is, so a record that
  changed while the scan ran is read again next run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import dlt
from dlt.sources import DltResource

from analytics_api.concurrency import ordered_map
from analytics_api.errors import ParentNotFoundError, RecordError
from analytics_api.records import FieldFilter, check_keys
from analytics_api.streams import STREAMS, STREAMS_BY_NAME, StreamDefinition, child_path
from analytics_api.timestamps import canonical_from_datetime, latest_timestamp
from analytics_api.validate import RecordValidator, SchemaViolation
from analytics_dlt.arrow import ArrowBatcher, arrow_matches_dicts
from analytics_dlt.compat import add_step_after_incremental, cap_bookmark
from analytics_dlt.deletions import (
    DELETED_AT_COLUMN,
    DeleteMode,
    json_columns_of,
    live_keys,
    merge_problem,
    run_time,
    tombstones,
    with_deleted_at,
)
from analytics_dlt.hints import SEQUENCE_COLUMN, SequenceGenerator, table_hints
from analytics_dlt.history import StreamHistory, batch_items, without_resource_columns
from analytics_source.settings import ROWS_PER_BATCH

if TYPE_CHECKING:
    from analytics_api.client import ApiClient

__all__ = [
    "RowProcessor",
    "child_rows",
    "list_rows",
    "stream_incremental",
    "stream_resource",
    "stream_resources",
]

log = logging.getLogger(__name__)

Row = dict[str, Any]


class RowProcessor:
    """The record rules of one stream, in the order the Singer path applies them.

    1. the parent id goes into the child's column (`app_id`, `src_id`), as the tap does;
    2. primary key and replication key must be present (`check_keys`): no unmergeable rows;
    3. the record must match the stream's JSON schema (`RecordValidator`): dlt would otherwise
       add a variant column (`rate_limit__v_text`) instead of failing;
    4. fields the schema does not declare are dropped, one warning per field (`FieldFilter`),
       so both engines create the same columns;
    5. `_sdc_sequence` numbers the rows, so the last copy of a repeated key wins the merge.
    """

    def __init__(
        self,
        definition: StreamDefinition,
        sequence: SequenceGenerator,
        logger: logging.Logger | None = None,
    ) -> None:
        self.definition = definition
        self.sequence = sequence
        self.validator = RecordValidator(definition.schema, [definition.primary_key])
        self.trim = FieldFilter(definition, logger or log)

    def __call__(self, records: list[Row], path: str, parent_id: str | None = None) -> list[Row]:
        definition = self.definition
        parent_key = definition.parent_key
        validate = self.validator.validate
        for record in records:
            if parent_id is not None:
                record[parent_key] = parent_id  # type: ignore[index]
            check_keys(definition, record, path)
            try:
                validate(record)
            except SchemaViolation as exc:
                pk = definition.primary_key
                raise RecordError(
                    f"stream '{definition.name}', GET {path}: record {pk}={record[pk]!r}: "
                    f"{exc.reason}. Refusing to load a value of another type than the schema "
                    "declares; report this to the API provider."
                ) from None
        trim = self.trim
        rows = [trim(record) for record in records]
        for row, value in zip(rows, self.sequence.take(len(rows)), strict=True):
            row[SEQUENCE_COLUMN] = value
        return rows


def stream_incremental(
    definition: StreamDefinition, initial_value: str | None = None
) -> dlt.sources.incremental[str]:
    """Client-side incremental on the replication key, compared as instants.

    Raw strings compare wrongly across precisions (`...:00Z` sorts after `...:00.5Z`);
    `latest_timestamp` returns the canonical form, which is what the state holds. The state lives
    where dlt always puts it, `resources.<stream>.incremental.<replication key>`.
    """
    return dlt.sources.incremental(
        definition.replication_key,
        initial_value=initial_value,
        last_value_func=latest_timestamp,
        primary_key=definition.primary_key,
        on_cursor_value_missing="raise",
    )


# -- generators -------------------------------------------------------------------------------


def gather(lists: Iterable[list[Row]], size: int = ROWS_PER_BATCH) -> Iterator[list[Row]]:
    """Join small lists into lists of at least `size` rows (the last one may be shorter)."""
    batch: list[Row] = []
    for rows in lists:
        batch.extend(rows)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def list_rows(
    client: ApiClient, definition: StreamDefinition, process: RowProcessor
) -> Iterator[list[Row]]:
    """Every record of a top-level list, page after page, processed."""
    path = definition.path
    pages = client.iter_pages(definition.name, path, definition.params)
    yield from gather(process(page, path) for page in pages if page)


def parent_ids(client: ApiClient, parent: StreamDefinition) -> Iterator[str]:
    """The ids of every record of a parent list: the full, unfiltered scan children need."""
    path = parent.path
    for page in client.iter_pages(parent.name, path, parent.params):
        for record in page:
            check_keys(parent, record, path)
            yield str(record[parent.primary_key])


def child_rows(
    client: ApiClient, definition: StreamDefinition, process: RowProcessor, workers: int
) -> Iterator[list[Row]]:
    """Every record of a child list under every parent; `workers` parents fetched at once.

    Rows come out in parent order whatever the concurrency. A parent whose child path answers
    404 was deleted after it was listed: it is skipped with a warning, not an error of the run.
    """
    assert definition.parent is not None and definition.parent_key is not None
    parent = STREAMS_BY_NAME[definition.parent]
    key = definition.parent_key

    def fetch(parent_id: str) -> tuple[str, list[Row]]:
        path = child_path(definition.path, **{key: parent_id})
        pages = client.iter_pages(definition.name, path, definition.params, child=True)
        try:
            return path, [record for page in pages for record in page]
        except ParentNotFoundError:
            log.warning(
                "stream '%s': GET %s answered 404 - %s %r was deleted after it was listed; "
                "skipping its %s.",
                definition.name,
                path,
                parent.name,
                parent_id,
                definition.name,
            )
            return path, []

    fetched = ordered_map(fetch, parent_ids(client, parent), workers)
    yield from gather(
        process(records, path, parent_id) for parent_id, (path, records) in fetched if records
    )


# -- resources --------------------------------------------------------------------------------


def stream_resource(
    client: ApiClient,
    definition: StreamDefinition,
    sequence: SequenceGenerator,
    *,
    initial_value: str | None = None,
    workers: int = 1,
    deletes: DeleteMode = "off",
    deleted_at: dt.datetime | None = None,
    history: bool = False,
) -> DltResource:
    """One stream as a dlt resource named (and with a table named) after the stream.

    With `deletes` soft or hard there is no incremental (every record is loaded, like the tap's
    FULL_TABLE), and after the complete scan the keys live in the destination that the scan did
    not return are marked or deleted (`analytics_dlt.deletions`) in the same load package.
    With `history`, `<stream>_history` records the versions (`analytics_dlt.history`): a step
    after the incremental filter adds its rows to each batch, and an empty list (it passes the
    filter) marks the end of the scan, when history may start from the current table.
    """
    process = RowProcessor(definition, sequence)
    hints = with_deleted_at(
        table_hints(definition.name, definition.schema, [definition.primary_key]), deletes
    )

    trackers: list[StreamHistory] = []  # this run's, made when it starts (needs the pipeline)
    batchers: list[ArrowBatcher | None] = []  # this run's converter (None: dicts), set by the step
    end_of_scan: list[Row] = []

    def rows() -> Iterator[Any]:
        started = canonical_from_datetime(dt.datetime.now(dt.timezone.utc))
        batchers.clear()  # a new run (of this resource object): `after_filter` sets up again
        if history:
            pipeline = dlt.current.pipeline()
            if problem := merge_problem(pipeline):
                raise ValueError(f"stream '{definition.name}': history: {problem}")
            trackers[:] = [
                StreamHistory(
                    pipeline,
                    definition.name,
                    definition.primary_key,
                    definition.replication_key,
                    hints["columns"],
                    sequence,
                    log,
                    every_record=deletes != "off",  # no incremental: the scan sends every record
                )
            ]
        if definition.is_child:
            batches = child_rows(client, definition, process, workers)
        else:
            batches = list_rows(client, definition, process)
        if deletes == "off":
            yield from batches
            # Like the tap's signpost: no bookmark may pass the run's start (see `cap_bookmark`).
            cap_bookmark(definition.name, definition.replication_key, started)
            if history:
                yield end_of_scan
            return
        if not history:  # (history found the pipeline and checked it above)
            pipeline = dlt.current.pipeline()
            if problem := merge_problem(pipeline):
                raise ValueError(f"stream '{definition.name}': deletes={deletes!r}: {problem}")
        key = definition.primary_key
        sent: set[Any] = set()
        for batch in batches:
            sent.update(row[key] for row in batch)
            yield batch
        # the scan is complete: only now may anything be deleted
        missing = live_keys(pipeline, definition.name, key, deletes) - sent
        at = deleted_at or run_time()
        marks = tombstones(
            pipeline,
            definition.name,
            key,
            missing,
            deletes,
            at,
            sequence.take(len(missing)),
            json_columns_of(hints["columns"]),
        )
        if marks:
            yield marks
        if history:
            if closed := trackers[0].gone(missing, at):
                yield trackers[0].item(closed)
            yield end_of_scan

    def after_filter(items: Any, meta: Any) -> Iterator[Any]:
        """After dlt's incremental filter: a batch of records as an arrow table where it may be
        (`arrow_batcher`), followed, with history, by its history rows."""
        tracker = trackers[0] if history else None
        if not batchers:  # the resource dlt extracts has this run's file format
            extracting = dlt.current.source().resources[definition.name]
            if history:
                without_resource_columns(extracting, definition.name)
            pipeline = tracker.pipeline if tracker is not None else dlt.current.pipeline()
            batchers.append(arrow_batcher(extracting, pipeline, hints["columns"]))
        if items is end_of_scan:
            assert tracker is not None
            return iter([tracker.item(done)] if (done := tracker.finish()) else [])
        records = meta is None and items and DELETED_AT_COLUMN not in items[0]  # not marks
        if not records:
            return iter([items])
        table = batchers[0].to_arrow(items) if batchers[0] is not None else None
        converted = items if table is None else table
        if tracker is None:
            return iter([converted])
        return iter([converted, *batch_items(tracker, items, table)])

    rows.__name__ = rows.__qualname__ = definition.name
    incremental = stream_incremental(definition, initial_value) if deletes == "off" else None
    resource = dlt.resource(  # type: ignore[call-overload]
        rows, name=definition.name, incremental=incremental, **hints
    )
    add_step_after_incremental(resource, after_filter)
    return resource  # type: ignore[no-any-return]


def arrow_batcher(
    resource: DltResource, pipeline: dlt.Pipeline, columns: Any
) -> ArrowBatcher | None:
    """A converter of `resource`'s records (`columns`: its column hints) to arrow tables for its
    history rows, when the run writes parquet load files (`loader_file_format="parquet"`, as
    `dlt-bridge native` asks on DuckDB) and arrow rows load as dicts would
    (`arrow_matches_dicts`); else None: the history rows stay dicts, which dlt normalizes row by
    row (the same tables, more time)."""
    if resource.compute_table_schema().get("file_format") != "parquet":
        return None
    if not arrow_matches_dicts(pipeline):
        return None
    return ArrowBatcher(columns)


def stream_resources(
    client: ApiClient,
    *,
    initial_value: str | None = None,
    workers: int = 1,
    streams: Iterable[StreamDefinition] = STREAMS,
    sequence: SequenceGenerator | None = None,
    deletes: DeleteMode = "off",
    history: bool = False,
) -> list[DltResource]:
    """A resource per stream, sharing one client, one `_sdc_sequence` counter, one run time."""
    sequence = sequence or SequenceGenerator()
    deleted_at = run_time()
    return [
        stream_resource(
            client,
            d,
            sequence,
            initial_value=initial_value,
            workers=workers,
            deletes=deletes,
            deleted_at=deleted_at,
            history=history,
        )
        for d in streams
    ]
