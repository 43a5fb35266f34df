"""The only places the bridge reaches below dlt's documented API (dlt 1.31).

dlt documents custom config providers (`dlt.config.register_provider`) but gives no public way to
(a) have a provider in place before dlt resolves its runtime settings (telemetry), which happens
the first time anything asks for dlt's run context, or (b) learn which pipeline a lookup is made
for when it is made without the pipeline-name prefix. Both live here, with a unit test
(`tests/unit/test_bridge_compat.py`) that fails loudly when a dlt release changes them.
"""

from __future__ import annotations

from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.specs import ConfigSectionContext
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

__all__ = ["add_provider", "current_pipeline_name"]


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
