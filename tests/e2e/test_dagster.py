"""The Dagster code location (`analytics_dagster`) end to end, through the `dagster` CLI.

Each test writes an environments file for two or three local fake APIs (in this process, each
with its own data and its own key), and runs `dagster definitions validate` and `dagster asset
materialize --partition <name>` as subprocesses with a temporary DAGSTER_HOME, a temporary
working directory (where the `analytics_<name>.duckdb` files appear) and each environment's key
in the child's environment only. Tables are compared with each fake's ground truth using
test_meltano's DuckDB helpers (tests/e2e/dagster_support.py points them at each file).

Dagster lives in its own virtualenv: `$DAGSTER_BIN`, else `.venv-dagster/bin/dagster` (`make
dagster`, which `make test-all` runs). Without it these tests fail, saying how to create it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from analytics_api.streams import STREAMS
from fake_api import DatasetConfig, FaultRule
from tests.e2e import test_bridge_postgres
from tests.e2e.bridge_support import count, load_ids
from tests.e2e.dagster_support import (
    REPO,
    Environment,
    Workspace,
    assert_equals_dump,
    dagster_bin,
    reading,
    rows_of_last_load,
    tables_of,
)
from tests.e2e.deletes_support import assert_live_rows_equal_dump, deleted_keys
from tests.e2e.test_bridge_postgres import Target
from tests.e2e.test_run_guard import HeldAPI
from tests.postgres import PostgresCluster
from tests.support import all_dumps

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = [s.name for s in STREAMS]

# Two small, different accounts: ~45 and ~40 records, every stream non-empty.
PROD_DATA = DatasetConfig(
    seed=31,
    applications=5,
    endpoints_per_app=2,
    integrations_per_app=1,
    event_types=6,
    tokens=3,
    ingest_sources=2,
    endpoints_per_source=2,
    webhook_endpoints=3,
)
STAGING_DATA = DatasetConfig(
    seed=32,
    applications=4,
    endpoints_per_app=1,
    integrations_per_app=2,
    event_types=5,
    tokens=2,
    ingest_sources=3,
    endpoints_per_source=1,
    webhook_endpoints=2,
)
WRONG_KEY = "sk-wrong-key-31337"

Factory = Callable[..., Workspace]


@pytest.fixture
def workspace(tmp_path: Any, fake_api_factory: Any) -> Iterator[Factory]:
    """`workspace(prod={...}, staging={...})`: fakes for the named environments and a Workspace.

    Each keyword names an environment; its value holds that environment's file options. Names
    ending in `staging` get STAGING_DATA, others PROD_DATA; each fake has a key of its own.
    """
    made: list[Workspace] = []
    dagster = dagster_bin()

    def make(**environments: dict[str, Any]) -> Workspace:
        entries = []
        for name, options in environments.items():
            data = STAGING_DATA if name.endswith("staging") else PROD_DATA
            api = fake_api_factory(data, token=f"sk-{name}-0a1b2c3d4e5f")
            entries.append(Environment(name, api, dict(options)))
        ws = Workspace(tmp_path / f"ws{len(made)}", dagster, entries)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        if ws.timings:
            print(
                "\nDagster timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in ws.timings.items())
            )


ORCHESTRATION_DOC = REPO / "docs" / "orchestration.md"


def doc_block(marker: str) -> str:
    """The fenced block after `<!-- test_dagster: <marker> -->` in docs/orchestration.md."""
    text = ORCHESTRATION_DOC.read_text("utf-8")
    after = text.split(f"<!-- test_dagster: {marker} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


def _keys(dump: dict[str, list[dict[str, Any]]]) -> set[Any]:
    return {r[s.primary_key] for s in STREAMS for r in dump[s.name]}


def _sorted(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Tables in a form that compares whole contents, whatever order the rows came in."""
    return {
        name: sorted(repr(sorted(row.items())) for row in rows) for name, rows in tables.items()
    }


def _environment(ws: Workspace, name: str) -> Environment:
    return next(e for e in ws.environments if e.name == name)


def _assert_no_secret(ws: Workspace, output: str) -> None:
    for secret in [WRONG_KEY, *(e.api.token for e in ws.environments)]:
        assert secret not in output


# --------------------------------------------------------------------------------------------


def test_each_partition_loads_its_own_environment_into_its_own_file(workspace: Factory) -> None:
    ws = workspace(prod={}, staging={})
    prod, staging = (_environment(ws, n).api for n in ("prod", "staging"))
    assert not _keys(all_dumps(prod)) & _keys(all_dumps(staging))  # nothing shared to hide

    # definitions load with the file alone: no key variable set
    ws.validate(env=ws.env(keys=False), label="validate (no keys)").check()

    for name in ("prod", "staging"):
        result = ws.materialize(name, label=f"materialize {name}").check()
        assert f"environment '{name}': loading into" in result.output
        _assert_no_secret(ws, result.output)
    assert ws.duckdb_files() == ["analytics_prod.duckdb", "analytics_staging.duckdb"]
    assert_equals_dump(ws, "prod", all_dumps(prod))
    assert_equals_dump(ws, "staging", all_dumps(staging))
    # each fake saw its own key only: no request was refused
    for api in (prod, staging):
        assert set(api.stats()["by_status"]) == {"200"}, api.stats()["by_status"]

    # the documented union view over both files (docs/orchestration.md)
    import duckdb

    sql = doc_block("duckdb-union").replace("'analytics_", f"'{ws.workdir}/analytics_")
    with duckdb.connect(":memory:") as con:
        *setup, query = [part for part in sql.split(";") if part.strip()]
        for statement in setup:
            con.execute(statement)
        counted = con.execute(query).fetchall()
    assert counted == [
        (n, len(_environment(ws, n).api.dump("applications"))) for n in ("prod", "staging")
    ]


def test_a_failing_environment_fails_its_partition_alone(workspace: Factory) -> None:
    ws = workspace(prod={}, staging={}, dev={})
    dev = _environment(ws, "dev").api
    dev.add_fault_rule(FaultRule("503", "/v1/app"))  # down beyond every retry

    missing = ws.materialize(
        "prod", label="materialize prod (no key)", env=ws.env(ANALYTICS_PROD_API_KEY=None)
    )
    assert missing.returncode != 0
    assert (
        "environment 'prod', field 'api_key_env': variable ANALYTICS_PROD_API_KEY is not set"
        in missing.output
    ), missing.output[-3000:]

    _environment(ws, "prod").key = WRONG_KEY
    wrong = ws.materialize("prod", label="materialize prod (wrong key)")
    assert wrong.returncode != 0
    assert "environment 'prod': stream " in wrong.output and "HTTP 401" in wrong.output
    assert "read from the variable ANALYTICS_PROD_API_KEY" in wrong.output
    assert wrong.output.count("environment 'prod': loading into") == 1  # a wrong key: no retry
    _assert_no_secret(ws, wrong.output)

    down = ws.materialize(
        "dev", label="materialize dev (API down)", env=ws.env(ANALYTICS_RETRIES="1")
    )
    assert down.returncode != 0
    assert down.output.count("environment 'dev': loading into") == 2  # retried once, then failed
    # applications, endpoints and integrations all read /v1/app: any of them may give up first
    assert re.search(r"environment 'dev': stream '\w+', GET /v1/app: giving up", down.output)
    _assert_no_secret(ws, down.output)

    ok = ws.materialize("staging", label="materialize staging").check()
    _assert_no_secret(ws, ok.output)
    assert_equals_dump(ws, "staging", all_dumps(_environment(ws, "staging").api))
    for name in ("prod", "dev"):  # the failed environments loaded nothing
        if ws.duckdb_file(name).exists():
            with reading(ws, name) as folder:
                assert not any(count(folder, n) for n in NAMES), name


def test_a_second_materialization_loads_only_what_changed(workspace: Factory) -> None:
    ws = workspace(prod={}, staging={})
    prod = _environment(ws, "prod").api
    ws.materialize("prod", label="materialize prod (full)").check()
    assert_equals_dump(ws, "prod", all_dumps(prod))

    mutated = prod.mutate(share=0.3, seed=4)
    assert all(mutated.values()), mutated
    ws.materialize("prod", label="materialize prod (incremental)").check()
    assert_equals_dump(ws, "prod", all_dumps(prod))  # new values and new tokens arrived
    # only the mutated records travelled: they are exactly the rows of the newest load
    assert rows_of_last_load(ws, "prod") == {k: sorted(v) for k, v in mutated.items()}
    assert ws.duckdb_files() == ["analytics_prod.duckdb"]  # staging never ran, nothing of it


def test_deletions_change_only_their_own_environment(workspace: Factory) -> None:
    ws = workspace(prod={"deletes": "hard"}, staging={"deletes": "soft"})
    prod, staging = (_environment(ws, n).api for n in ("prod", "staging"))
    for name in ("prod", "staging"):
        ws.materialize(name, label=f"materialize {name} (first)").check()
    staging_before = _sorted(tables_of(ws, "staging"))

    gone = prod.delete_records(share=0.3, seed=3)
    assert all(gone.values()), gone
    ws.materialize("prod", label="materialize prod (hard deletes)").check()
    assert_equals_dump(ws, "prod", all_dumps(prod))  # the deleted rows are gone
    assert _sorted(tables_of(ws, "staging")) == staging_before
    prod_after = _sorted(tables_of(ws, "prod"))

    marked = staging.delete_records(share=0.3, seed=5)
    ws.materialize("staging", label="materialize staging (soft deletes)").check()
    with reading(ws, "staging") as folder:
        assert_live_rows_equal_dump(folder, staging)
        for name in NAMES:
            assert deleted_keys(folder, name) == set(marked[name]), name
    assert _sorted(tables_of(ws, "prod")) == prod_after


def test_loading_fails_clearly_on_a_bad_file_or_setting(workspace: Factory) -> None:
    ws = workspace(prod={})

    unset = ws.validate(env=ws.env(ANALYTICS_ENVIRONMENTS=None))
    assert unset.returncode != 0
    assert "ANALYTICS_ENVIRONMENTS is not set" in unset.output, unset.output[-3000:]

    prod = _environment(ws, "prod")
    bad = dict(prod.entry(), page_size=999, api_key=prod.api.token)
    ws.environments_file.write_text(json.dumps({"environments": [bad, bad]}), "utf-8")
    invalid = ws.validate(label="validate (bad file)")
    assert invalid.returncode != 0
    for problem in (
        "environment 'prod', field 'api_key': keys do not go in this file",
        "environment 'prod', field 'name': duplicate",
        "setting 'page_size'",
    ):
        assert problem in invalid.output, invalid.output[-3000:]
    _assert_no_secret(ws, invalid.output)

    ws.write_file()
    schedule = ws.validate(env=ws.env(ANALYTICS_SCHEDULE="every hour"))
    assert schedule.returncode != 0
    assert "ANALYTICS_SCHEDULE: not a cron expression" in schedule.output


SCHEDULE_PROBE = """
import json
from datetime import datetime, timezone
from dagster import build_schedule_context
import analytics_dagster

repository = analytics_dagster.defs.get_repository_def()
schedule = repository.get_schedule_def("analytics_schedule")
at = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
tick = schedule.evaluate_tick(
    build_schedule_context(repository_def=repository, scheduled_execution_time=at)
)
job = repository.get_job("analytics_job")
print("PROBE " + json.dumps({
    "cron": schedule.cron_schedule,
    "timezone": schedule.execution_timezone,
    "status": schedule.default_status.value,
    "runs": [
        (r.partition_key, r.tags["analytics/environment"], r.run_key) for r in tick.run_requests
    ],
    "job_partitions": job.partitions_def.get_partition_keys(),
    "assets": sorted(k.to_user_string() for k in repository.asset_graph.get_all_asset_keys()),
    "executor": job.executor_def.name,
}))
"""


def _probe(result: Any) -> dict[str, Any]:
    lines = [line for line in result.check().output.splitlines() if line.startswith("PROBE ")]
    assert lines, result.output[-3000:]
    return json.loads(lines[-1][len("PROBE ") :])


def test_schedule_runs_every_environment_hourly_or_as_configured(workspace: Factory) -> None:
    ws = workspace(prod={}, staging={})
    default = _probe(ws.python(SCHEDULE_PROBE, env=ws.env(keys=False)))
    assert default == {
        "cron": "0 * * * *",
        "timezone": "UTC",
        "status": "STOPPED",
        "runs": [  # one run per environment
            ["prod", "prod", "prod@2026-01-02T03:00:00+00:00"],
            ["staging", "staging", "staging@2026-01-02T03:00:00+00:00"],
        ],
        "job_partitions": ["prod", "staging"],
        # the eight tables and nothing else (no upstream placeholder assets)
        "assets": sorted(f"analytics/{n}" for n in NAMES),
        "executor": "in_process",
    }
    custom = _probe(
        ws.python(SCHEDULE_PROBE, env=ws.env(keys=False, ANALYTICS_SCHEDULE="*/15 * * * *"))
    )
    assert custom["cron"] == "*/15 * * * *"


def test_a_server_destination_gets_one_dataset_per_environment(
    workspace: Factory, postgres: PostgresCluster, tmp_path: Path
) -> None:
    """PostgreSQL: `analytics_<name>` per environment. `eu` merges through a staging dataset
    that must not be `eu_staging`'s own dataset (dlt's default `<dataset>_staging`)."""
    ws = workspace(eu={"deletes": "hard"}, eu_staging={})
    eu, eu_staging = (_environment(ws, n).api for n in ("eu", "eu_staging"))
    target = Target(postgres, tmp_path / "postgres")  # a database of this test's own
    env = ws.env(
        ANALYTICS_DESTINATION="postgres",
        DESTINATION__POSTGRES__CREDENTIALS=postgres.dsn(target.database),
    )
    ws.materialize("eu_staging", env=env, label="postgres: eu_staging").check()
    ws.materialize("eu", env=env, label="postgres: eu").check()
    eu.mutate(share=0.3, seed=2)
    eu.delete_records(share=0.2, seed=4)
    ws.materialize("eu", env=env, label="postgres: eu (merge, deletes)").check()

    assert not ws.duckdb_files()
    for name, api in (("eu", eu), ("eu_staging", eu_staging)):
        with mock.patch.object(test_bridge_postgres, "DATASET", f"analytics_{name}"):
            assert target.tables() >= set(NAMES), name
            target.assert_tables_equal_dump(all_dumps(api))

    # the documented union view (docs/orchestration.md), for these two environments
    view = doc_block("postgres-union")
    for old, new in (
        ("analytics_staging", "analytics_eu_staging"),
        ("analytics_prod", "analytics_eu"),
        ("'staging'", "'eu_staging'"),
        ("'prod'", "'eu'"),
    ):
        view = view.replace(old, new)
    target.query(view)
    counted = target.query(
        "SELECT environment, count(*) FROM analytics_all.applications GROUP BY 1 ORDER BY 1"
    )
    assert counted == [
        ("eu", len(eu.dump("applications"))),
        ("eu_staging", len(eu_staging.dump("applications"))),
    ]


def test_the_documented_instance_configuration_loads(workspace: Factory) -> None:
    """docs/orchestration.md's dagster.yaml (run queue limits, run retries) is valid config."""
    ws = workspace(prod={})
    (ws.home / "dagster.yaml").write_text(doc_block("dagster.yaml"), "utf-8")
    info = ws.run("instance", "info", label="instance info").check()
    assert "retry_on_asset_or_op_failure: false" in info.output
    queue = _probe(ws.python(QUEUE_PROBE, env=ws.env(keys=False), label="queue probe"))
    limit = {"value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert queue == {
        "coordinator": "QueuedRunCoordinator",
        "threads": True,
        "workers": 4,
        "max_runs": 4,
        "limits": [
            {"key": "dagster/partition", **limit},
            {"key": "dagster/asset_partition_range_start", **limit},
        ],
    }


QUEUE_PROBE = """
import json
from dagster import DagsterInstance

with DagsterInstance.get() as instance:
    coordinator = instance.run_coordinator
    config = coordinator.get_run_queue_config()
    print("PROBE " + json.dumps({
        "coordinator": type(coordinator).__name__,
        "threads": coordinator.dequeue_use_threads,
        "workers": coordinator.dequeue_num_workers,
        "max_runs": config.max_concurrent_runs,
        "limits": config.tag_concurrency_limits,
    }))
"""


RUNS_PROBE = """
import json, os, time
from dagster import DagsterInstance, DagsterRunStatus

expected = int(os.environ["PROBE_RUNS"])
done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
deadline = time.monotonic() + 240
with DagsterInstance.get() as instance:
    while True:  # until every launched run has ended (the daemon runs them)
        records = instance.get_run_records()
        if len(records) >= expected and all(r.dagster_run.status in done for r in records):
            break
        assert time.monotonic() < deadline, [r.dagster_run.status for r in records]
        time.sleep(0.5)
    runs = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        messages = " ".join(e.user_message or "" for e in instance.all_logs(run.run_id))
        runs.append({
            "tags": {k: v for k, v in run.tags.items() if k.startswith("dagster/")
                     and "partition" in k},
            "status": run.status.value,
            "start": record.start_time,
            "end": record.end_time,
            "busy": "already loading" in messages,
        })
print("PROBE " + json.dumps(runs))
"""


def test_the_documented_instance_overlaps_environments_one_run_each(workspace: Factory) -> None:
    """The documented dagster.yaml with the daemon: runs of three environments load at the same
    time (each fake holds its requests until all three have arrived), while a second run of an
    environment, as a job run (`dagster/partition`) or as an asset backfill's run
    (`dagster/asset_partition_range_start`), waits in the queue until the first has ended."""
    ws = workspace(a={}, b={}, c={})
    (ws.home / "dagster.yaml").write_text(doc_block("dagster.yaml"), "utf-8")
    apis = {name: _environment(ws, name).api for name in ("a", "b", "c")}
    job_run = {"dagster/partition": "a"}
    backfill_run = {
        "dagster/asset_partition_range_start": "c",
        "dagster/asset_partition_range_end": "c",
    }
    queue = [job_run, {"dagster/partition": "b"}, job_run, backfill_run, backfill_run]
    with (
        HeldAPI(apis["a"]) as held_a,
        HeldAPI(apis["b"]) as held_b,
        HeldAPI(apis["c"]) as held_c,
    ):
        # the instance's storage first: the daemon and the first launch creating it at once race
        ws.run("instance", "migrate", label="instance migrate").check()
        daemon = ws.start("run", "-m", "analytics_dagster", program="dagster-daemon")
        try:
            for tags in queue:
                launch = ("job", "launch", "-m", "analytics_dagster", "-j", "analytics_job")
                ws.run(*launch, "--tags", json.dumps(tags), label="job launch").check()
            for held in (held_a, held_b, held_c):  # all three environments loading at once
                held.wait_reached(daemon.proc)
            for held in (held_a, held_b, held_c):
                held.let_go()
            env = ws.env(keys=False, PROBE_RUNS=str(len(queue)))
            runs = _probe(ws.python(RUNS_PROBE, env=env, label="runs probe"))
        finally:
            daemon.stop()
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(queue), runs
    assert not any(r["busy"] for r in runs)  # the queue kept them apart: no run was skipped
    first_a, second_a = runs[0], runs[2]
    first_c, second_c = runs[3], runs[4]
    assert second_a["start"] >= first_a["end"], runs
    assert second_c["start"] >= first_c["end"], runs
    for name, api in apis.items():
        assert_equals_dump(ws, name, all_dumps(api))


# -- one run per environment at a time (analytics_dlt.guard) ----------------------------------

JOB_RUN_TAGS = {"dagster/partition": "prod"}
"""How a schedule tick, a job backfill or the UI's job launch tags a run of partition prod."""
ASSET_BACKFILL_TAGS = {
    "dagster/asset_partition_range_start": "prod",
    "dagster/asset_partition_range_end": "prod",
}
"""How an asset backfill ("Materialize all") tags its run of partition prod instead."""
BUSY = re.compile(
    r"environment 'prod' is already loading since \d\d:\d\d:\d\d \(Dagster run \w{8}, pid \d+ on"
    r" host \S+\); this run did nothing \(skipped\)"
)


def _job_run(ws: Workspace, tags: dict[str, str], **kw: Any) -> Any:
    return ws.run(
        "job", "execute", "-m", "analytics_dagster", "-j", "analytics_job", "--tags",
        json.dumps(tags), **kw,
    )  # fmt: skip


def _assert_skipped(result: Any) -> None:
    """The run succeeded, materialized nothing, spent no retry and printed no traceback."""
    result.check()
    assert BUSY.search(result.output), result.output[-3000:]
    for event in ("ASSET_MATERIALIZATION", "STEP_UP_FOR_RETRY", "STEP_FAILURE", "Traceback"):
        assert event not in result.output, event


def _loads(ws: Workspace, name: str) -> list[str]:
    with reading(ws, name) as folder:
        return load_ids(folder)


def test_a_second_run_of_an_environment_from_any_launch_path_is_skipped(
    workspace: Factory,
) -> None:
    """`dagster asset materialize` holds prod (its requests held by the fake); a job run of
    prod (schedule, job backfill) and an asset backfill's run of prod start meanwhile: each is
    skipped, and the first loads prod exactly once."""
    ws = workspace(prod={})
    prod = _environment(ws, "prod").api
    with HeldAPI(prod) as held:
        first = ws.start(*ws.materialize_args("prod"))
        held.wait_reached(first.proc)  # the first run holds prod's guard
        as_job = _job_run(ws, JOB_RUN_TAGS, label="job run of prod (busy)")
        as_backfill = _job_run(ws, ASSET_BACKFILL_TAGS, label="asset backfill run (busy)")
        held.let_go()
        loaded = first.wait().check()
    for second in (as_job, as_backfill):
        _assert_skipped(second)
    assert "STEP_UP_FOR_RETRY" not in loaded.output
    assert_equals_dump(ws, "prod", all_dumps(prod))
    assert len(_loads(ws, "prod")) == 1  # one load, one state: the first run's

    # nothing held any more: the asset backfill's kind of run loads prod itself
    prod.mutate(share=0.3, seed=6)
    _job_run(ws, ASSET_BACKFILL_TAGS, label="asset backfill run").check()
    assert_equals_dump(ws, "prod", all_dumps(prod))
    assert len(_loads(ws, "prod")) == 2


def test_two_pods_of_one_environment_on_one_schema_load_it_once(
    workspace: Factory, postgres: PostgresCluster, tmp_path: Path
) -> None:
    """Runs on two machines: separate dlt folders (DLT_DATA_DIR), one PostgreSQL schema. The
    dataset's advisory lock skips the second; the first loads the schema exactly."""
    ws = workspace(prod={})
    prod = _environment(ws, "prod").api
    target = Target(postgres, tmp_path / "postgres")
    # the server for every account, and this account's own password in a variable scoped to
    # its pipeline (docs/orchestration.md): the guard's lock session resolves it as dlt does
    server = {
        "ANALYTICS_DESTINATION": "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS": (
            f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}/{target.database}"
        ),
        "ANALYTICS_PROD__DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": postgres.password,
    }
    pod_a = ws.env(**server, DLT_DATA_DIR=str(ws.root / "pod-a"))
    pod_b = ws.env(**server, DLT_DATA_DIR=str(ws.root / "pod-b"))
    with HeldAPI(prod) as held:
        first = ws.start(*ws.materialize_args("prod"), env=pod_a)
        held.wait_reached(first.proc)
        second = ws.materialize("prod", env=pod_b, label="postgres: prod on pod b (busy)")
        held.let_go()
        first.wait().check()
    _assert_skipped(second)
    with mock.patch.object(test_bridge_postgres, "DATASET", "analytics_prod"):
        target.assert_tables_equal_dump(all_dumps(prod))
        assert target.query("SELECT count(*) FROM analytics_prod._dlt_loads") == [(1,)]


FAILURE_PROBE = """
import json, os
import psycopg2
from dlt.common.destination.exceptions import SchemaUpdateError
from dlt.destinations.exceptions import DatabaseTerminalException
from analytics_dagster.failures import is_transient

def error(sql):
    connection = psycopg2.connect(os.environ["PROBE_DSN"])
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    except psycopg2.Error as exc:
        return exc
    finally:
        connection.close()

def wrapped(cause, schema_update=True):
    inner = DatabaseTerminalException(cause)
    error = SchemaUpdateError.from_cause("analytics", [], inner) if schema_update else inner
    try:
        try:
            raise error
        except Exception as exc:
            raise RuntimeError("Pipeline execution failed at `step=load`") from exc
    except RuntimeError as outer:
        return outer

duplicate = error("CREATE TEMP TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)")
syntax = error("SELEC 1")
print("PROBE " + json.dumps({
    "schema race": is_transient(wrapped(duplicate)),
    "schema update refused": is_transient(wrapped(syntax)),
    "duplicate rows": is_transient(wrapped(duplicate, schema_update=False)),
    "race class": type(wrapped(duplicate).__cause__).__name__,
}))
"""


def test_the_schema_creation_race_is_retried_other_schema_errors_are_not(
    workspace: Factory, postgres: PostgresCluster
) -> None:
    """dlt's SchemaUpdateTerminalError caused by PostgreSQL's unique violation (two runs
    creating one schema at once; dlt says a retry is safe) is transient; a schema update the
    server refuses, and a unique violation outside a schema update, stay final."""
    ws = workspace(prod={})
    env = ws.env(keys=False, PROBE_DSN=postgres.dsn())
    assert _probe(ws.python(FAILURE_PROBE, env=env)) == {
        "schema race": True,
        "schema update refused": False,
        "duplicate rows": False,
        "race class": "SchemaUpdateTerminalError",
    }
