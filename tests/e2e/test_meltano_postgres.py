"""`meltano run tap-analytics target-postgres` (MeltanoLabs target-postgres, pinned in
meltano.yml, installed from PyPI without the Hub) with deletions, on a real PostgreSQL.

The project is copied to a temporary folder as in tests/e2e/test_meltano.py; in the copy the
extractor is put into the deletion mode a user turns on (docs/deletions.md): every stream
`replication-method: FULL_TABLE` and `emit_activate_version_messages: true`. The loader keeps
meltano.yml's `load_method: upsert` and its stream map (the `endpoints` stream's `version`
becomes `endpoint_version`); `hard_delete` is meltano.yml's `true` or, for soft deletes,
`TARGET_POSTGRES_HARD_DELETE=false`. Each test's database is kept in UTC, as docs/deletions.md
says (the target stores timestamps without time zone). Against the fake API and the session's
throwaway cluster (the `postgres` fixture, tests/postgres.py):

* a first run loads tables equal to the fake's dump; after `api.delete_records(...)` a second
  run deletes (`hard_delete: true`) or marks with `_sdc_deleted_at` (`false`) exactly the rows
  the fake deleted: the live rows equal the new dump, the marked ones keep their last values;
* a run that fails part-way (one child path answers 503 beyond the retry budget) deletes
  nothing that still exists upstream, nothing at all from the failed stream, and the next run
  catches up exactly.

This proves the tap's ACTIVATE_VERSION (one per stream, after its complete scan, none for a
failed scan) is what a standard singer-sdk SQL target expects.

The database credentials reach Meltano (and so the target) only through the child process's
environment (`TARGET_POSTGRES_*`). These tests never skip for a missing Meltano: they fail and
say how to install it (`make meltano`; `make test-all` does it). PostgreSQL: see the fixture.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from analytics_api.streams import STREAMS, STREAMS_BY_NAME, child_path
from fake_api import DatasetConfig, FakeAPI, FaultRule, parse_ts
from tests.e2e.test_meltano import REPO, Result, copy_project
from tests.e2e.test_meltano import meltano_bin as find_meltano
from tests.postgres import PostgresCluster
from tests.support import all_dumps, normalized, run_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


SCHEMA = "analytics"  # target-postgres's `default_target_schema` in meltano.yml
RENAMED = {"endpoints": {"version": "endpoint_version"}}
"""Columns meltano.yml's stream map on target-postgres renames: stream -> {property: column}."""
DELETED_AT = "_sdc_deleted_at"  # set by the target on rows of older versions (soft deletes)
TIMEOUT = 600  # seconds for one Meltano command (a cold install of the target takes ~30 s)
DATASET = DatasetConfig(seed=11)

# Variables of the developer's shell that would leak into the project under test.
_FOREIGN_PREFIXES = (
    "MELTANO_",
    "TAP_ANALYTICS_",
    "TARGET_POSTGRES_",
    "TARGET_JSONL_",
    "TARGET_DLT_",
    "DESTINATION__",
    "DLT_BRIDGE_",
    "PG",
)
_FOREIGN_NAMES = ("VIRTUAL_ENV", "PYTHONPATH", "DATABASE_URL")


def meltano_bin() -> Path:
    """`$MELTANO_BIN`, else `.venv-meltano/bin/meltano`; fails (never skips) without either."""
    found = find_meltano()
    if found is not None:
        return found
    pytest.fail(
        "Meltano not found: set MELTANO_BIN or run `make meltano` (python3 -m venv .venv-meltano"
        ' && .venv-meltano/bin/pip install "meltano~=4.4"); `make test-all` installs it',
        pytrace=False,
    )


def deletion_mode(meltano_yml: Path) -> None:
    """Put the copy's extractor into the documented deletion mode (docs/deletions.md)."""
    project = yaml.safe_load(meltano_yml.read_text("utf-8"))
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-analytics"]
    tap.setdefault("config", {})["emit_activate_version_messages"] = True
    tap["metadata"] = {"*": {"replication-method": "FULL_TABLE"}}
    meltano_yml.write_text(yaml.safe_dump(project, sort_keys=False), "utf-8")


@dataclass
class MeltanoProject:
    root: Path
    meltano: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(
        self, *args: str, label: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        child_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES
        }
        child_env.update(
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            RUNTIME__DLTHUB_TELEMETRY="false",
            NO_COLOR="1",
            **(env or {}),
        )
        argv = [str(self.meltano), "--log-format=uncolored", *args]
        result = run_command(
            argv, cwd=self.root, env=child_env, timeout=TIMEOUT, shown=["meltano", *args]
        )
        if label:
            self.timings[label] = result.seconds
        return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeltanoProject]:
    """The project copied to a temporary folder, in deletion mode, with the extractor and
    target-postgres installed (uv's cache makes reinstalls take seconds)."""
    meltano = meltano_bin()
    root = copy_project(tmp_path_factory.mktemp("meltano-postgres"))
    deletion_mode(root / "meltano.yml")
    project = MeltanoProject(root=root, meltano=meltano)
    project.run("install", "tap-analytics", "target-postgres", label="meltano install").check()
    yield project
    print("\nMeltano timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in project.timings.items()))


@dataclass
class Database:
    """One test's database on the session's cluster, and the runs that load into it."""

    cluster: PostgresCluster
    project: MeltanoProject
    name: str

    hard_delete: bool = True

    def meltano_run(self, api: FakeAPI, label: str) -> Result:
        """`meltano run tap-analytics target-postgres`; the fake's URL and key and the database's
        credentials only in the child's environment. `max_retries: 0` keeps a failure quick."""
        return self.project.run(
            "run",
            "tap-analytics",
            "target-postgres",
            label=label,
            env={
                "TAP_ANALYTICS_BASE_URL": api.url,
                "TAP_ANALYTICS_API_KEY": api.token,
                "TAP_ANALYTICS_MAX_RETRIES": "0",
                "TARGET_POSTGRES_HOST": self.cluster.host,
                "TARGET_POSTGRES_PORT": str(self.cluster.port),
                "TARGET_POSTGRES_USER": self.cluster.user,
                "TARGET_POSTGRES_PASSWORD": self.cluster.password,
                "TARGET_POSTGRES_DATABASE": self.name,
                "TARGET_POSTGRES_HARD_DELETE": str(self.hard_delete).lower(),
            },
        )

    def rows(self, stream: str, live: bool = False) -> list[dict[str, Any]]:
        """The stream's table as JSON objects (column name -> value); [] without a table.
        `live`: only the rows not marked deleted."""
        if not self.columns(stream):
            return []
        where = f" where {DELETED_AT} is null" if live else ""
        found = self.cluster.query(
            self.name, f'select row_to_json(t)::text from {SCHEMA}."{stream}" t{where}'
        )
        return [json.loads(r[0]) for r in found]

    def columns(self, stream: str) -> set[str]:
        """The stream's table's column names (none without a table)."""
        found = self.cluster.query(
            self.name,
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s",
            [SCHEMA, stream],
        )
        return {r[0] for r in found}

    def records(self, stream: str, live: bool = False) -> dict[str, dict[str, Any]]:
        """The table keyed by primary key, each row on the schema's properties (compare_form)."""
        definition = STREAMS_BY_NAME[stream]
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows(stream, live):
            record = from_row(stream, row)
            key = record[definition.primary_key]
            assert key not in out, f"{stream}: key {key} twice in the table"
            out[key] = record
        return out

    def tables(self, live: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
        return {s.name: self.records(s.name, live) for s in STREAMS}

    def marked(self) -> dict[str, set[str]]:
        """Per stream, the keys the target marked deleted (`_sdc_deleted_at` set)."""
        out: dict[str, set[str]] = {}
        for stream in STREAMS:
            out[stream.name] = set()
            if DELETED_AT in self.columns(stream.name):
                found = self.cluster.query(
                    self.name,
                    f'select "{stream.primary_key}" from {SCHEMA}."{stream.name}"'
                    f" where {DELETED_AT} is not null",
                )
                out[stream.name] = {r[0] for r in found}
        return out


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def from_row(stream: str, row: dict[str, Any]) -> dict[str, Any]:
    """A table row as a record of the schema's properties in comparable form (`compare_form`).

    The target names columns after the properties in snake_case (`createdAt` -> `created_at`);
    they are matched ignoring case and underscores, after meltano.yml's stream map (`RENAMED`).
    `_sdc_*` columns are left out."""
    properties = STREAMS_BY_NAME[stream].schema["properties"]
    renamed = RENAMED.get(stream, {})
    columns = {_squash(c): c for c in row if not c.startswith("_sdc_")}
    record = {p: row.get(columns.get(_squash(renamed.get(p, p)), "")) for p in properties}
    return compare_form(stream, record, from_postgres=True)


def compare_form(
    stream: str, record: dict[str, Any], from_postgres: bool = False
) -> dict[str, Any]:
    """Every declared property (missing -> null); timestamps as microseconds since the epoch
    (PostgreSQL keeps microseconds; the API sends 0..9 fractional digits)."""
    properties = STREAMS_BY_NAME[stream].schema["properties"]
    out = normalized(stream, record)
    for prop, value in out.items():
        if isinstance(value, str) and properties[prop].get("format") == "date-time":
            if from_postgres:  # row_to_json of a timestamp without time zone, kept in UTC
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
                out[prop] = round(moment.timestamp() * 1_000_000)
            else:
                out[prop] = parse_ts(value) // 1000
    return out


def dump_records(api: FakeAPI) -> dict[str, dict[str, dict[str, Any]]]:
    dumps = all_dumps(api)
    return {
        s.name: {r[s.primary_key]: compare_form(s.name, r) for r in dumps[s.name]} for s in STREAMS
    }


def assert_same_record(stream: str, key: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    for prop, wanted in want.items():
        value = got[prop]
        where = f"{stream} {key} {prop}: {value!r} != {wanted!r}"
        is_time = STREAMS_BY_NAME[stream].schema["properties"][prop].get("format") == "date-time"
        if is_time and isinstance(value, int) and isinstance(wanted, int):
            assert abs(value - wanted) <= 1, where  # 7..9 fractional digits may round either way
            continue
        assert value == wanted, where


def assert_tables_equal(
    tables: dict[str, dict[str, dict[str, Any]]], dump: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Every stream's table holds exactly the dump's keys, with the dump's values."""
    for stream in STREAMS:
        got, want = tables[stream.name], dump[stream.name]
        assert sorted(got) == sorted(want), f"{stream.name}: other keys than the dump"
        for key, record in want.items():
            assert_same_record(stream.name, key, got[key], record)


def utc_database(postgres: PostgresCluster) -> str:
    """A new database whose sessions are in UTC, as docs/deletions.md tells users to keep it."""
    name = postgres.create_database("meltano")
    postgres.query("postgres", f"ALTER DATABASE \"{name}\" SET timezone TO 'UTC'")
    return name


@pytest.fixture
def database(postgres: PostgresCluster, project: MeltanoProject) -> Database:
    return Database(postgres, project, utc_database(postgres))


@pytest.mark.parametrize("hard_delete", [True, False], ids=["hard_delete", "soft_delete"])
def test_deletions_are_exactly_the_fakes(database: Database, hard_delete: bool) -> None:
    database.hard_delete = hard_delete
    with FakeAPI(DATASET) as api:
        database.meltano_run(api, f"first run (hard_delete {hard_delete})").check()
        assert_tables_equal(database.tables(), dump_records(api))
        # meltano.yml's stream map: no `version` column, the target's soft delete needs that
        columns = database.columns("endpoints")
        assert "endpoint_version" in columns and "version" not in columns, columns

        before = dump_records(api)
        reported = api.delete_records(share=0.2, seed=5)
        after = dump_records(api)
        deleted = {s: set(before[s]) - set(after[s]) for s in before}
        assert all(deleted.values()) and deleted == {s: set(k) for s, k in reported.items()}
        database.meltano_run(api, f"run after deletions (hard_delete {hard_delete})").check()

        assert_tables_equal(database.tables(live=True), after)
        if hard_delete:
            assert database.marked() == {s.name: set() for s in STREAMS}
            assert_tables_equal(database.tables(), after)  # the deleted rows are gone
        else:
            assert database.marked() == deleted
            assert_tables_equal(database.tables(), before)  # marked rows keep their values


def test_a_run_failing_part_way_deletes_nothing_that_exists_upstream(
    database: Database,
) -> None:
    with FakeAPI(DATASET) as api:
        database.meltano_run(api, "first run (failure test)").check()
        before_failure = database.tables()
        assert_tables_equal(before_failure, dump_records(api))

        api.delete_records(share=0.3, seed=2)
        upstream = dump_records(api)  # what exists upstream during the failing run
        failing = "ingest_source_endpoint"
        source = api.dump("ingest_source")[0]["id"]
        path = child_path(STREAMS_BY_NAME[failing].path, src_id=source)
        api.add_fault_rule(FaultRule("503", path))  # max_retries 0: the stream's scan fails

        failed = database.meltano_run(api, "failing run")
        assert failed.returncode != 0, failed.output[-6000:]
        assert "503" in failed.output, failed.output[-6000:]

        after = database.tables()
        for stream in STREAMS:
            got = after[stream.name]
            missing = sorted(set(upstream[stream.name]) - set(got))
            assert not missing, f"{stream.name}: rows that exist upstream were deleted: {missing}"
            for key, record in upstream[stream.name].items():
                assert_same_record(stream.name, key, got[key], record)
        # the stream whose scan failed got no ACTIVATE_VERSION: nothing deleted from its table,
        # not even the rows deleted upstream meanwhile
        assert set(before_failure[failing]) <= set(after[failing])
        assert set(before_failure[failing]) - set(upstream[failing]), "no deletion to hold back"

        api.clear_faults()  # the next run catches up exactly
        database.meltano_run(api, "run after the failure").check()
        assert_tables_equal(database.tables(), dump_records(api))


def test_the_stream_map_renames_version_and_keeps_its_type_and_a_missing_value() -> None:
    """meltano.yml's map on target-postgres, run by singer-sdk's own mapper (the target's code):
    `endpoint_version` is an integer column, null when the API omits `version` (newer API
    versions dropped it), and no `version` column is left."""
    import logging

    from singer_sdk.mapper import PluginMapper

    project = yaml.safe_load((REPO / "meltano.yml").read_text("utf-8"))
    (target,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres"]
    (maps,) = [s["value"] for s in target["settings"] if s["name"] == "stream_maps"]
    assert set(maps) == set(RENAMED)
    mapper = PluginMapper(plugin_config={"stream_maps": maps}, logger=logging.getLogger(__name__))
    definition = STREAMS_BY_NAME["endpoints"]
    mapper.register_raw_stream_schema("endpoints", definition.schema, [definition.primary_key])
    (stream_map,) = mapper.stream_maps["endpoints"]
    properties = stream_map.transformed_schema["properties"]
    assert "version" not in properties
    assert properties["endpoint_version"] == definition.schema["properties"]["version"]
    record = {"id": "ep_1", "url": "https://example.com"}
    assert stream_map.transform({**record, "version": 70000}) == {
        **record,
        "endpoint_version": 70000,
    }
    assert stream_map.transform(record) == {**record, "endpoint_version": None}
