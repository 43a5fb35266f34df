"""`python -m tap_analytics`: the collector is spared the imports' objects, the CLI is unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
        timeout=120,
    )


def test_running_the_module_freezes_the_imports_and_keeps_the_cli() -> None:
    proc = _python(
        """
        import gc, json, runpy, sys
        sys.argv = ["tap-analytics", "--about", "--format=json"]
        code = None
        try:
            runpy.run_module("tap_analytics", run_name="__main__")
        except SystemExit as exc:
            code = exc.code
        sys.stderr.write(json.dumps({"frozen": gc.get_freeze_count(), "code": code}))
        """
    )
    facts = json.loads(proc.stderr.strip().splitlines()[-1])
    assert facts["frozen"] > 0
    assert facts["code"] in (0, None)
    about = json.loads(proc.stdout)
    assert about["name"] == "tap-analytics"


def test_importing_the_module_runs_nothing() -> None:
    proc = _python(
        """
        import gc, json, sys
        import tap_analytics.__main__
        sys.stderr.write(json.dumps({"frozen": gc.get_freeze_count()}))
        """
    )
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"frozen": 0}
