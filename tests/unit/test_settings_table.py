"""One settings table (`analytics_api.settings`), and every entry point built from it or checked
against it: the tap's JSON schema, `analytics_source()`, `dlt-bridge native`'s flags, the
environments file, meltano.yml (tap-analytics and target-dlt's `deletes`). One bound per setting
everywhere: a value out of range is refused by every entry point (the tap, `analytics_source()`,
`dlt-bridge native`, the environments file, `dlt-bridge run`'s check of the tap's config),
before any request.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests_mock
import yaml
from singer_sdk.exceptions import ConfigValidationError

import analytics_source.cli as native
from analytics_api import __version__
from analytics_api.settings import (
    DEFAULTS,
    SETTINGS,
    SETTINGS_BY_NAME,
    SOURCE,
    TAP,
    Setting,
    default_user_agent,
    numbers_from_text,
    setting_problems,
    settings_for,
)
from analytics_dlt.environments import (
    OPTIONAL_FIELDS,
    Environment,
    EnvironmentsError,
    parse_environments,
)
from analytics_source import analytics_source
from tap_analytics.settings import CONFIG_SCHEMA
from tap_analytics.tap import TapAnalytics
from tests.support import isolate_native_cli

ROOT = Path(__file__).resolve().parents[2]
URL = "https://api.example.com"
KEY = "sk_live_never_printed_7c1d"

# -- the table itself ------------------------------------------------------------------------


def test_the_table_is_complete_and_consistent() -> None:
    assert [s.name for s in SETTINGS] == [
        "api_key",
        "base_url",
        "start_date",
        "page_size",
        "max_retries",
        "backoff_factor",
        "request_timeout",
        "max_concurrency",
        "user_agent",
        "emit_activate_version_messages",
        "deletes",
        "history",
    ]
    for s in SETTINGS:
        assert s.title and s.help.endswith("."), s.name
        assert "%" not in s.help, s.name  # argparse help strings are %-formatted
        if s.default is not None:
            assert s.problems(s.default) == [], s.name
        assert (s.minimum is not None or s.maximum is not None) == (s.kind in ("integer", "number"))
        assert bool(s.options) == (s.kind == "options")
    assert [s.name for s in SETTINGS if s.secret] == ["api_key"]
    assert [s.name for s in SETTINGS if s.required] == ["api_key", "base_url"]


def test_problems_name_the_setting_and_rule_never_the_value() -> None:
    values = {
        "api_key": KEY + " \n",
        "base_url": KEY,
        "start_date": KEY,
        "page_size": KEY,
        "backoff_factor": 1000,
        "request_timeout": 0,
        "max_concurrency": True,
        "user_agent": 7,
        "deletes": KEY,
    }
    problems = setting_problems(values, SOURCE)
    named = [p.split("'")[1] for p in problems]
    tap_only = {"user_agent"}  # not a setting of the dlt source: left alone
    assert named == [n for n in values if n not in tap_only]
    assert all(KEY not in p for p in problems), problems
    assert "must be >= 0 and <= 300 seconds" in " ".join(problems)
    assert "must be > 0 and <= 3600 seconds" in " ".join(problems)
    assert "must be an integer, got boolean" in " ".join(problems)
    assert setting_problems({}, TAP) == [
        "setting 'api_key': is required but missing.",
        "setting 'base_url': is required but missing.",
    ]
    assert setting_problems({}, TAP, require=False) == []


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("page_size", [1, 250], [0, 251, 2.5, "50", True]),
        ("max_retries", [0, 20], [-1, 21]),
        ("backoff_factor", [0, 0.5, 300], [-0.1, 300.5, float("nan"), float("inf")]),
        ("request_timeout", [0.001, 3600], [0, -1, 3601]),
        ("max_concurrency", [1, 64], [0, 65]),
        ("deletes", ["off", "soft", "hard"], ["OFF", "purge", False]),
        ("emit_activate_version_messages", [True, False], ["true", 1]),
        ("history", [True, False], ["true", 1]),
        ("start_date", ["2024-01-31T00:00:00Z", "2024-01-31"], ["yesterday", 20240131]),
    ],
)
def test_each_bound_and_type(name: str, good: list[Any], bad: list[Any]) -> None:
    setting = SETTINGS_BY_NAME[name]
    for value in good:
        assert setting.problems(value) == [], value
    for value in bad:
        (problem,) = setting.problems(value)
        assert problem.startswith(f"setting '{name}': "), problem


def test_number_settings_given_as_text_are_read_as_numbers_only_there() -> None:
    """How the tap takes `--config ENV` and Meltano values (see `numbers_from_text`)."""
    given = {"backoff_factor": "1.5", "request_timeout": "x", "page_size": "5", "base_url": "7"}
    assert numbers_from_text(given) == {**given, "backoff_factor": 1.5}
    assert [p.split("'")[1] for p in setting_problems(numbers_from_text(given), TAP)] == [
        "api_key",
        "base_url",
        "page_size",
        "request_timeout",
    ]


def test_the_version_comes_from_the_package_metadata() -> None:
    """pyproject.toml's `version` is the one version (an editable install reads it back)."""
    import dlt_bridge
    from analytics_source.settings import USER_AGENT

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert match is not None
    version = match.group(1)
    assert __version__ == version == dlt_bridge.__version__
    assert default_user_agent() == f"tap-analytics/{version}"
    assert f"analytics-source/{version}" == USER_AGENT


# -- the tap ---------------------------------------------------------------------------------


def test_the_taps_json_schema_is_the_table() -> None:
    properties = CONFIG_SCHEMA["properties"]
    assert list(properties) == [s.name for s in settings_for(TAP)]
    assert CONFIG_SCHEMA["required"] == [s.name for s in settings_for(TAP) if s.required]
    json_types = {"integer": "integer", "number": "number", "boolean": "boolean"}
    for s in settings_for(TAP):
        spec = properties[s.name]
        assert json_types.get(s.kind, "string") in spec["type"], s.name
        assert spec.get("default") == s.default, s.name
        assert bool(spec.get("secret")) == s.secret, s.name
        assert spec["title"] == s.title and spec["description"] == s.help, s.name
        low = "exclusiveMinimum" if s.exclusive_minimum else "minimum"
        assert spec.get(low) == s.minimum and spec.get("maximum") == s.maximum, s.name
    # the class's schema: the same, plus the SDK's standard settings
    class_properties = TapAnalytics.config_jsonschema["properties"]
    assert {n: class_properties[n] for n in properties} == properties


# -- the dlt source, its command line and the environments file -----------------------------


def test_analytics_source_takes_the_tables_source_settings() -> None:
    parameters = inspect.signature(analytics_source).parameters
    assert set(parameters) - {"parallelized"} == {s.name for s in settings_for(SOURCE)}
    for s in settings_for(SOURCE):
        if not s.required:  # required ones come from dlt config and secrets
            assert parameters[s.name].default == s.default, s.name


def _native_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlt-bridge")
    native.add_native_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


def test_native_flags_are_the_tables_source_settings_but_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = _native_parser()
    defaults = vars(parser.parse_args(["native"]))
    samples = {"integer": "7", "number": "1.5", "options": "soft", "string": "x"}
    for s in settings_for(SOURCE):
        flag = "--" + s.name.replace("_", "-")
        if s.secret:
            assert s.name not in defaults, s.name
            with pytest.raises(SystemExit):
                parser.parse_args(["native", flag, "x"])
            continue
        assert defaults[s.name] == s.default, s.name
        value = [] if s.kind == "boolean" else [samples.get(s.kind, "x")]  # --history alone
        given = getattr(parser.parse_args(["native", flag, *value]), s.name)
        wanted = {"integer": int, "number": float, "boolean": bool}.get(s.kind, str)
        assert type(given) is wanted, s.name
    with pytest.raises(SystemExit):
        parser.parse_args(["native", "--deletes", "purge"])  # the table's options only
    capsys.readouterr()
    with pytest.raises(SystemExit):
        parser.parse_args(["native", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for s in settings_for(SOURCE):
        assert s.bounds in help_text, s.name  # each flag says its range


def test_environment_fields_are_the_tables_source_settings() -> None:
    assert (
        tuple(s.name for s in settings_for(SOURCE) if s.name not in ("api_key", "base_url"))
        == OPTIONAL_FIELDS
    )
    fields = {f.name: f.default for f in dataclasses.fields(Environment)}
    for name in OPTIONAL_FIELDS:
        assert fields[name] == DEFAULTS[name], name
    env = Environment("prod", URL, "K")
    assert set(env.source_options()) == {"base_url", *OPTIONAL_FIELDS}


# -- one bound everywhere --------------------------------------------------------------------


def _tap(setting: str, value: Any, **_: Any) -> str:
    with requests_mock.Mocker() as api:  # any request would fail the test (no route)
        try:
            TapAnalytics(
                config={"api_key": KEY, "base_url": URL, setting: value}, parse_env_config=False
            )
        except ConfigValidationError as exc:
            return " ".join(exc.errors)
        finally:
            assert api.call_count == 0
    return ""


def _source(setting: str, value: Any, **_: Any) -> str:
    with requests_mock.Mocker() as api:
        try:
            analytics_source(URL, KEY, **{setting: value})
        except ValueError as exc:
            return str(exc)
        finally:
            assert api.call_count == 0
    return ""


def _native(setting: str, value: Any, *, caplog: pytest.LogCaptureFixture, **_: Any) -> str:
    flag = "--" + setting.replace("_", "-")
    argv = ["native", "--base-url", URL, flag, str(value)]
    args = _native_parser().parse_args(argv)
    with requests_mock.Mocker() as api, caplog.at_level(logging.ERROR, logger="dlt_bridge"):
        code = native.run_native(args, api_key=KEY)
        assert api.call_count == 0
    assert code == 2, caplog.text  # usage error: nothing created, nothing sent
    return caplog.text.replace(flag, f"setting '{setting}'")


def _environments(setting: str, value: Any, **_: Any) -> str:
    entry = {"name": "prod", "base_url": URL, "api_key_env": "K", setting: value}
    try:
        parse_environments({"environments": [entry]})
    except EnvironmentsError as exc:
        return str(exc)
    return ""


def _bridge_run(setting: str, value: Any, *, tmp_path: Path, **_: Any) -> str:
    """`dlt-bridge run --config FILE` checks the tap's config before it starts anything."""
    from dlt_bridge.preflight import tap_config_problems

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": KEY, "base_url": URL, setting: value}), "utf-8")
    return " ".join(tap_config_problems(str(path), ours=True))


ENTRY_POINTS: dict[str, Callable[..., str]] = {
    "tap": _tap,
    "analytics_source()": _source,
    "dlt-bridge native": _native,
    "environments file": _environments,
    "dlt-bridge run": _bridge_run,
}
OUT_OF_RANGE = [
    ("backoff_factor", 1000),
    ("request_timeout", 4000),
    ("page_size", 251),
    ("max_retries", 21),
    ("max_concurrency", 65),
    ("start_date", "yesterday"),
]


@pytest.fixture
def isolated_native(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate_native_cli(monkeypatch, tmp_path)
    yield


@pytest.mark.parametrize(("setting", "value"), OUT_OF_RANGE, ids=[s for s, _ in OUT_OF_RANGE])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_value_out_of_range_is_refused_by_every_entry_point_before_any_request(
    entry: str,
    setting: str,
    value: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    isolated_native: None,
) -> None:
    text = ENTRY_POINTS[entry](setting, value, caplog=caplog, tmp_path=tmp_path)
    assert f"setting '{setting}': " in text, text
    rule = SETTINGS_BY_NAME[setting].bounds or "ISO 8601"
    assert rule in text, text
    assert KEY not in text


@pytest.mark.parametrize("entry", [e for e in ENTRY_POINTS if e != "dlt-bridge native"])
def test_the_bounds_themselves_are_accepted_everywhere(entry: str, tmp_path: Path) -> None:
    for setting in ("backoff_factor", "request_timeout", "page_size", "max_concurrency"):
        limit = SETTINGS_BY_NAME[setting].maximum
        assert ENTRY_POINTS[entry](setting, limit, tmp_path=tmp_path) == "", (entry, setting)


# -- meltano.yml -----------------------------------------------------------------------------

MELTANO_KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "string",  # Meltano's `decimal` kind crashes on a value from a variable
    "boolean": "boolean",
    "datetime": "date_iso8601",
    "options": "options",
}


def _meltano_plugin(kind: str, name: str) -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (plugin,) = [p for p in project["plugins"][kind] if p["name"] == name]
    return plugin


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def _check_meltano_setting(declared: dict[str, Any], s: Setting) -> None:
    assert declared["kind"] == MELTANO_KINDS[s.kind], s.name
    assert bool(declared.get("sensitive")) == s.secret, s.name
    assert declared.get("value") == s.default, s.name
    if s.options:
        assert [o["value"] for o in declared["options"]] == list(s.options), s.name


def test_meltano_declares_every_tap_setting_as_the_table_does() -> None:
    declared = {d["name"]: d for d in _meltano_plugin("extractors", "tap-analytics")["settings"]}
    assert list(declared) == [s.name for s in settings_for(TAP)]
    for s in settings_for(TAP):
        _check_meltano_setting(declared[s.name], s)
        assert declared[s.name].get("label") == s.title, s.name
        assert _text(declared[s.name].get("description")) == s.help, s.name


def test_meltano_capabilities_are_the_taps() -> None:
    declared = _meltano_plugin("extractors", "tap-analytics")["capabilities"]
    assert sorted(declared) == sorted(str(c.value) for c in TapAnalytics.capabilities)


def test_target_dlt_takes_deletes_and_passes_it_to_dlt_bridge_load() -> None:
    declared = {d["name"]: d for d in _meltano_plugin("loaders", "target-dlt")["settings"]}
    _check_meltano_setting(declared["deletes"], SETTINGS_BY_NAME["deletes"])

    spec = importlib.util.spec_from_file_location(
        "meltano_target_dlt", ROOT / "plugins" / "target-dlt" / "meltano_target_dlt.py"
    )
    assert spec is not None and spec.loader is not None
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    from dlt_bridge.args import build_parser

    for mode in SETTINGS_BY_NAME["deletes"].options:
        argv = shim.bridge_argv({"deletes": mode})
        assert argv[:1] == ["load"] and "--deletes" in argv
        assert build_parser().parse_args(argv).deletes == mode
    assert "--deletes" not in shim.bridge_argv({})
