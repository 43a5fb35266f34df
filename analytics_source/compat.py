"""The one place where this source relies on a dlt detail that is not a documented function.

`cap_bookmark` edits the incremental state dlt keeps for a resource,
`resources.<resource>.incremental.<cursor>` = `{last_value, unique_hashes, ...}`, reached through
the public `dlt.current.resource_state()`. The layout is dlt's own (shown in its state docs, not a
function with a contract), so `tests/unit/test_native_compat.py` checks it on every dlt version we
run: if dlt moves it, that test fails and names this module.
"""

from __future__ import annotations

import dlt


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
