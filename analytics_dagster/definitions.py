"""Everything the code location defines, built from the environments file and the settings.

Loading checks the whole environments file and the settings first: a bad file, an unset
`ANALYTICS_ENVIRONMENTS` or an unusable variable fails the load with a message naming what to
fix, instead of showing an empty or stale set of partitions. No API key is read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dagster import (
    AssetSelection,
    DagsterInvalidDefinitionError,
    Definitions,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    in_process_executor,
    schedule,
)
from dagster_dlt import DagsterDltResource

from analytics_dagster.assets import RESOURCE_KEY, build_assets
from analytics_dagster.destinations import check_destination
from analytics_dagster.settings import (
    SCHEDULE_VARIABLE,
    OrchestrationSettings,
    SettingsError,
    settings_from,
)
from analytics_dlt.environments import Environment, environments_path, load_environments

JOB_NAME = "analytics_job"
SCHEDULE_NAME = "analytics_schedule"
ENVIRONMENT_TAG = "analytics/environment"
"""Set on scheduled runs next to Dagster's own `dagster/partition`."""


def build_definitions(environ: Mapping[str, str] | None = None) -> Definitions:
    """The assets, job, schedule and resources for the environments `environ` points at."""
    env = os.environ if environ is None else environ
    settings = settings_from(env)
    check_destination(settings)
    environments = load_environments(environments_path(env))
    assets = build_assets(environments, settings)
    job = define_asset_job(
        JOB_NAME,
        selection=AssetSelection.assets(assets),
        partitions_def=assets.partitions_def,
        description="Loads one environment (the partition) into its own place.",
    )
    return Definitions(
        assets=[assets],
        jobs=[job],
        schedules=[build_schedule(environments, settings)],
        resources={RESOURCE_KEY: DagsterDltResource()},
        # A run is one step (the eight tables load together), so a step subprocess would add
        # start-up time and no parallelism: environments run in parallel as separate runs.
        executor=in_process_executor,
    )


def build_schedule(
    environments: Sequence[Environment], settings: OrchestrationSettings
) -> ScheduleDefinition:
    """One run per environment at every tick of `ANALYTICS_SCHEDULE` (UTC); stopped until on.

    Each environment is its own run, so they load in parallel as far as the instance allows
    and one failing does not stop the others.
    """
    names = [environment.name for environment in environments]

    def requests(context: ScheduleEvaluationContext) -> list[RunRequest]:
        # a run key per environment and tick: Dagster launches each once, even if re-evaluated
        tick = context.scheduled_execution_time
        return [
            RunRequest(
                run_key=f"{name}@{tick.isoformat()}",
                partition_key=name,
                tags={ENVIRONMENT_TAG: name},
            )
            for name in names
        ]

    try:
        return schedule(
            name=SCHEDULE_NAME,
            job_name=JOB_NAME,
            cron_schedule=settings.schedule,
            execution_timezone="UTC",
            description=f"Every environment ({', '.join(names)}), one run each.",
        )(requests)
    except DagsterInvalidDefinitionError as exc:
        raise SettingsError(
            f"{SCHEDULE_VARIABLE}: not a cron expression Dagster accepts, e.g. '0 * * * *' "
            f"(hourly) or '*/15 * * * *' ({exc})."
        ) from None
