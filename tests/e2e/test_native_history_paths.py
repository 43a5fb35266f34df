"""The native source's history rows load the same history tables as arrow tables or as dicts.

`dlt-bridge native` (a pipeline made by `create_pipeline`: parquet load files, dlt's columns added
to arrow tables) hands dlt the history rows as arrow tables, which skip dlt's row-by-row
normalize; a user's own `dlt.pipeline(...)` hands them as dicts (dlt adds `_dlt_id` to arrow
tables only when told to: `analytics_dlt.arrow.arrow_matches_dicts`). Over rounds of changes and
a deletion round, both hold exactly the fake's versions (`fake_api.rounds`), with the same
columns and types. Run in this process, against the fake in a thread.
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


def history_items_as_parquet(pipeline: dlt.Pipeline) -> dict[str, bool]:
    """Per history table extracted in the last run: whether dlt wrote its items to parquet files
    (arrow tables) rather than jsonl (dicts)."""
    info = pipeline.last_trace.last_extract_info
    assert info is not None
    out: dict[str, bool] = {}
    for metrics in info.metrics.values():
        for step in metrics:
            for job_id in step["job_metrics"]:
                table, *parts = job_id.split(".")
                if table.endswith("_history"):
                    out[table] = out.get(table, True) and "parquet" in parts
    return out


def column_types(database: Path) -> dict[str, list[tuple[str, str]]]:
    """Per stream: its history table's columns and types, in order."""
    with duckdb.connect(str(database), read_only=True) as db:
        return {
            name: db.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = ? and table_name = ? order by ordinal_position",
                [DATASET, f"{name}_history"],
            ).fetchall()
            for name in NAMES
        }


def test_arrow_and_dict_history_rows_load_the_same_versions(
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
        arrow, dicts = (history_items_as_parquet(p) for p in pipelines)
        assert set(arrow) == set(dicts) and arrow, (arrow, dicts)
        assert not any(dicts.values()), dicts
        if deletes == "off":  # new versions; a deletion run's closing rows go as dicts
            assert all(arrow.values()), arrow
        databases = [tmp_path / f"{p.pipeline_name}.duckdb" for p in pipelines]
        arrow_columns, dict_columns = (column_types(d) for d in databases)
        assert arrow_columns == dict_columns
        assert all(("_dlt_id", "VARCHAR") in c for c in arrow_columns.values()), arrow_columns
        for database in databases:
            assert_history_is_the_fakes(versions_in(database), rounds)
