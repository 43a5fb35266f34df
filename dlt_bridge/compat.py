"""The only places the bridge reaches below dlt's documented API (dlt 1.31).

dlt documents custom config providers (`dlt.config.register_provider`) but gives no public way to
(a) have a provider in place before dlt resolves its runtime settings (telemetry), which happens
the first time anything asks for dlt's run context, or (b) learn which pipeline a lookup is made
for when it is made without the pipeline-name prefix. Both live here, with a unit test
(`tests/unit/test_bridge_compat.py`) that fails loudly when a dlt release changes them.
(c) Deleting an extracted package whose normalized copy is committed
(`drop_committed_extracted_packages`; tested by tests/e2e/test_bridge_postgres.py).
"""

from __future__ import annotations

from typing import Any

from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.specs import ConfigSectionContext
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

__all__ = ["add_provider", "current_pipeline_name", "drop_committed_extracted_packages"]


def add_provider(provider: ConfigProvider) -> bool:
    """Adds `provider` after dlt's own providers (user values keep precedence), once per process.

    If dlt has not set up its run context yet, the provider is added before the context
    resolves its runtime settings, so it also supplies defaults for those (telemetry).
    Returns whether the provider was present when the runtime settings were resolved.
    """
    container = Container()
    if PluggableRunContext not in container:
        context = PluggableRunContext()  # not in the container yet: runtime not initialized
        context.providers.add_provider(provider)
        container[PluggableRunContext] = context  # initializes the runtime with our provider
        return True
    providers = container[PluggableRunContext].providers
    if provider.name not in providers:
        providers.add_provider(provider)
    return False


def current_pipeline_name() -> str | None:
    """Name of the pipeline whose step is resolving configuration right now, if any."""
    context = Container()[ConfigSectionContext]
    return context.pipeline_name


def drop_committed_extracted_packages(pipeline: Any) -> list[str]:
    """Delete extracted packages that were already normalized and committed; their ids.

    dlt's normalize commits a package by renaming it into `load/normalized`, then deletes the
    extracted copy. A process killed between the two leaves both, and normalizing the extracted
    copy again fails on every later run ("Directory not empty" on the rename). The normalized copy
    is the committed, complete one, so the extracted leftover goes, as dlt's next step would have.
    """
    normalized = set(pipeline.list_normalized_load_packages())
    stale = [i for i in pipeline.list_extracted_load_packages() if i in normalized]
    if stale:
        extracted = pipeline._get_normalize_storage().extracted_packages
        for load_id in stale:
            extracted.delete_package(load_id)
    return stale
