"""The native source loads the same tables from arrow tables as from dicts.

`dlt-bridge native` (a pipeline made by `create_pipeline`: parquet load files, dlt's columns added
to arrow tables) hands dlt its records and history rows as arrow tables, which skip dlt's
row-by-row normalize; a user's own `dlt.pipeline(...)` hands them as dicts (dlt adds `_dlt_id` to
arrow tables only when told to: `analytics_dlt.arrow.arrow_matches_dicts`). Over rounds of
changes and a deletion round, with history on, both give every table the same columns, types and
rows, and every history table exactly the fake's versions (`fake_api.rounds`). Run in this
process, against the fake in a thread.
"""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import pytest

from analytics_dlt.arrow import arrow_matches_dicts
from analytics_dlt.pipeline import LoadOptions, create_pipeline
from analytics_source import analytics_source
from analytics_source.cli import load_native
from fake_api import FakeAPI
from fake_api.rounds import Rounds
from tests.e2e.deletes_support import NAMES
from tests.e2e.test_history import assert_history_is_the_fakes, versions_in

pytestmark = pytest.mark.e2e

DATASET = "analytics"


def ours(workdir: Path) -> dlt.Pipeline:
    """The pipeline `dlt-bridge native` makes: `<name>.duckdb` in the current directory."""
    options = LoadOptions(
        pipeline_name="native_ours", pipelines_dir=str(workdir / "pipelines"), dataset_name=DATASET
    )
    return create_pipeline(options)


def theirs(workdir: Path) -> dlt.Pipeline:
    """A user's own pipeline, with nothing of ours configured."""
    return dlt.pipeline(
        "native_theirs",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "native_theirs.duckdb")),
        dataset_name=DATASET,
    )


def run(pipeline: dlt.Pipeline, api: FakeAPI, deletes: str = "off") -> None:
    source = analytics_source(
        base_url=api.url, api_key=api.token, page_size=5, deletes=deletes, history=True
    )
    if pipeline.pipeline_name == "native_ours":
        load_native(pipeline, source, loader_file_format="parquet")
    else:
        pipeline.run(source, loader_file_format="parquet")


def parquet_items(pipeline: dlt.Pipeline) -> dict[str, bool]:
    """Per table extracted in the last run: whether dlt wrote any of its items to a parquet file
    (an arrow table) rather than only jsonl (dicts)."""
    info = pipeline.last_trace.last_extract_info
    assert info is not None
    out: dict[str, bool] = {}
    for metrics in info.metrics.values():
        for step in metrics:
            for job_id in step["job_metrics"]:
                table, *parts = job_id.split(".")
                if not table.startswith("_dlt"):
                    out[table] = out.get(table, False) or "parquet" in parts
    return out


def tables_of(database: Path) -> dict[str, tuple[list[tuple[str, str]], list[tuple[object, ...]]]]:
    """Every table of the dataset: its columns and types, and its rows (sorted, without the
    values dlt and the run number: `_dlt_load_id`, `_dlt_id`, `_sdc_sequence`; the times a
    deletion run sets, its own start, only as set or not: `assert_history_is_the_fakes` checks
    them against the run's window)."""
    skip = {"_dlt_load_id", "_dlt_id", "_sdc_sequence"}
    run_times = {"_sdc_deleted_at", "_valid_to"}
    out = {}
    with duckdb.connect(str(database), read_only=True) as db:
        names = [
            r[0]
            for r in db.execute(
                "select table_name from information_schema.tables where table_schema = ?"
                " and table_name not like '_dlt%'",
                [DATASET],
            ).fetchall()
        ]
        for name in names:
            columns = db.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = ? and table_name = ? order by ordinal_position",
                [DATASET, name],
            ).fetchall()
            kept = ", ".join(
                f'"{c}" is null' if c in run_times else f'"{c}"'
                for c, _ in columns
                if c not in skip
            )
            rows = db.execute(f'select {kept} from {DATASET}."{name}"').fetchall()
            out[name] = (columns, sorted(rows, key=repr))
    return out


def test_arrow_and_dicts_load_the_same_tables_and_versions(
    fake_api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    api = fake_api
    pipelines = [ours(tmp_path), theirs(tmp_path)]
    assert [arrow_matches_dicts(p) for p in pipelines] == [True, False]
    rounds = Rounds(api)
    for round_number, deletes in enumerate(["off", "off", "off", "soft"]):
        if round_number == 3:
            api.delete_records(0.2, seed=3)
        elif round_number:
            api.mutate(0.3, seed=round_number)
        with rounds.run(deletions=deletes != "off"):
            for pipeline in pipelines:
                run(pipeline, api, deletes)
        arrow, dicts = (parquet_items(p) for p in pipelines)
        assert set(arrow) == set(dicts) and arrow, (arrow, dicts)
        assert not any(dicts.values()), dicts
        assert all(arrow[name] for name in NAMES if name in arrow), arrow  # records: arrow
        databases = [tmp_path / f"{p.pipeline_name}.duckdb" for p in pipelines]
        from_arrow, from_dicts = (tables_of(d) for d in databases)
        assert from_arrow.keys() == from_dicts.keys() == {*NAMES, *(f"{n}_history" for n in NAMES)}
        for name in from_arrow:
            assert from_arrow[name][0] == from_dicts[name][0], name  # columns and types
            assert from_arrow[name][1] == from_dicts[name][1], name  # rows
            assert ("_dlt_id", "VARCHAR") in from_arrow[name][0], name
        for database in databases:
            assert_history_is_the_fakes(versions_in(database), rounds)
