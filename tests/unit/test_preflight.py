"""`dlt-bridge run` checks the tap's config before it opens anything: a file, or `--config ENV`."""

from __future__ import annotations

import json
from pathlib import Path

from dlt_bridge.preflight import config_from_environment, tap_config_problems

GOOD = {"TAP_ANALYTICS_API_KEY": "sk_test_123", "TAP_ANALYTICS_BASE_URL": "https://api.example.com"}


def test_env_settings_are_read_as_the_tap_reads_them() -> None:
    environ = {**GOOD, "TAP_ANALYTICS_PAGE_SIZE": "100", "TAP_ANALYTICS_BACKOFF_FACTOR": "1.5"}
    environ["TAP_ANALYTICS_EMIT_ACTIVATE_VERSION_MESSAGES"] = "true"
    config = config_from_environment(environ)
    assert config["page_size"] == 100 and config["emit_activate_version_messages"] is True
    assert tap_config_problems("ENV", ours=True, environ=environ) == []


def test_env_problems_name_the_variable_never_the_value() -> None:
    environ = {"TAP_ANALYTICS_API_KEY": "sk_test_123", "TAP_ANALYTICS_BACKOFF_FACTOR": "1000"}
    problems = tap_config_problems("ENV", ours=True, environ=environ)
    assert any("TAP_ANALYTICS_BASE_URL" in p for p in problems)
    assert any("backoff_factor" in p for p in problems)
    assert not any("sk_test_123" in p for p in problems)


def test_a_file_is_checked_and_another_tap_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"api_key": "sk_x", "base_url": "not a url"}))
    assert [p for p in tap_config_problems(str(path), ours=True) if "base_url" in p]
    assert tap_config_problems(str(path), ours=False) == []
    assert "cannot read" in tap_config_problems(str(tmp_path / "none.json"), ours=False)[0]
