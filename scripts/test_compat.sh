#!/usr/bin/env bash
# `make test-compat`: the unit tests and one end-to-end tap sync against the newest singer-sdk
# and dlt, pre-releases included, in a virtualenv of their own (.venv-compat). The project's
# own environment (.venv, pinned versions) is left alone.
#
# The project and its dev tools install first as pinned; then singer-sdk and dlt are upgraded
# to their newest releases, pre-releases included, even past the project's own bounds (pip
# then warns, and `pip check` below lists the mismatch): that is what this check is for.
#
#   PYTHON=python3.12 scripts/test_compat.sh     # another interpreter
#   COMPAT_VENV=/tmp/venv scripts/test_compat.sh # another place for the virtualenv
#   scripts/test_compat.sh -x -k incremental     # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${COMPAT_VENV:-.venv-compat}
PY="$VENV/bin/python"

test -x "$PY" || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -e '.[dev]'
"$PY" -m pip install --quiet --upgrade --pre 'singer-sdk[msgspec]' 'dlt[duckdb,parquet]'

echo "== versions in $VENV"
"$PY" - <<'PY'
import platform
from importlib.metadata import version

print(f"python      {platform.python_version()}")
for name in ("singer-sdk", "dlt", "duckdb", "pyarrow", "msgspec", "requests"):
    print(f"{name:<11} {version(name)}")
PY
echo "== pip check"
"$PY" -m pip check || echo "(pip check reports the mismatches above; the tests run anyway)"

export RUNTIME__DLTHUB_TELEMETRY=false
status=0
echo "== unit tests"
"$PY" -m pytest -q -p no:cacheprovider tests/unit "$@" || status=$?
echo "== end-to-end tap sync"
"$PY" -m pytest -q -p no:cacheprovider tests/e2e/test_tap_e2e.py "$@" || status=$?
echo "== dlt internals the project relies on (compat checks)"
"$PY" -m pytest -q -p no:cacheprovider tests/e2e/test_native_compat.py \
  tests/e2e/test_bridge_defaults.py "$@" || status=$?
if [ "$status" -eq 0 ]; then
  echo "== test-compat: passed"
else
  echo "== test-compat: FAILED (see above)"
fi
exit "$status"
