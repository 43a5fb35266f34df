"""Where the Singer state lives: `state["sources"][<source>][STATE_KEY]` of the dlt pipeline state.

The loader writes every STATE message into `dlt.current.source_state()`, so the last one is
stored in the same load package as the records before it; dlt only restores a state whose load
completed, so a stored state is never ahead of the stored data.
"""

from __future__ import annotations

import tempfile
from typing import Any

import dlt

__all__ = ["STATE_KEY", "destination_singer_state", "stored_singer_state"]

STATE_KEY = "singer_state"
"""Key of the Singer state inside the dlt source state (`state["sources"][<source>][STATE_KEY]`)."""


def _singer_state(state: Any, source_name: str) -> Any:
    if not state:
        return None
    return ((state.get("sources") or {}).get(source_name) or {}).get(STATE_KEY)


def stored_singer_state(pipeline: dlt.Pipeline, source_name: str) -> Any:
    """The Singer state saved by the last completed load (call after `prepare`)."""
    return _singer_state(pipeline.state, source_name)


def destination_singer_state(pipeline: dlt.Pipeline, source_name: str) -> Any:
    """The Singer state of the last completed load, read from the destination only.

    Unlike `stored_singer_state` this touches neither pending packages nor the pipeline's working
    directory (for `dlt-bridge state`): a pipeline of the same name, destination and dataset, in
    a throwaway working directory, syncs from the destination and is then discarded.
    """
    with tempfile.TemporaryDirectory(prefix="dlt-bridge-state-") as workdir:
        reader = dlt.pipeline(
            pipeline_name=pipeline.pipeline_name,
            pipelines_dir=workdir,
            destination=pipeline.destination,
            dataset_name=pipeline.dataset_name,
        )
        reader.sync_destination()
        return _singer_state(reader.state, source_name)
