"""The queries of docs/history.md, as written there, against history loaded from the fake API.

Rounds of changes and one of deletions, with a run after each (the native engine here; both
engines make the same tables: test_history.py); every `-- query: NAME` block of the page runs
with its placeholders filled, and the answers are checked against what the fake served:

* `as-of`: at the latest `updatedAt` a run saw, the table is what that run saw; after the
  deletion run, what the fake serves now;
* `one-record`: the versions of the most changed endpoint, oldest first, with the URL before;
* `between` and `runs`: what changed between the instants of two runs, per endpoint.

`run_documented_queries` is shared with the PostgreSQL test (test_history_postgres.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics_dlt.hints import destination_column_name
from fake_api import FakeAPI
from fake_api.rounds import Rounds
from tests.e2e.bridge_support import expected_records, parse_rfc3339_us, query
from tests.e2e.deletes_support import engine_run

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "history.md"
STREAM = "endpoints"
Query = Callable[[str], list[tuple[Any, ...]]]


def documented_queries() -> dict[str, str]:
    """`{name: sql}` of every ```sql block of docs/history.md that starts `-- query: name`."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = {}
    for block in blocks:
        first, _, rest = block.partition("\n")
        if match := re.fullmatch(r"-- query: ([\w-]+)", first.strip()):
            out[match.group(1)] = rest
    return out


def fill(sql: str, **values: str) -> str:
    for name, value in values.items():
        sql = sql.replace(f":{name}", value)
    assert not re.search(r"(?<!:):[a-z_]+\b", sql), sql
    return sql


def instant_literal(moment: dt.datetime) -> str:
    return f"TIMESTAMP WITH TIME ZONE '{moment.astimezone(dt.timezone.utc).isoformat(sep=' ')}'"


def _record(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of `SELECT *` as a record with the stream's property names (as `expected_records`)."""
    fields = expected_records(STREAM, [{}])[0]
    by_column = dict(zip(names, row, strict=True))
    out = {}
    for name in fields:
        value = by_column[destination_column_name(name)]
        if isinstance(value, str) and name == "metadata":
            value = json.loads(value)
        elif isinstance(value, dt.datetime):
            value = value.astimezone(dt.timezone.utc)
        out[name] = value
    return out


def run_documented_queries(
    run_query: Query,
    select_star: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]],
    rounds: Rounds,
    load_ids: list[str],
    deletion_run: int,
) -> None:
    """Every documented query against the loaded history; answers checked against `rounds`.

    `load_ids[i]` is the last load of run `i`; run `deletion_run` ran in deletion mode and the
    others did not; the last run is the deletion run."""
    queries = documented_queries()
    assert set(queries) == {"as-of", "one-record", "between", "runs"}, set(queries)

    # a table as it was at an instant: each run's, the latest `updatedAt` it saw
    moments: list[dt.datetime] = []
    for index, observation in enumerate(rounds.observations):
        served = observation.records[STREAM]
        if index == deletion_run:
            moment = dt.datetime.now(dt.timezone.utc)  # after it found the deleted ones gone
        else:
            moment = max(parse_rfc3339_us(r["updatedAt"]) for r in served.values())
        moments.append(moment)
        names, rows = select_star(fill(queries["as-of"], instant=instant_literal(moment)))
        got = {r["id"]: r for r in (_record(names, row) for row in rows)}
        want = {r["id"]: r for r in expected_records(STREAM, list(served.values()))}
        assert got == want, index  # records deleted later were there then

    # the changes of one record over time
    versions = rounds.expected(STREAM)
    counts: dict[str, int] = {}
    for v in versions:
        counts[v.key] = counts.get(v.key, 0) + 1
    key = max(counts, key=lambda k: (counts[k], k))
    assert counts[key] >= 3, counts[key]  # changed in two rounds at least
    mine = [v for v in versions if v.key == key]
    rows = run_query(fill(queries["one-record"], id=f"'{key}'"))
    assert len(rows) == len(mine)
    for i, (row, version) in enumerate(zip(rows, mine, strict=True)):
        since, until, url, previous_url, _disabled, is_current = row
        assert since == parse_rfc3339_us(version.valid_from), i
        if version.gone is not None:
            assert until is not None and version.gone[0] <= until <= version.gone[1], i
        else:
            assert until == (parse_rfc3339_us(version.valid_to) if version.valid_to else None), i
        assert url == version.record["url"], i
        assert previous_url == (mine[i - 1].record["url"] if i else None), i
        assert is_current == (until is None), i

    # what changed between two runs
    runs = [str(r[0]) for r in run_query(queries["runs"])]
    assert [i for i in load_ids if i in runs] == load_ids
    last = len(rounds.observations) - 1
    for first, final in ((0, last), (0, 1), (1, 2), (deletion_run - 1, deletion_run)):
        sql = fill(
            queries["between"],
            since=instant_literal(moments[first]),
            until=instant_literal(moments[final]),
        )
        got_changes = {row[0]: row[1] for row in run_query(sql)}
        assert got_changes == expected_changes(rounds, first, final), (first, final)


def expected_changes(rounds: Rounds, first: int, last: int) -> dict[str, str]:
    """Per endpoint, what happened between what run `first` and run `last` saw: found gone by a
    deletion run in between: deleted; not there at `first`: added; another version: changed."""
    before = rounds.observations[first].records[STREAM]
    between = rounds.observations[first + 1 : last + 1]
    keys = set(before).union(*(o.records[STREAM] for o in between))
    out: dict[str, str] = {}
    for k in keys:
        seen = {o.records[STREAM][k]["updatedAt"] for o in between if k in o.records[STREAM]}
        if any(o.deletions and k not in o.records[STREAM] for o in between):
            out[k] = "deleted"
        elif k not in before:
            out[k] = "added"
        elif seen - {before[k]["updatedAt"]}:
            out[k] = "changed"
    return out


def test_the_documented_queries_answer_what_the_fake_served(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    rounds = Rounds(fake_api)
    load_ids: list[str] = []

    def run(*args: str, deletions: bool = False) -> None:
        with rounds.run(deletions=deletions):
            result = engine_run("native", tmp_path, fake_api, "--history", *args)
        assert result.returncode == 0, result.stderr[-3000:]
        load_ids.append(query(tmp_path, "select max(load_id) from analytics._dlt_loads")[0][0])

    run()
    for seed in (1, 2):
        fake_api.mutate(share=0.4, seed=seed)
        run()
    fake_api.delete_records(share=0.2, seed=3)
    fake_api.mutate(share=0.1, seed=4)
    run("--deletes", "soft", deletions=True)

    def select_star(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        import duckdb

        with duckdb.connect(str(tmp_path / "tap_analytics.duckdb"), read_only=True) as con:
            cursor = con.execute(sql)
            return [d[0] for d in cursor.description], cursor.fetchall()

    run_documented_queries(
        lambda sql: query(tmp_path, sql), select_star, rounds, load_ids, deletion_run=3
    )
