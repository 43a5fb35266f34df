"""The native source's eight tables as Dagster assets, one static partition per environment.

`@dlt_assets` needs a source when the definitions load, to know the eight resources and make
one asset each. That source is built with a placeholder URL and key and is never run, so the
code location loads without any API key. A run builds the real source for its partition's
environment, with that environment's options and key, and its own pipeline and destination.

Every run of a partition, however it was launched (schedule, job or asset backfill, the UI,
`dagster asset materialize`), first takes the environment's run guard (`analytics_dlt.guard`).
A run that finds another run of its environment loading is skipped: it logs who holds it,
materializes nothing and succeeds, so it spends no retry (the assets are `skippable`).
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations at
# definition time and must see the `AssetExecutionContext` class, not a string.

from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Failure,
    RetryRequested,
    StaticPartitionsDefinition,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.sources import DltSource

from analytics_api.streams import STREAMS_BY_NAME, StreamDefinition
from analytics_dagster.destinations import describe, environment_pipeline, spec_pipeline
from analytics_dagster.failures import failure_message, is_transient
from analytics_dagster.settings import OrchestrationSettings
from analytics_dlt.environments import Environment
from analytics_dlt.guard import RunBusyError, RunGuard
from analytics_source import analytics_source

ASSET_KEY_PREFIX = "analytics"
"""Assets are `analytics/<stream>`, e.g. `analytics/applications`."""
GROUP_NAME = "analytics"
OP_NAME = "analytics_dlt_assets"
RESOURCE_KEY = "dlt_resource"
"""Key of the `DagsterDltResource` in the definitions' resources."""

PLACEHOLDER_BASE_URL = "https://placeholder.invalid"
PLACEHOLDER_API_KEY = "placeholder-never-sent"
"""Build the definition-time source only; it is never iterated, so nothing is ever sent."""


def _description(stream: StreamDefinition) -> str:
    parent = f", children of {stream.parent} ({stream.parent_key})" if stream.parent else ""
    return (
        f"`{stream.path}` of every environment (one partition each){parent}; merged on "
        f"`{stream.primary_key}`, incremental on `{stream.replication_key}`."
    )


class AnalyticsTranslator(DagsterDltTranslator):
    """Asset keys `analytics/<stream>` in group `analytics`, no upstream placeholder assets,
    skippable (a run skipped because its environment is busy materializes none of them).

    dagster-dlt's default makes each table depend on an unmaterializable
    `analytics_<stream>` asset; the API is not a Dagster asset, so the tables have no deps.
    """

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        stream = STREAMS_BY_NAME[data.resource.name]
        return spec.replace_attributes(
            key=AssetKey([ASSET_KEY_PREFIX, stream.name]),
            deps=[],
            group_name=GROUP_NAME,
            description=_description(stream),
            skippable=True,
        )


TRANSLATOR = AnalyticsTranslator()


def spec_source() -> DltSource:
    """The source the asset specs are generated from: placeholder URL and key, never run."""
    return analytics_source(base_url=PLACEHOLDER_BASE_URL, api_key=PLACEHOLDER_API_KEY)


def partitions_for(environments: Sequence[Environment]) -> StaticPartitionsDefinition:
    """One partition per environment, named after it, in file order."""
    return StaticPartitionsDefinition([environment.name for environment in environments])


def build_assets(
    environments: Sequence[Environment], settings: OrchestrationSettings
) -> AssetsDefinition:
    """The multi-asset of the eight tables, partitioned by environment."""
    by_name = {environment.name: environment for environment in environments}

    @dlt_assets(
        dlt_source=spec_source(),
        dlt_pipeline=spec_pipeline(settings),
        name=OP_NAME,
        dagster_dlt_translator=TRANSLATOR,
        partitions_def=partitions_for(environments),
        # one run per environment, so one environment's failure is that run's alone
        backfill_policy=BackfillPolicy.multi_run(1),
    )
    def analytics_dlt_assets(
        context: AssetExecutionContext, dlt_resource: DagsterDltResource
    ) -> Iterator[Any]:
        environment = by_name.get(context.partition_key)
        if environment is None:
            raise Failure(
                description=f"environment '{context.partition_key}': not in the environments "
                "file any more; reload the code location."
            )
        yield from load_environment(context, dlt_resource, environment, settings)

    return analytics_dlt_assets


def load_environment(
    context: AssetExecutionContext,
    resource: DagsterDltResource,
    environment: Environment,
    settings: OrchestrationSettings,
) -> Iterator[Any]:
    """Run one environment's source into its own place; failures name the environment.

    The key is read here, in the run, from the variable the environments file names; a
    missing or unusable key fails this run alone. The environment's run guard is taken before
    its pipeline is made (dagster-dlt drops the pipeline's working folder); when another run
    holds it this run is skipped. Transient failures ask Dagster for another attempt of this
    step (`RetryRequested`, up to `ANALYTICS_RETRIES`); others fail at once.
    """
    secret: str | None = None
    try:
        secret = environment.api_key()
        source = analytics_source(**environment.source_options(), api_key=secret)
    except Exception as exc:  # a missing key or an unusable setting: retrying cannot help
        raise Failure(description=failure_message(environment, exc, secret)) from None
    label = f"environment '{environment.name}'"
    try:
        with RunGuard(label, by=f"Dagster run {context.run_id[:8]}") as guard:
            guard.hold_pipeline(environment.pipeline_name)
            try:
                pipeline = environment_pipeline(environment, settings)
            except Exception as exc:  # an unusable setting: retrying cannot help
                raise Failure(description=failure_message(environment, exc, secret)) from None
            guard.hold_destination(pipeline)
            context.log.info(f"{label}: loading into {describe(environment, settings)}")
            yield from resource.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=TRANSLATOR,
            )
    except RunBusyError as busy:
        context.log.warning(f"{busy} (skipped)")
    except Failure:
        raise
    except Exception as exc:
        message = failure_message(environment, exc, secret)
        attempt = context.retry_number
        if is_transient(exc) and attempt < settings.retries:
            wait = settings.retry_wait(attempt)
            context.log.warning(
                f"{label}: attempt {attempt + 1} of "
                f"{settings.retries + 1} failed, trying again in {wait:g} s: {message}"
            )
            raise RetryRequested(max_retries=settings.retries, seconds_to_wait=wait) from Failure(
                description=message
            )
        raise Failure(description=message) from None
