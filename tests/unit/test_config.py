"""The tap: bad settings fail before any request, name the setting, and never echo the key.

The rules are the contract's settings table's (tests/unit/test_settings_table.py checks every
entry point against it); the command line's messages are tested in tests/e2e.
"""

from __future__ import annotations

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import API_KEY, BASE_URL, mock_api


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"api_key": None}, "api_key"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "   "}, "api_key"),
        ({"api_key": 987654321123}, "api_key"),
        ({"base_url": None}, "base_url"),
        ({"base_url": "api.example.com"}, "base_url"),
        ({"base_url": "ftp://api.example.com"}, "base_url"),
        ({"base_url": "https://api.example.com/v1"}, "base_url"),
        ({"base_url": "https://api.example.com/v1/app"}, "base_url"),
        ({"base_url": "https://api.example.com?x=1"}, "base_url"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 251}, "page_size"),
        ({"page_size": "big"}, "page_size"),
        ({"start_date": "last tuesday"}, "start_date"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_factor": 1000}, "backoff_factor"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"request_timeout": 3601}, "request_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"emit_activate_version_messages": "true"}, "emit_activate_version_messages"),
        ({"user_agent": 7}, "user_agent"),
    ],
)
def test_bad_setting_is_named_and_no_request_is_made(overrides: dict, setting: str) -> None:
    cfg = {"api_key": API_KEY, "base_url": BASE_URL, **overrides}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with mock_api() as api:
        with pytest.raises(ConfigValidationError) as info:
            TapAnalytics(config=cfg, parse_env_config=False)
        assert api.mocker.call_count == 0
    text = " ".join(info.value.errors)
    assert f"'{setting}'" in text
    assert API_KEY not in text and "987654321123" not in text


def test_good_config_passes() -> None:
    TapAnalytics(
        config={"api_key": API_KEY, "base_url": BASE_URL + "/", "start_date": "2024-01-01"},
        parse_env_config=False,
    )


def test_plain_http_to_a_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    TapAnalytics(
        config={"api_key": API_KEY, "base_url": "http://api.example.com"}, parse_env_config=False
    )
    assert "plain http" in caplog.text
    caplog.clear()
    TapAnalytics(
        config={"api_key": API_KEY, "base_url": "http://127.0.0.1:8080"}, parse_env_config=False
    )
    assert "plain http" not in caplog.text


def test_every_problem_is_reported_at_once() -> None:
    config = {"api_key": 12345, "base_url": "api.example.com", "page_size": 0, "max_retries": 99}
    with pytest.raises(ConfigValidationError) as info:
        TapAnalytics(config=config, parse_env_config=False)
    named = sorted(error.split("'")[1] for error in info.value.errors)
    assert named == ["api_key", "base_url", "max_retries", "page_size"]
    assert "12345" not in " ".join(info.value.errors)


def test_a_missing_key_says_where_to_set_it() -> None:
    with pytest.raises(ConfigValidationError) as info:
        TapAnalytics(config={"base_url": BASE_URL}, parse_env_config=False)
    assert info.value.errors == [
        "setting 'api_key': is required but missing (env TAP_ANALYTICS_API_KEY)."
    ]


def test_the_user_agent_defaults_to_the_package_version() -> None:
    from analytics_api import __version__

    tap = TapAnalytics(config={"api_key": API_KEY, "base_url": BASE_URL}, parse_env_config=False)
    assert tap.client.settings.user_agent == f"tap-analytics/{__version__}"


@pytest.mark.parametrize(("text", "number"), [("1.5", 1.5), ("0", 0.0), (" 300 ", 300.0)])
def test_number_settings_are_taken_as_text(text: str, number: float) -> None:
    """singer-sdk leaves `TAP_ANALYTICS_BACKOFF_FACTOR=1.5` as text with `--config ENV`, and
    Meltano passes these settings as text (meltano.yml declares them `kind: string`)."""
    config = {"api_key": API_KEY, "base_url": BASE_URL, "backoff_factor": text}
    tap = TapAnalytics(config=config, parse_env_config=False)
    assert tap.client.settings.retry.backoff_factor == number


@pytest.mark.parametrize("text", ["fast", "4000", "nan", ""])
def test_number_settings_as_text_keep_their_rules(text: str) -> None:
    config = {"api_key": API_KEY, "base_url": BASE_URL, "request_timeout": text}
    with pytest.raises(ConfigValidationError) as info:
        TapAnalytics(config=config, parse_env_config=False)
    assert info.value.errors[0].startswith("setting 'request_timeout': must be")
