"""`analytics_dlt.compat`: the dlt state layout the bookmark cap relies on, checked for real.

If this fails after a dlt upgrade, dlt moved its incremental state: fix `cap_bookmark`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_api.timestamps import latest_timestamp
from analytics_dlt.compat import cap_bookmark

pytestmark = pytest.mark.e2e

CEILING = "2025-01-01T00:00:00.000000000Z"
FUTURE = "2030-01-01T00:00:00Z"


def _resource(seen_caps: list[bool]) -> Any:
    def rows() -> Iterator[list[dict[str, str]]]:
        yield [{"id": "a", "updatedAt": FUTURE}, {"id": "b", "updatedAt": "2020-01-01T00:00:00Z"}]
        seen_caps.append(cap_bookmark("things", "updatedAt", CEILING))

    return dlt.resource(
        rows,
        name="things",
        primary_key="id",
        write_disposition="merge",
        incremental=dlt.sources.incremental(
            "updatedAt", last_value_func=latest_timestamp, primary_key="id"
        ),
    )


def test_capped_bookmark_is_stored_and_the_next_run_reads_the_record_again(tmp_path: Path) -> None:
    pipeline = dlt.pipeline(
        "compat_check",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "state_check.duckdb")),
        dataset_name="compat",
    )
    caps: list[bool] = []
    pipeline.run(_resource(caps))
    state = pipeline.state["sources"]["compat_check"]["resources"]["things"]["incremental"]
    assert state["updatedAt"]["last_value"] == CEILING, "dlt moved its incremental state"
    assert state["updatedAt"]["unique_hashes"] == []
    pipeline.run(_resource(caps))
    assert caps == [True, True]
    trace = pipeline.last_trace
    assert trace.last_normalize_info.row_counts.get("things") == 1  # the 2030 record, again
