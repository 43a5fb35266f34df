"""One extractor per account through `meltano run`: `tap-analytics--prod` and
`tap-analytics--staging` (meltano.yml, `inherit_from: tap-analytics`) against two fake APIs with
different data and keys, in a temporary copy of the project (helpers of tests/e2e/test_meltano.py).

Each account's key comes from its own variable (`ANALYTICS_PROD_API_KEY`, ...) and its URL here
from Meltano's per-plugin variable (`TAP_ANALYTICS__PROD_BASE_URL`). The parent's variables
(`TAP_ANALYTICS_BASE_URL` / `_API_KEY`) are set to the staging fake with its right key the whole
time: a wrong staging key must still fail, so nothing falls back to the parent's key.

Checked: each account's output (target-dlt DuckDB file, target-jsonl--per-env folder,
target-postgres schema) equals its own fake's dump; state IDs differ per extractor; a wrong key
fails only that account's run and moves nothing; the next runs are incremental per account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from fake_api import DatasetConfig, FakeAPI
from tests.conftest import FakeHandle
from tests.e2e import test_meltano
from tests.e2e.test_meltano import (
    MeltanoProject,
    _assert_exactly,
    _duckdb_rows_of_last_load,
    assert_duckdb_equals_dump,
    copy_project,
    meltano_bin,
)
from tests.support import all_dumps, assert_equals_dump, json_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROD, STAGING = "tap-analytics--prod", "tap-analytics--staging"
WRONG = "sk-wrong-staging-SECRET-0000"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(project copy, meltano), `meltano install`ed once for the module."""
    meltano = meltano_bin()
    if meltano is None:
        pytest.skip("Meltano not found: set MELTANO_BIN or run `make meltano`")
    root = copy_project(tmp_path_factory.mktemp("meltano-accounts"))
    with FakeAPI(DatasetConfig()) as unused:  # MeltanoProject wants a fake; install calls none
        MeltanoProject(root=root, meltano=meltano, api=unused).run("install").check()
    return root, meltano


@pytest.fixture
def accounts(
    installed: tuple[Path, Path], fake_api_factory: Callable[..., FakeHandle]
) -> Iterator[tuple[MeltanoProject, Any, Any]]:
    """(project, prod fake, staging fake); the project's own variables point at staging."""
    prod = fake_api_factory(DatasetConfig(seed=31, applications=9), token="prod-token-A1")
    staging = fake_api_factory(DatasetConfig(seed=32, applications=4), token="staging-token-B2")
    root, meltano = installed
    assert isinstance(staging, FakeAPI)  # in this process (the factory's default)
    yield MeltanoProject(root=root, meltano=meltano, api=staging), prod, staging


def variables(prod: Any, staging: Any, staging_key: str | None = None) -> dict[str, str]:
    return {
        "TAP_ANALYTICS__PROD_BASE_URL": prod.url,
        "ANALYTICS_PROD_API_KEY": prod.token,
        "TAP_ANALYTICS__STAGING_BASE_URL": staging.url,
        "ANALYTICS_STAGING_API_KEY": staging_key or staging.token,
    }


def use_duckdb(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    """Point test_meltano's DuckDB readers at this account's file and dataset (target-dlt's
    duckdb_path and dataset_name follow the extractor's load_schema, `analytics_<account>`)."""
    monkeypatch.setattr(test_meltano, "DUCKDB_FILE", f"output/tap_analytics_{account}.duckdb")
    monkeypatch.setattr(test_meltano, "DATASET", f"analytics_{account}")


def jsonl_records(root: Path, account: str) -> dict[str, list[dict[str, Any]]]:
    folder = root / "output" / f"analytics_{account}"
    return {
        s.name: json_lines(path.read_text("utf-8"))
        if (path := folder / f"{s.name}.jsonl").exists()
        else []
        for s in STREAMS
    }


def test_target_dlt_one_file_and_state_per_account(
    accounts: tuple[MeltanoProject, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, prod, staging = accounts
    env = variables(prod, staging)
    for extractor in (PROD, STAGING):
        project.run("run", extractor, "target-dlt", label=f"dlt {extractor}", **env).check()
    for account, api in (("prod", prod), ("staging", staging)):
        use_duckdb(monkeypatch, account)
        assert_duckdb_equals_dump(project.root, all_dumps(api))
    assert not (project.root / "output" / "tap_analytics.duckdb").exists()
    prod_state = project.state(f"dev:{PROD}-to-target-dlt")
    staging_state = project.state(f"dev:{STAGING}-to-target-dlt")
    assert prod_state and staging_state and prod_state != staging_state

    # a wrong staging key fails staging only, and moves nothing of it
    mutated = prod.mutate(share=0.25, seed=5)
    staging.mutate(share=0.25, seed=5)
    use_duckdb(monkeypatch, "staging")
    staging_before = test_meltano.duckdb_tables(project.root)
    wrong = project.run("run", STAGING, "target-dlt", **variables(prod, staging, WRONG))
    assert wrong.returncode != 0, wrong.output[-3000:]
    assert WRONG not in wrong.output
    assert project.state(f"dev:{STAGING}-to-target-dlt") == staging_state
    assert test_meltano.duckdb_tables(project.root) == staging_before

    # prod's next run is incremental: exactly the mutated records travel
    project.run("run", PROD, "target-dlt", label="dlt prod incremental", **env).check()
    use_duckdb(monkeypatch, "prod")
    assert_duckdb_equals_dump(project.root, all_dumps(prod))
    assert _duckdb_rows_of_last_load(project.root) == {k: sorted(v) for k, v in mutated.items()}
    assert project.state(f"dev:{PROD}-to-target-dlt") != prod_state

    project.run("run", STAGING, "target-dlt", label="dlt staging after fix", **env).check()
    use_duckdb(monkeypatch, "staging")
    assert_duckdb_equals_dump(project.root, all_dumps(staging))


def test_target_jsonl_one_folder_per_account(
    accounts: tuple[MeltanoProject, Any, Any],
) -> None:
    project, prod, staging = accounts
    env = variables(prod, staging)
    loader = "target-jsonl--per-env"
    for extractor in (PROD, STAGING):
        project.run("run", extractor, loader, label=f"jsonl {extractor}", **env).check()
    assert_equals_dump(jsonl_records(project.root, "prod"), all_dumps(prod))
    assert_equals_dump(jsonl_records(project.root, "staging"), all_dumps(staging))
    assert not list((project.root / "output").glob("*.jsonl"))  # nothing in tap-analytics' place

    mutated = prod.mutate(share=0.2, seed=8)
    for path in (project.root / "output" / "analytics_prod").glob("*.jsonl"):
        path.unlink()
    project.run("run", PROD, loader, label="jsonl prod incremental", **env).check()
    _assert_exactly(jsonl_records(project.root, "prod"), mutated, all_dumps(prod))


def test_target_postgres_one_schema_per_account(
    accounts: tuple[MeltanoProject, Any, Any], postgres: Any
) -> None:
    project, prod, staging = accounts
    database = postgres.create_database("accounts")
    target = {
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": postgres.password,
        "TARGET_POSTGRES_DATABASE": database,
    }
    env = {**variables(prod, staging), **target}
    project.run("run", PROD, "target-postgres", label="postgres prod", **env).check()
    schemas = postgres.query(database, "select schema_name from information_schema.schemata")
    assert "analytics_prod" in {r[0] for r in schemas} and "analytics" not in {
        r[0] for r in schemas
    }
    for stream in STREAMS:
        key = stream.primary_key
        got = postgres.query(database, f'select "{key}" from analytics_prod."{stream.name}"')
        assert sorted(r[0] for r in got) == sorted(r[key] for r in prod.dump(stream.name))
