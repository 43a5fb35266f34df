"""The dlt pipeline both commands load through: options, creation, pending packages.

A run (`dlt_bridge.loader.SingerLoader.load`, or `dlt-bridge native`) goes:

1. `create_pipeline()`: flags, then dlt's own config (toml / env), then the bridge's defaults
   (`analytics_dlt.defaults`, consulted after every user source).
2. `prepare()`: finish or abort load packages left pending by a failed run, then
   `pipeline.sync_destination()`; then the Singer state stored with the last completed load is
   read (`dlt_bridge.state`).
3. The loader reads the messages and extracts, normalizes and loads one package per segment,
   the Singer state travelling in the same package as the data it covers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import dlt
from dlt.common.destination import Destination

from analytics_dlt import compat, defaults
from analytics_dlt.hints import destination_column_name

__all__ = [
    "AUTO",
    "DEFAULT_DATASET_NAME",
    "LoadOptions",
    "PendingPolicy",
    "choose_loader_file_format",
    "create_pipeline",
    "extracted_nothing",
    "is_duckdb",
    "location_of",
    "one_connection",
    "prepare",
    "schema_hash",
    "source_name_for",
    "where_it_loads",
]

log = logging.getLogger("dlt_bridge")

DEFAULT_DATASET_NAME = "analytics"
DEFAULT_DESTINATION = "duckdb"
STAGING_LAYOUT = "staging_%s"
"""Where dlt stages merges, for every pipeline of this project: `staging_<dataset>`. dlt's
default, `<dataset>_staging`, collides with names users choose: on a server the staging of
environment `eu` (`analytics_eu_staging`) is the dataset of an environment `eu_staging`, and in
`analytics_staging.duckdb` the file's own catalog equals the staging dataset `analytics_staging`
(every merge fails with "Ambiguous reference"). No dataset of ours starts with `staging_`."""

PendingPolicy = Literal["load", "abort"]
AUTO = "auto"
"""`loader_file_format` value: let `choose_loader_file_format` pick one the destination takes."""


@dataclass
class LoadOptions:
    pipeline_name: str
    destination: str | None = None
    """dlt destination name; None -> dlt config (`destination_type`) -> duckdb."""
    dataset_name: str | None = None
    """None -> dlt config (`dataset_name`) -> `analytics`."""
    pipelines_dir: str | None = None
    """dlt working directory root; None -> dlt's default (~/.dlt/pipelines)."""
    loader_file_format: str = AUTO
    """`auto`: parquet where the destination loads it, else its preferred format (see
    `choose_loader_file_format`); `create_pipeline` replaces it with the format chosen."""
    batch_size: int = 5000
    """Rows per yielded list, per table."""
    progress_interval: float = 10.0
    """Seconds between progress lines on stderr (0 disables)."""
    on_pending: PendingPolicy = "load"
    commit_every: int = 0
    """Records after which the next STATE message closes a load package (0: one per run)."""
    source_name: str | None = None
    """dlt source/schema name holding the state; defaults to the pipeline name."""
    duckdb_file: str | None = None
    """Set by `create_pipeline`: the DuckDB file loaded into, None for other destinations."""
    arrow: bool = True
    """Hand dlt pyarrow tables where they give the same tables as dicts (`analytics_dlt.arrow`);
    `create_pipeline` turns it off unless the load files are parquet."""


def source_name_for(options: LoadOptions) -> str:
    return destination_column_name(options.source_name or options.pipeline_name)


def create_pipeline(options: LoadOptions) -> dlt.Pipeline:
    """dlt pipeline from flags, then dlt's own config (toml / env), then these defaults.

    The destination is built here, explicitly, so two rules hold whatever ran before: a DuckDB
    file given as a relative path (or not given: `<pipeline_name>.duckdb`) is taken from the
    current directory (`duckdb_path`), and merges stage in `STAGING_LAYOUT`.
    """
    provider = defaults.install()
    provider.set_pipeline_defaults(
        options.pipeline_name, {**defaults.EXTRACT_NO_COMPRESSION, **defaults.ARROW_DLT_COLUMNS}
    )
    kwargs: dict[str, Any] = {"pipeline_name": options.pipeline_name}
    if options.pipelines_dir:
        kwargs["pipelines_dir"] = options.pipelines_dir
    # Without a destination dlt leaves the dataset as configured (flags, toml/env, the
    # pipeline's own state) or None; with one it would invent `<pipeline>_dataset`. So ask first,
    # then fall back to the defaults.
    configured = dlt.pipeline(dataset_name=options.dataset_name, **kwargs)  # type: ignore[arg-type]
    pipeline = dlt.pipeline(
        destination=_destination(options, configured.destination),
        dataset_name=options.dataset_name or configured.dataset_name or DEFAULT_DATASET_NAME,
        **kwargs,
    )
    options.duckdb_file = _duckdb_file(pipeline)
    _check_duckdb_name(pipeline, options.duckdb_file)
    options.loader_file_format = choose_loader_file_format(pipeline, options.loader_file_format)
    # arrow tables only pay off as parquet; dlt converts them row by row to other formats
    options.arrow = options.arrow and options.loader_file_format == "parquet"
    log.debug("load file format: %s", options.loader_file_format)
    if options.loader_file_format == "jsonl" and is_duckdb(pipeline):
        log.warning(
            "jsonl load files on DuckDB rewrite json columns: DuckDB reads them as one STRUCT"
            " type and adds every key seen in other rows as null ({'x': 1} becomes"
            " {'x': 1, 'y': null}). Use parquet (the default) to keep objects as sent."
        )
    return pipeline


def _destination(options: LoadOptions, configured: Any) -> Any:
    """The destination of `options` (flag, else dlt config / the pipeline's own, else DuckDB),
    with the DuckDB file and the staging layout set explicitly."""
    if options.destination:
        reference: Any = Destination.from_reference(options.destination)
    elif configured is not None:
        reference = configured
    else:
        reference = Destination.from_reference(DEFAULT_DESTINATION)
    extra: dict[str, Any] = {"staging_dataset_name_layout": STAGING_LAYOUT}
    if reference.destination_name == "duckdb" and (path := duckdb_path(options.pipeline_name)):
        extra["credentials"] = path
    return Destination.from_reference(
        reference.destination_type, destination_name=reference.destination_name, **extra
    )


def duckdb_path(pipeline_name: str) -> str | None:
    """The DuckDB file of `pipeline_name` as an absolute path: the one configured in dlt
    (`[<pipeline>.]destination.duckdb.credentials`), else `<pipeline_name>.duckdb`; a relative
    path is taken from the current directory. None when the credentials are not a plain path
    (`:memory:`, a table of settings): dlt resolves those itself.

    dlt would take a relative (or the default) path from the directory of the pipeline's
    first run, remembered in its working folder: a run from another directory would load
    into the first directory's file.
    """
    keys = (f"{pipeline_name}.destination.duckdb.credentials", "destination.duckdb.credentials")
    found: Iterator[Any] = (dlt.secrets.get(key) for key in keys)
    value: Any = next((v for v in found if v is not None), f"{pipeline_name}.duckdb")
    if not isinstance(value, str):
        return None
    value = value.removeprefix("duckdb:///")
    if value.startswith(":"):
        return None
    return os.path.abspath(value)


def where_it_loads(pipeline: dlt.Pipeline, options: LoadOptions) -> str:
    """`duckdb file /abs/path.duckdb, dataset analytics` or `postgres, dataset analytics`."""
    name = pipeline.destination.destination_name if pipeline.destination else "?"
    place = f" file {options.duckdb_file}" if options.duckdb_file else ""
    return f"{name}{place}, dataset {pipeline.dataset_name}"


def choose_loader_file_format(pipeline: dlt.Pipeline, requested: str = AUTO) -> str:
    """The load file format for `pipeline`: `requested` unless it is `auto`; for `auto`, parquet
    when the destination loads parquet (the fastest measured, and the format of the bridge's
    arrow tables), else the destination's preferred format.

    Read from the destination's capabilities, including its per-table format selector: PostgreSQL
    lists parquet but only loads it with an ADBC driver installed; without one dlt would fall back
    with two warnings per table, so `auto` takes its preferred `insert_values` there.
    """
    if requested != AUTO:
        return requested
    if pipeline.destination is None:
        return "parquet"
    caps = pipeline.destination.capabilities()
    if pipeline.staging is not None and caps.supported_staging_file_formats:
        staged = list(caps.supported_staging_file_formats)
        return "parquet" if "parquet" in staged else str(caps.preferred_staging_file_format)
    preferred, supported = compat.file_formats_for_new_table(caps)
    if "parquet" in supported:
        return "parquet"
    return str(preferred or "parquet")


def is_duckdb(pipeline: dlt.Pipeline) -> bool:
    destination = pipeline.destination
    return destination is not None and destination.destination_name == "duckdb"


def _duckdb_database(pipeline: dlt.Pipeline) -> Any:
    """The DuckDB database (path) the pipeline's credentials name; None when not resolvable."""
    try:
        credentials: Any = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
        return credentials.database
    except Exception:  # credentials not resolvable yet: dlt reports it on use
        return None


def _duckdb_file(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB file the pipeline loads into; None for another destination or `:memory:`."""
    database = _duckdb_database(pipeline) if is_duckdb(pipeline) else None
    return database if isinstance(database, str) and database not in ("", ":memory:") else None


def _check_duckdb_name(pipeline: dlt.Pipeline, database: str | None) -> None:
    if database is None:
        return
    stem = os.path.splitext(os.path.basename(database))[0]
    if stem == pipeline.dataset_name:
        raise ValueError(
            f"the DuckDB file {database!r} has the same name as the dataset"
            f" {pipeline.dataset_name!r}; DuckDB then fails with 'Ambiguous reference to catalog"
            " or schema'. Choose another --dataset-name or --pipeline-name (the default file is"
            " <pipeline_name>.duckdb)."
        )


@contextlib.contextmanager
def one_connection(pipeline: dlt.Pipeline, options: LoadOptions) -> Iterator[dlt.Pipeline]:
    """The pipeline, loading a DuckDB file through one connection held for the whole run.

    dlt opens and closes the DuckDB file for every load job (about 20 for the eight streams,
    ~30 ms each, plus a checkpoint on every close): a fixed cost that dominates small runs.
    Given a connection (dlt's documented `duckdb(credentials=<connection>)`), dlt hands each
    job a duplicate of it and never closes it; the user's DuckDB settings (global config,
    pragmas, extensions) are still applied by dlt to it, after ours.

    Ours: with parquet load files, DuckDB's `memory_limit` is 64 MB. Its buffer pool defaults
    to 80 % of RAM and, while inserting parquet files, keeps pages it could evict, so the load
    grew with the data (bridge peak RSS ~280 MB at 100k, ~570 MB at 1M records; ~270 and ~305 MB
    with 64 MB, load time unchanged). Not for jsonl load files: DuckDB's `read_json` takes 32 MB
    per thread and fails under 64 MB. Another destination, or no file: `pipeline` unchanged.
    """
    database = options.duckdb_file
    if database is None:
        yield pipeline
        return
    import duckdb

    parquet = options.loader_file_format == "parquet"
    config: dict[str, Any] = {"memory_limit": "64MB"} if parquet else {}
    connection = duckdb.connect(database, config=config)
    try:
        yield dlt.pipeline(
            pipeline_name=pipeline.pipeline_name,
            pipelines_dir=pipeline.pipelines_dir,
            destination=dlt.destinations.duckdb(
                credentials=connection, staging_dataset_name_layout=STAGING_LAYOUT
            ),
            dataset_name=pipeline.dataset_name,
        )
    finally:
        connection.close()


def location_of(pipeline: dlt.Pipeline) -> str:
    try:
        credentials = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
    except Exception:
        return ""
    database = getattr(credentials, "database", None)
    if isinstance(database, str) and database:
        return database
    return str(getattr(credentials, "to_native_representation", lambda: "")() or "")


def load_workers(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """Keyword arguments for `pipeline.load()`: one worker on DuckDB unless `load.workers` is set.

    dlt takes the `workers` argument as a default that a configured `load.workers` overrides.
    """
    return {"workers": defaults.DUCKDB_LOAD_WORKERS} if is_duckdb(pipeline) else {}


def prepare(pipeline: dlt.Pipeline, on_pending: PendingPolicy = "load") -> None:
    """Deal with packages left by a failed run, then sync state and schemas from the destination.

    `load` (default): finish them. A pending package holds data and the Singer state that covers
    exactly that data, so loading it is as safe as the original run would have been, and the work
    is not lost. `abort`: discard them; dlt rewinds the local state to before them, and the next
    tap run starts from the state stored with the last completed load.
    """
    if stale := compat.drop_committed_extracted_packages(pipeline):
        log.warning(
            "an interrupted run was killed after normalizing package(s) %s: removed their"
            " extracted copies, the normalized ones are loaded below",
            ", ".join(stale),
        )
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
            pipeline.load(**load_workers(pipeline))
    pipeline.sync_destination()


NATIVE_SCHEMA = "analytics"
"""The dlt schema (source) name of the native source's tables; the Singer bridge's schema is
named after its pipeline (`source_name_for`)."""


class MixedEnginesError(ValueError):
    """The dataset already holds the other engine's tables: loading would mix two engines."""


def refuse_other_engine(pipeline: dlt.Pipeline, other_schema: str) -> None:
    """Raise `MixedEnginesError` when the destination's dataset holds tables of `other_schema`.

    The two engines make the same tables but keep their state apart (the bridge's Singer state,
    the native source's incremental state): loading one dataset with both would have each engine
    re-read or skip what the other loaded, and dlt would keep two schemas for one set of tables.
    """
    try:
        with pipeline.sql_client() as client:
            version_table = client.make_qualified_table_name("_dlt_version")
            rows = client.execute_sql(
                f"select count(*) from {version_table} where schema_name = %s", other_schema
            )
    except Exception:  # no such table yet, or a destination without SQL (files): nothing to mix
        log.debug("no schemas to compare in the destination", exc_info=True)
        return
    if rows and rows[0][0]:
        engine = "the native source" if other_schema == NATIVE_SCHEMA else "the Singer bridge"
        raise MixedEnginesError(
            f"dataset {pipeline.dataset_name} ({where_it_loads_short(pipeline)}) already holds"
            f" tables loaded by {engine} (dlt schema '{other_schema}'); one engine per dataset."
            " Load this one elsewhere (--pipeline-name, --dataset-name or another file)."
        )


def where_it_loads_short(pipeline: dlt.Pipeline) -> str:
    return location_of(pipeline) or str(pipeline.destination.destination_name)


def schema_hash(pipeline: dlt.Pipeline, schema_name: str) -> str | None:
    """Version hash of the pipeline's schema `schema_name` (None before it exists)."""
    schema = pipeline.schemas.get(schema_name)
    return schema.version_hash if schema is not None else None


def extracted_nothing(pipeline: dlt.Pipeline, schema_name: str, hash_before: str | None) -> bool:
    """True when the last extract left only empty packages and the schema as it was.

    dlt writes no state file into a package when the state equals the stored one, so such a
    package has nothing to commit: normalize and load can be skipped (and the package dropped).
    """
    if hash_before is None or schema_hash(pipeline, schema_name) != hash_before:
        return False
    return not any(
        compat.has_pending_jobs(pipeline, load_id)
        for load_id in pipeline.list_extracted_load_packages()
    )
