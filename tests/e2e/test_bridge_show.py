"""`dlt-bridge show`: looking at the data needs nothing but this package (pip's `duckdb` has no
command-line program)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from tests.e2e.bridge_support import run_bridge, write_tap_config
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def test_show_prints_every_table_with_its_rows_and_runs_queries(
    fake_api: Any, tmp_path: Path
) -> None:
    config = write_tap_config(tmp_path, fake_api)
    assert run_bridge(tmp_path, ["run", "--config", str(config)]).returncode == 0
    dumps = all_dumps(fake_api)
    shown = run_bridge(tmp_path, ["show"])
    assert shown.returncode == 0, shown.stderr
    counts = {
        line.split()[0]: line.split()[1:4]
        for line in shown.stdout.splitlines()
        if line.split() and line.split()[0] in dumps
    }
    expected = {s.name: [f"{len(dumps[s.name]):,}"] * 3 for s in STREAMS}
    assert counts == expected
    # the README's recipes: live rows only, and what the last run changed
    live = run_bridge(tmp_path, ["show", "--sql", "select count(*) from applications"])
    assert live.stdout.strip() == str(len(dumps["applications"]))
    mutated = fake_api.mutate(share=0.2, seed=3)
    assert run_bridge(tmp_path, ["run", "--config", str(config)]).returncode == 0
    last = (
        "select count(*) from applications where _dlt_load_id ="
        " (select max(load_id) from _dlt_loads where status = 0)"
    )
    changed = run_bridge(tmp_path, ["show", "--sql", last])
    assert int(changed.stdout.strip()) == len(mutated["applications"]) > 0
