"""Helpers for the `--deletes` tests: run either engine, read tables with `_sdc_deleted_at`."""

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
    write_tap_config,
)

NAMES = [s.name for s in STREAMS]


def bridge_run(workdir: Path, api: Any, *args: str, **kw: Any) -> BridgeResult:
    """`dlt-bridge run` (tap in its own process) into `workdir`'s DuckDB file."""
    config = write_tap_config(workdir, api, max_retries=1, backoff_factor=0)
    return run_bridge_process(workdir, ["run", "--config", str(config), *args], **kw)


def native_run(
    workdir: Path, api: Any, *args: str, extra_env: dict[str, str] | None = None
) -> BridgeResult:
    """`dlt-bridge native` in this process, same pipeline name and DuckDB file as the bridge's."""
    argv = ["native", "--base-url", api.url, "--pipeline-name", "tap_analytics"]
    argv += ["--max-retries", "1", "--backoff-factor", "0", *args]
    argv += ["--pipelines-dir", str(workdir / "pipelines")]
    env = {"SOURCES__ANALYTICS__API_KEY": api.token, **(extra_env or {})}
    return main_in_process(workdir, argv, env)


def deleted_keys(workdir: Path, stream: str) -> set[Any]:
    """Keys whose `_sdc_deleted_at` is set (empty when the table has no such column)."""
    if "_sdc_deleted_at" not in column_types(workdir, stream):
        return set()
    key = STREAMS_BY_NAME[stream].primary_key
    rows = query(
        workdir, f'select "{key}" from analytics."{stream}" where _sdc_deleted_at is not null'
    )
    return {r[0] for r in rows}


def snapshot(workdir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table on the schema's fields plus whether `_sdc_deleted_at` is set, sorted by key."""
    out = {}
    for name in NAMES:
        key = STREAMS_BY_NAME[name].primary_key
        marked = deleted_keys(workdir, name)
        recs = sorted(loaded_records(workdir, name), key=lambda r, k=key: r[k])  # type: ignore[misc]
        out[name] = [(repr(sorted(r.items())), r[key] in marked) for r in recs]
    return out


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
