"""What a user reads about the settings agrees with the contract's settings table.

README.md's settings table is generated from `analytics_api.settings.SETTINGS` and its streams
table from `analytics_api.streams.STREAMS` by `scripts/settings_table.py` (when a check fails,
run `python scripts/settings_table.py` and commit README.md). The tap's own `--about` and its
command-line errors are read from real processes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from analytics_api.settings import TAP, settings_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "settings_table.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tap_analytics", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_readme_tables_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
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
    assert "| `api_key` |" in text and "| applications | `/v1/app` |" in text
    assert "| `backoff_factor` | number | `2.0` | >= 0 and <= 300 |" in text
    assert script.main(["--check", "--readme", str(readme)]) == 0


def test_the_taps_about_describes_the_tables_settings() -> None:
    run = _tap("--about", "--format=json")
    assert run.returncode == 0, run.stderr[-2000:]
    properties = json.loads(run.stdout)["settings"]["properties"]
    for s in settings_for(TAP):
        assert properties[s.name]["description"] == s.help, s.name
        assert properties[s.name].get("default") == s.default, s.name


def test_discover_needs_no_config() -> None:
    run = _tap("--discover")
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(json.loads(run.stdout)["streams"]) == 8


def test_the_cli_names_bad_settings_without_their_values(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    config = {"api_key": 98765432101234, "base_url": "api.example.com", "backoff_factor": 1000}
    path.write_text(json.dumps(config), encoding="utf-8")
    run = _tap("--config", str(path))
    assert run.returncode != 0
    for setting in ("api_key", "base_url", "backoff_factor"):
        assert f"'{setting}'" in run.stderr, run.stderr[-2000:]
    assert "98765432101234" not in run.stderr + run.stdout
