"""Helpers for the `--deletes` tests: run either engine, read tables with `_sdc_deleted_at`.

The engines, each into `workdir`'s DuckDB file under the same pipeline name:

* `bridge`: `dlt-bridge run` (the tap in its own process), as users run it;
* `native`: `dlt-bridge native` (the native dlt source), in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from tests.e2e.bridge_support import (
    BridgeResult,
    column_types,
    expected_records,
    loaded_records,
    main_in_process,
    query,
    run_bridge_process,
    tables,
    write_tap_config,
)

NAMES = [s.name for s in STREAMS]
ENGINES = ("bridge", "native")

EXIT_RUN_FAILED = {"bridge": 4, "native": 1}
"""A run that fails part way (an API error beyond the retry budget)."""
EXIT_REFUSED = {"bridge": 3, "native": 2}
"""`--deletes` into a destination that cannot merge: bad input for the bridge (it finds out at
the first record), a usage error for the native command (before any request)."""

DELETED_AT = ("_sdc_deleted_at", "TIMESTAMP WITH TIME ZONE")
"""The one column a run with `--deletes` adds to every table."""


def bridge_run(
    workdir: Path, api: Any, *args: str, extra_env: dict[str, str] | None = None
) -> BridgeResult:
    """`dlt-bridge run` (tap in its own process) into `workdir`'s DuckDB file."""
    config = write_tap_config(workdir, api, max_retries=1, backoff_factor=0)
    return run_bridge_process(workdir, ["run", "--config", str(config), *args], extra_env=extra_env)


def native_run(
    workdir: Path, api: Any, *args: str, extra_env: dict[str, str] | None = None
) -> BridgeResult:
    """`dlt-bridge native` in this process, same pipeline name and DuckDB file as the bridge's."""
    argv = ["native", "--base-url", api.url, "--pipeline-name", "tap_analytics"]
    argv += ["--max-retries", "1", "--backoff-factor", "0", *args]
    argv += ["--pipelines-dir", str(workdir / "pipelines")]
    env = {"SOURCES__ANALYTICS__API_KEY": api.token, **(extra_env or {})}
    return main_in_process(workdir, argv, env)


def engine_run(
    engine: str, workdir: Path, api: Any, *args: str, extra_env: dict[str, str] | None = None
) -> BridgeResult:
    """One run of `engine` ("bridge" or "native") with `args` (e.g. `--deletes soft`)."""
    run = {"bridge": bridge_run, "native": native_run}[engine]
    return run(workdir, api, *args, extra_env=extra_env)


def deleted_keys(workdir: Path, stream: str) -> set[Any]:
    """Keys whose `_sdc_deleted_at` is set (empty when the table has no such column)."""
    if "_sdc_deleted_at" not in column_types(workdir, stream):
        return set()
    key = STREAMS_BY_NAME[stream].primary_key
    rows = query(
        workdir, f'select "{key}" from analytics."{stream}" where _sdc_deleted_at is not null'
    )
    return {r[0] for r in rows}


def records_by_key(workdir: Path, stream: str) -> dict[Any, dict[str, Any]]:
    """The table's rows on the schema's fields, by primary key."""
    key = STREAMS_BY_NAME[stream].primary_key
    return {r[key]: r for r in loaded_records(workdir, stream)}


def snapshot(workdir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table on the schema's fields plus whether `_sdc_deleted_at` is set, sorted by key."""
    out = {}
    for name in NAMES:
        key = STREAMS_BY_NAME[name].primary_key
        marked = deleted_keys(workdir, name)
        recs = sorted(loaded_records(workdir, name), key=lambda r, k=key: r[k])  # type: ignore[misc]
        out[name] = [(repr(sorted(r.items())), r[key] in marked) for r in recs]
    return out


def all_column_types(workdir: Path) -> dict[str, dict[str, str]]:
    return {name: column_types(workdir, name) for name in NAMES}


def destination_state(workdir: Path) -> Any:
    """The pipeline state of the newest completed load, as stored in the destination (the
    Singer state for the bridge, the source's incremental state for the native engine)."""
    if "_dlt_pipeline_state" not in tables(workdir):
        return None
    found = query(
        workdir,
        "select s.state from analytics._dlt_pipeline_state s join analytics._dlt_loads l"
        " on l.load_id = s._dlt_load_id where l.status = 0 order by l.load_id desc limit 1",
    )
    if not found:
        return None
    from dlt.pipeline.state_sync import decompress_state

    return decompress_state(found[0][0])


def assert_live_rows_equal_dump(workdir: Path, api: Any) -> None:
    """Rows with `_sdc_deleted_at` null equal the fake's dump (values and keys)."""
    for name in NAMES:
        key = STREAMS_BY_NAME[name].primary_key
        marked = deleted_keys(workdir, name)
        live = [r for r in loaded_records(workdir, name) if r[key] not in marked]
        want = expected_records(name, api.dump(name))
        assert sorted(repr(sorted(r.items())) for r in live) == sorted(
            repr(sorted(r.items())) for r in want
        ), name


def assert_only_deleted_at_added(workdir: Path, before: dict[str, dict[str, str]]) -> None:
    """Every table has the columns (names and types) it had before a run with `--deletes`,
    plus `_sdc_deleted_at`. (Plain runs make identical columns with either engine:
    test_native_parity.py.)"""
    for name in NAMES:
        assert column_types(workdir, name) == {**before[name], DELETED_AT[0]: DELETED_AT[1]}, name
