"""Every failure of `dlt-bridge run` and `dlt-bridge native` ends in a short error that names the
cause, with the documented exit code: no traceback, no "loaded"/"committed" on a failed run, and
bad configuration creates nothing and sends no request.

Each case is a real process against a real fake API, a real closed port on 127.0.0.1 and a real
unresolvable `.invalid` host.
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

pytestmark = pytest.mark.e2e

FAST_RETRIES = {"max_retries": 1, "backoff_factor": 0.01, "request_timeout": 5}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bridge(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "dlt_bridge", *args, "--pipelines-dir", str(workdir / "p")],
        cwd=workdir,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in f" {line} "]


def _assert_short_failure(result: Any, code: int, cause: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = _error_lines(result.stderr)
    assert 1 <= len(errors) <= 3, result.stderr
    assert cause.lower() in " ".join(errors).lower(), result.stderr
    for word in ("loaded into", "state committed"):
        assert word not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("missing config file", "cannot read"),
        ("not JSON", "not valid JSON"),
        ("bad base_url", "base_url"),
        ("backoff_factor too large", "backoff_factor"),
    ],
)
def test_bad_configuration_exits_2_before_anything(
    fake_api: Any, tmp_path: Path, case: str, cause: str
) -> None:
    config = tmp_path / "tap-config.json"
    good = {"api_key": fake_api.token, "base_url": fake_api.url}
    if case == "not JSON":
        config.write_text("{not json")
    elif case == "bad base_url":
        config.write_text(json.dumps({**good, "base_url": "not a url"}))
    elif case == "backoff_factor too large":
        config.write_text(json.dumps({**good, "backoff_factor": 1000}))
    fake_api.reset_stats()
    result = _bridge(tmp_path, "run", "--config", str(config))
    _assert_short_failure(result, 2, cause)
    assert fake_api.stats()["total"] == 0
    assert not list(tmp_path.glob("*.duckdb"))
    assert api_key_absent(result, fake_api.token)


def api_key_absent(result: Any, key: str) -> bool:
    return key not in result.stderr and key not in result.stdout


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("wrong key", "401"),
        ("closed port", "refused"),
        ("unresolvable host", "resolve"),
        ("untrusted certificate", "tls failure"),
    ],
)
def test_a_failing_tap_ends_in_one_line_naming_the_cause(
    fake_api: Any, tmp_path: Path, case: str, cause: str, request: pytest.FixtureRequest
) -> None:
    config = {"api_key": fake_api.token, "base_url": fake_api.url, **FAST_RETRIES}
    if case == "wrong key":
        config["api_key"] = "sk_wrong_" + "x" * 20
    elif case == "closed port":
        config["base_url"] = f"http://127.0.0.1:{_closed_port()}"
    elif case == "untrusted certificate":
        config["base_url"] = request.getfixturevalue("untrusted_tls_server").url
    else:
        config["base_url"] = "http://api.analytics-test.invalid"
    path = tmp_path / "tap-config.json"
    path.write_text(json.dumps(config))
    result = _bridge(tmp_path, "run", "--config", str(path))
    _assert_short_failure(result, 4, cause)
    assert api_key_absent(result, config["api_key"])


def test_an_unwritable_destination_fails_with_exit_1(fake_api: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "tap-config.json"
    path.write_text(json.dumps({"api_key": fake_api.token, "base_url": fake_api.url}))
    env = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "a-file" / "db.duckdb")}
    result = _bridge(tmp_path, "run", "--config", str(path), env=env)
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr and 1 <= len(_error_lines(result.stderr)) <= 3
    assert "loaded into" not in result.stderr


@pytest.mark.parametrize(
    ("case", "cause"),
    [("wrong key", "401"), ("closed port", "refused"), ("untrusted certificate", "tls failure")],
)
def test_native_failures_are_short_and_name_the_cause(
    fake_api: Any, tmp_path: Path, case: str, cause: str, request: pytest.FixtureRequest
) -> None:
    key, url = fake_api.token, fake_api.url
    if case == "wrong key":
        key = "sk_wrong_" + "x" * 20
    elif case == "closed port":
        url = f"http://127.0.0.1:{_closed_port()}"
    else:
        url = request.getfixturevalue("untrusted_tls_server").url
    env = {"SOURCES__ANALYTICS__API_KEY": key}
    args = ["native", "--base-url", url, "--max-retries", "1", "--backoff-factor", "0.01"]
    result = _bridge(tmp_path, *args, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = _error_lines(result.stderr)
    assert 1 <= len(errors) <= 3 and cause in " ".join(errors).lower(), result.stderr
    assert api_key_absent(result, key)
