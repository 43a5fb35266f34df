"""The fake API in its own process (`in_process=False`, `FakeAPIProcess`): the same data, stats,
mutations and faults as the in-thread fake (tests/unit/test_fake_api.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fake_api import Dataset, DatasetConfig, FaultConfig, FaultRule
from tests.conftest import tap_config_for
from tests.unit.test_fake_api import child_path, get, walk

pytestmark = pytest.mark.e2e


def test_subprocess_variant(fake_api_factory: Any) -> None:
    dataset = DatasetConfig(seed=9, applications=6, event_types=8)
    api = fake_api_factory(dataset, in_process=False, token="proc-token")
    assert api.url.startswith("http://127.0.0.1:") and api.proc.poll() is None
    assert tap_config_for(api) == {"api_key": "proc-token", "base_url": api.url}
    assert api.tap_config() == tap_config_for(api)
    expected = Dataset(dataset)
    assert api.dump("endpoints") == expected.dump("endpoints")
    assert walk(api, "/v1/app", limit=4)[0] == expected.dump("applications")
    assert api.stats()["by_template"] == {"/v1/app": 2}
    api.reset_stats()
    assert api.stats()["total"] == 0
    assert api.mutate(0.5, seed=3) == expected.mutate(0.5, seed=3)
    api.set_faults(FaultConfig(rules=(FaultRule("503", count=1),)))
    assert api.faults().rules[0].kind == "503"
    assert get(api, "/v1/app").status_code == 503
    assert get(api, "/v1/app").status_code == 200
    assert api.stats()["faults"] == {"503": 1}
    app = expected.dump("applications")[0]["id"]
    api.delete_parents("applications", [app])
    assert get(api, child_path("endpoints", app)).status_code == 404
    proc = api.proc
    api.close()
    assert proc.wait(5) == 0


def test_a_busy_port_is_a_short_error_not_a_traceback() -> None:
    """Regression: `python -m fake_api` on a port in use ended in a traceback."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "fake_api", "--port", str(port), "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) <= 3 and "Traceback" not in proc.stderr and str(port) in proc.stderr


def test_deletions_through_the_control_endpoint(fake_api_factory: Any) -> None:
    """`FakeAPIProcess.delete_records` (POST /_fake/delete) deletes what the in-thread fake
    deletes with the same seed; a share outside 0..1 is refused."""
    import urllib.error
    import urllib.request

    from analytics_api.streams import STREAMS

    config = DatasetConfig(applications=6)
    api = fake_api_factory(config, in_process=False)
    deleted = api.delete_records(share=0.2, seed=4)
    assert deleted == Dataset(config).delete_records(0.2, seed=4)
    for stream in STREAMS:
        keys = [r[stream.primary_key] for r in Dataset(config).dump(stream.name)]
        assert [r[stream.primary_key] for r in api.dump(stream.name)] == [
            k for k in keys if k not in set(deleted[stream.name])
        ], stream.name
    request = urllib.request.Request(api.url + "/_fake/delete", data=b'{"share": 2}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
