"""Every place this project relies on a dlt detail that is not a documented function (dlt 1.31).

One module for the framework, used by the native source and the bridge alike; each item has a
test that fails loudly, naming it, when a dlt release changes it (`make test-compat` runs them
against the newest dlt):

* `cap_bookmark` edits the incremental state dlt keeps for a resource,
  `resources.<resource>.incremental.<cursor>` = `{last_value, unique_hashes, ...}`, reached
  through the public `dlt.current.resource_state()`; the layout is dlt's own (shown in its state
  docs, not a function with a contract). Test: tests/e2e/test_native_compat.py.
* `add_provider`: dlt documents custom config providers but gives no public way to have one in
  place before dlt resolves its runtime settings (telemetry), which happens the first time
  anything asks for dlt's run context. `current_pipeline_name`: which pipeline a lookup without
  the pipeline-name prefix is made for. Test: tests/e2e/test_bridge_defaults.py.
* `drop_committed_extracted_packages`: deletes an extracted package whose normalized copy is
  committed (left behind by a kill at the wrong moment). Test: tests/e2e/test_bridge_postgres.py.
* `dlt_json_dumps`: the JSON encoder dlt's writers use (`dlt.common.json`), so json columns the
  bridge hands over as arrow strings are byte for byte what dlt writes from dicts.
* `file_formats_for_new_table`: the destination's per-table file-format selector, asked for a
  table with no hints (PostgreSQL lists parquet but only loads it with an ADBC driver).
* `has_pending_jobs`: reads the job states of a load package (`new_jobs`, ...).
* `default_pipelines_dir`: the pipelines folder `dlt.pipeline()` uses when given none (the run
  guard locks a pipeline's folder before dlt opens it).
Tests of the last four: tests/e2e/test_bridge_defaults.py::test_compat_hooks_still_exist_in_dlt.
* `add_step_after_incremental`: a resource step placed after dlt's incremental filter (an
  `ItemTransform` subclass with a `placement_affinity` between the incremental's and dlt's
  limit's) whose returned iterator's items continue down the pipe, as `add_yield_map`'s do, but a
  batch at a time. Used by the native source's history tables (`analytics_dlt.history`). Test:
  tests/e2e/test_history_edges.py::test_step_after_incremental_sees_filtered_batches_and_adds_items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.specs import ConfigSectionContext
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.json import json as _dlt_json

dlt_json_dumps = _dlt_json.dumps
"""dlt's own JSON encoder (see the module doc)."""


def file_formats_for_new_table(caps: Any) -> tuple[Any, list[str]]:
    """(preferred, supported) load file formats for a table without hints on a destination."""
    preferred = caps.preferred_loader_file_format
    supported: Any = list(caps.supported_loader_file_formats or [])
    if caps.loader_file_format_selector is not None:
        probe: Any = {"name": "_analytics_probe", "columns": {}}  # no file_format hint: no warning
        preferred, supported = caps.loader_file_format_selector(
            preferred, supported, table_schema=probe
        )
    return preferred, list(supported)


def default_pipelines_dir() -> str:
    """The folder of dlt's pipelines when none is given (`$DLT_DATA_DIR/pipelines`, ...)."""
    from dlt.common.pipeline import get_dlt_pipelines_dir

    return str(get_dlt_pipelines_dir())


def has_pending_jobs(pipeline: Any, load_id: str) -> bool:
    """Whether the extracted package `load_id` holds jobs (new, started or failed)."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    return any(jobs.get(kind) for kind in ("new_jobs", "started_jobs", "failed_jobs"))


def cap_bookmark(resource: str, cursor: str, ceiling: str) -> bool:
    """Lower the stored `last_value` of a resource's incremental to `ceiling` when it is later.

    Called at the end of a complete scan, with the run's start as the ceiling: a record changed
    while the scan ran may have been read before it changed; its new value lies after the run
    start, and the next run must read it again (the merge makes the repeat harmless). The dedup
    hashes belong to the old `last_value`, so they are dropped with it. Returns True if capped.
    """
    state = dlt.current.resource_state(resource).get("incremental", {}).get(cursor)
    if not state or not isinstance(state.get("last_value"), str):
        return False
    if state["last_value"] <= ceiling:
        return False
    state["last_value"] = ceiling
    state["unique_hashes"] = []
    return True


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


def add_step_after_incremental(resource: Any, step: Callable[[Any, Any], Iterator[Any]]) -> None:
    """Call `step(items, meta)` on every item `resource` yields, after its incremental filter.

    The items of the iterator `step` returns go on down the pipe in its place: plain ones with the
    incoming item's meta, `dlt.mark.with_hints(...)`/`with_table_name(...)` ones with their own.
    `step` runs when the item reaches it, before the resource yields its next item.
    """
    from dlt.extract.items_transform import ItemTransform

    class AfterIncremental(ItemTransform[Any, dict[str, Any]]):
        placement_affinity = 1.05  # dlt: incremental 1, limit 1.1, forks to transformers 2

        def __call__(self, item: Any, meta: Any = None) -> Any:
            return step(item, meta)

    resource.add_step(AfterIncremental(step))
