"""`tap-analytics` as users run it, failing: a few lines that name the cause, never a traceback.

Each case is a real process against a real failure: the fake API answering 401 or 403 or 503,
a closed port on 127.0.0.1, a host under `.invalid` (which never resolves), an HTTPS server
whose certificate no client trusts, a config file that
is missing, not a file, or not JSON, an invalid setting. At the default level the run exits
non-zero and its stderr holds, besides Singer's METRIC lines and one line per retry, at most
three lines, the last naming the cause; `TAP_ANALYTICS_LOGLEVEL=DEBUG` adds the traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fake_api import FaultConfig, FaultRule
from tests.conftest import tap_config_for

pytestmark = pytest.mark.e2e

MAX_PROBLEM_LINES = 3


def run_tap(
    config: dict[str, Any] | Path, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess:
    """`python -m tap_analytics --config ...` with no level variable but those in `env`."""
    if isinstance(config, dict):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
    else:
        path = config
    clean = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
    clean = {k: v for k, v in clean.items() if not k.startswith("TAP_ANALYTICS_")}
    return subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **env},
        cwd=tmp_path,
    )


def problem_lines(stderr: str) -> list[str]:
    """stderr without Singer's METRIC lines and the tap's one line per retry."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and "METRIC: " not in line and "Retrying stream '" not in line
    ]


def assert_short_failure(run: subprocess.CompletedProcess, *causes: str) -> str:
    """Non-zero exit, at most three problem lines, no traceback; the last names the causes."""
    assert run.returncode != 0
    lines = problem_lines(run.stderr)
    assert 1 <= len(lines) <= MAX_PROBLEM_LINES, run.stderr
    assert "Traceback" not in run.stderr
    for cause in causes:
        assert cause in lines[-1], lines[-1]
    assert run.stdout.strip() == "" or all(json.loads(line) for line in run.stdout.splitlines())
    return lines[-1]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the API refuses the key -------------------------------------------------------------------


def test_wrong_key(fake_api: Any, tmp_path: Path) -> None:
    key = "sk_wrong_0123456789abcdef"
    run = run_tap(tap_config_for(fake_api, api_key=key), tmp_path)
    assert_short_failure(run, "HTTP 401", "api_key")
    assert key not in run.stderr + run.stdout


def test_key_without_permission(fake_api: Any, tmp_path: Path) -> None:
    run = run_tap(tap_config_for(fake_api, api_key=fake_api.forbidden_token), tmp_path)
    assert_short_failure(run, "HTTP 403", "permission")


def test_the_traceback_is_there_at_debug_level(fake_api: Any, tmp_path: Path) -> None:
    run = run_tap(
        tap_config_for(fake_api, api_key="wrong"), tmp_path, TAP_ANALYTICS_LOGLEVEL="DEBUG"
    )
    assert run.returncode != 0
    assert "Traceback" in run.stderr and "HTTP 401" in run.stderr


# -- the config ---------------------------------------------------------------------------------


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.json"
    line = assert_short_failure(run_tap(missing, tmp_path), str(missing), "--config")
    assert "not found" in line


def test_config_path_that_cannot_be_read(tmp_path: Path) -> None:
    directory = tmp_path / "config-dir.json"
    directory.mkdir()
    assert_short_failure(run_tap(directory, tmp_path), str(directory), "cannot be read")


def test_config_file_that_is_not_json(tmp_path: Path) -> None:
    broken = tmp_path / "config.json"
    broken.write_text('{"api_key": "sk_secret_in_a_broken_file", "base_url": ')
    run = run_tap(broken, tmp_path)
    assert_short_failure(run, str(broken), "not JSON")
    assert "sk_secret_in_a_broken_file" not in run.stderr


def test_invalid_setting(fake_api: Any, tmp_path: Path) -> None:
    run = run_tap(tap_config_for(fake_api, page_size="many"), tmp_path)
    assert run.returncode != 0
    lines = problem_lines(run.stderr)
    assert 1 <= len(lines) <= MAX_PROBLEM_LINES, run.stderr
    assert any("page_size" in line for line in lines), run.stderr
    assert "Traceback" not in run.stderr
    assert fake_api.stats()["total"] == 0  # refused before any request


# -- the network --------------------------------------------------------------------------------


def test_refused_connection(tmp_path: Path) -> None:
    config = {
        "api_key": "sk_test",
        "base_url": f"http://127.0.0.1:{closed_port()}",
        "max_retries": 1,
        "backoff_factor": 0,
    }
    run = run_tap(config, tmp_path)
    assert_short_failure(run, "connection refused", "base_url")
    retries = [line for line in run.stderr.splitlines() if "Retrying stream '" in line]
    assert len(retries) == 1 and "connection refused" in retries[0]


def test_host_that_does_not_resolve(tmp_path: Path) -> None:
    config = {"api_key": "sk_test", "base_url": "https://api.example.invalid", "max_retries": 0}
    run = run_tap(config, tmp_path)
    assert_short_failure(run, "cannot resolve host api.example.invalid", "base_url")


def test_an_untrusted_certificate_fails_at_once(untrusted_tls_server: Any, tmp_path: Path) -> None:
    """Not retried: the same certificate would come back (default retries and waits)."""
    config = {"api_key": "sk_test", "base_url": untrusted_tls_server.url}
    run = run_tap(config, tmp_path)
    assert_short_failure(run, "TLS failure with 127.0.0.1", "certificate", "REQUESTS_CA_BUNDLE")
    assert "Retrying stream '" not in run.stderr
    assert untrusted_tls_server.connections == 1


def test_api_down_beyond_the_retries(fake_api_factory: Any, tmp_path: Path) -> None:
    api = fake_api_factory(faults=FaultConfig(rules=(FaultRule("503", "applications"),)))
    run = run_tap(tap_config_for(api, max_retries=2, backoff_factor=0), tmp_path)
    line = assert_short_failure(run, "giving up after 2 retries", "HTTP 503")
    assert "max_retries" in line
    assert api.stats()["by_path"]["/v1/app"] == 3
