"""History tables through the Dagster code location: an environment with `history: true` in the
environments file gets `<stream>_history` tables holding the versions its fake served; another
environment of the same file gets none. Runs `dagster asset materialize` (tests/e2e/test_dagster.py
and dagster_support.py: the workspace, its fakes and the DuckDB file of each environment)."""

from __future__ import annotations

import pytest

from fake_api.rounds import Rounds
from tests.e2e.bridge_support import tables
from tests.e2e.dagster_support import assert_equals_dump, reading
from tests.e2e.test_dagster import Factory, workspace  # noqa: F401  (the fixture)
from tests.e2e.test_history import assert_history_is_the_fakes
from tests.support import all_dumps

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_environment_with_history_gets_its_history_tables(workspace: Factory) -> None:  # noqa: F811
    ws = workspace(prod={"history": True}, staging={})
    prod = next(e.api for e in ws.environments if e.name == "prod")
    rounds = Rounds(prod)
    with rounds.run():
        ws.materialize("prod", label="materialize prod (history starts)").check()
    ws.materialize("staging", label="materialize staging (no history)").check()
    prod.mutate(share=0.4, seed=1)
    with rounds.run():
        ws.materialize("prod", label="materialize prod (changes)").check()
    assert_equals_dump(ws, "prod", all_dumps(prod))
    with reading(ws, "prod") as folder:
        assert_history_is_the_fakes(folder, rounds)
    with reading(ws, "staging") as folder:
        assert not any(t.endswith("_history") for t in tables(folder))
