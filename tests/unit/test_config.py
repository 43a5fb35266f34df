"""Bad settings fail before any request, name the setting, and never echo the key."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
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
        ({"request_timeout": 0}, "request_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
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


def test_cli_reports_config_errors_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": 98765432101234, "base_url": "api.example.com"}))
    result = subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "'api_key'" in result.stderr and "'base_url'" in result.stderr
    assert "98765432101234" not in result.stderr + result.stdout


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


def test_discover_needs_no_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--discover"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    streams = {s["tap_stream_id"] for s in json.loads(result.stdout)["streams"]}
    assert len(streams) == 8


# -- meltano.yml describes the same tap ------------------------------------------------------

MELTANO_YML = Path(__file__).resolve().parents[2] / "meltano.yml"
_MELTANO_KINDS = {"integer": "integer", "number": "decimal", "boolean": "boolean"}


def _meltano_extractor() -> dict:
    project = yaml.safe_load(MELTANO_YML.read_text())
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-analytics"]
    return extractor


@functools.cache
def _about() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def _meltano_kind(spec: dict) -> str:
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    kind = next(t for t in types if t != "null")
    if kind == "string":
        return "date_iso8601" if spec.get("format") == "date-time" else "string"
    return _MELTANO_KINDS[kind]


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def test_meltano_settings_match_the_tap_config_schema() -> None:
    """Names, kinds, secrets, labels, defaults and descriptions, setting by setting."""
    builtins: dict = {"properties": {}}
    TapAnalytics.append_builtin_config(builtins)  # what the SDK adds (stream maps, batch, ...)
    own = {
        name: spec
        for name, spec in _about()["settings"]["properties"].items()
        if name not in builtins["properties"]
    }
    assert (
        own.keys()
        == TapAnalytics.config_jsonschema["properties"].keys() - builtins["properties"].keys()
    )
    settings = {s["name"]: s for s in _meltano_extractor()["settings"]}
    assert sorted(settings) == sorted(own), "meltano.yml settings differ from the tap's"
    for name, spec in own.items():
        setting = settings[name]
        assert setting["kind"] == _meltano_kind(spec), name
        assert bool(setting.get("sensitive")) == bool(spec.get("secret")), name
        assert setting.get("label") == spec.get("title"), name
        assert setting.get("value") == spec.get("default"), name
        assert _text(setting.get("description")) == _text(spec.get("description")), name


def test_meltano_capabilities_match_about() -> None:
    assert sorted(_meltano_extractor()["capabilities"]) == sorted(_about()["capabilities"])
