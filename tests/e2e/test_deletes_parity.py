"""Both engines make the same tables after a run with deletions (schema fields + whether
`_sdc_deleted_at` is set), from the same fake API data."""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_api import FakeAPI
from tests.e2e.bridge_support import column_types
from tests.e2e.deletes_support import NAMES, bridge_run, deleted_keys, native_run, snapshot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_bridge_and_native_tables_are_identical_after_deletions(
    fake_api: FakeAPI, tmp_path: Path, mode: str
) -> None:
    bridge, native = tmp_path / "bridge", tmp_path / "native"
    bridge.mkdir()
    native.mkdir()
    assert bridge_run(bridge, fake_api).returncode == 0
    assert native_run(native, fake_api).returncode == 0
    deleted = fake_api.delete_records(share=0.2, seed=9)
    first = bridge_run(bridge, fake_api, "--deletes", mode)
    assert first.returncode == 0, first.stderr[-3000:]
    second = native_run(native, fake_api, "--deletes", mode)
    assert second.returncode == 0, second.stderr[-3000:]
    assert snapshot(bridge) == snapshot(native)
    for name in NAMES:
        assert column_types(bridge, name) == column_types(native, name), name
        if mode == "soft":
            assert deleted_keys(bridge, name) == set(deleted[name]) == deleted_keys(native, name)
