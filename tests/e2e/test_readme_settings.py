"""README.md's settings and streams tables match what the code generates.

The settings table comes from `python -m tap_analytics --about --format=markdown` (run with this
interpreter, no network), the streams table from `analytics_api.streams.STREAMS`. When this fails,
run `python scripts/settings_table.py` and commit README.md.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "settings_table.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_runs_the_taps_about_with_this_interpreter() -> None:
    script = _script()
    assert script.ABOUT_COMMAND == ("-m", "tap_analytics", "--about", "--format=markdown")
    about = script.about_markdown()
    header, _, rows = script.settings_rows(about)
    assert header.startswith("| Setting |")
    assert any(row.startswith("| api_key |") for row in rows)


def test_readme_tables_are_up_to_date(capsys) -> None:
    code = _script().main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_check_reports_a_stale_readme(tmp_path: Path) -> None:
    script = _script()
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- settings:start -->\nold\n<!-- settings:end -->\n"
        "<!-- streams:start -->\nold\n<!-- streams:end -->\n",
        encoding="utf-8",
    )
    assert script.main(["--check", "--readme", str(readme)]) == 1
    assert script.main(["--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "| api_key |" in text and "| applications | `/v1/app` |" in text
    assert script.main(["--check", "--readme", str(readme)]) == 0


def test_check_holds_after_the_sdk_grew_the_schema_in_this_process(capsys) -> None:
    """Regression: singer-sdk appends its standard settings to a tap's schema in place (in its
    about and env-config paths), so after an in-process tap run the README check used to take
    them for the tap's own settings and report the README as stale."""
    from tap_analytics.settings import CONFIG_SCHEMA
    from tap_analytics.tap import TapAnalytics

    saved = copy.deepcopy(CONFIG_SCHEMA)
    try:
        TapAnalytics.append_builtin_config(CONFIG_SCHEMA)  # the worst case: the module constant
        assert "stream_maps" in CONFIG_SCHEMA["properties"]
        code = _script().main(["--check"])
    finally:
        CONFIG_SCHEMA.clear()
        CONFIG_SCHEMA.update(saved)
    assert code == 0, capsys.readouterr().err
