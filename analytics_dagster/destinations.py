"""Where each environment's data goes: its own DuckDB file, or its own dataset on a server.

One dlt pipeline per environment, named `analytics_<name>`, so dlt's local working folder, its
state and its load packages are never shared. With DuckDB each environment writes its own file
(`analytics_<name>.duckdb`, dataset `analytics`); with a server destination (PostgreSQL, ...)
each writes its own dataset (`analytics_<name>`), and stages its merges in a dataset no other
environment uses (`STAGING_LAYOUT`). Merges and deletions work within one environment's tables,
so one environment's run cannot touch another's rows.
"""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.common.destination import Destination

from analytics_dagster.settings import DESTINATION_VARIABLE, OrchestrationSettings, SettingsError
from analytics_dlt.environments import DATASET_NAME, Environment

SPEC_PIPELINE_NAME = "analytics_dagster_specs"
"""The pipeline the asset definitions describe; it never runs (each run builds its own)."""


STAGING_LAYOUT = "staging_%s"
"""Where dlt stages merges: `staging_analytics` in a DuckDB file, `staging_analytics_<name>` on
a server. dlt's default, `<dataset>_staging`, collides with the environments' own names: on a
server, environment `eu` would stage (truncate, fill, delete) in `analytics_eu_staging`, the
dataset of an environment `eu_staging`; in `analytics_staging.duckdb` (environment `staging`)
the catalog DuckDB names after the file equals the staging dataset `analytics_staging`, and
every merge fails with "Ambiguous reference". No environment's dataset or file starts with
`staging_`."""


def check_destination(settings: OrchestrationSettings) -> None:
    """Fail at definition time when dlt does not know the destination (no credentials needed)."""
    try:
        Destination.from_reference(settings.destination)
    except Exception as exc:
        raise SettingsError(
            f"{DESTINATION_VARIABLE}: dlt has no destination by that name ({type(exc).__name__}); "
            "use duckdb (the default), postgres or another dlt destination name."
        ) from None


def duckdb_path(environment: Environment, settings: OrchestrationSettings) -> Path:
    """The environment's DuckDB file: `ANALYTICS_DUCKDB_DIR`, else the run's working directory."""
    directory = settings.duckdb_dir if settings.duckdb_dir is not None else Path.cwd()
    return (directory / environment.duckdb_file).absolute()


def dataset_name(environment: Environment, settings: OrchestrationSettings) -> str:
    """`analytics` inside the environment's own file, `analytics_<name>` on a shared server."""
    return DATASET_NAME if settings.per_environment_file else environment.server_dataset


def describe(environment: Environment, settings: OrchestrationSettings) -> str:
    """Where a run of this environment loads, for the run's log (no credentials in it)."""
    dataset = dataset_name(environment, settings)
    if settings.per_environment_file:
        return f"{duckdb_path(environment, settings)}, dataset {dataset}"
    return f"{settings.destination}, dataset {dataset}"


def environment_pipeline(environment: Environment, settings: OrchestrationSettings) -> dlt.Pipeline:
    """The dlt pipeline of one environment: its own name, state and place in the destination.

    Server credentials come from dlt config and secrets as usual (for example env
    `DESTINATION__POSTGRES__CREDENTIALS`), read by dlt when the load starts. dlt's working
    folder is `<DLT_DATA_DIR or ~/.dlt>/pipelines/analytics_<name>`.
    """
    file = str(duckdb_path(environment, settings)) if settings.per_environment_file else None
    destination = Destination.from_reference(
        settings.destination, credentials=file, staging_dataset_name_layout=STAGING_LAYOUT
    )
    return dlt.pipeline(
        pipeline_name=environment.pipeline_name,
        destination=destination,
        dataset_name=dataset_name(environment, settings),
    )


def spec_pipeline(settings: OrchestrationSettings) -> dlt.Pipeline:
    """A pipeline for `@dlt_assets` to describe the assets with (its kind: the destination)."""
    return dlt.pipeline(
        pipeline_name=SPEC_PIPELINE_NAME,
        destination=settings.destination,
        dataset_name=DATASET_NAME,
    )
