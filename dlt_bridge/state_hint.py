"""The state hint: a guess of the Singer state a `run` starts from, known before dlt is imported.

The state a run starts from is the one stored in the destination, known only after dlt's import,
the pipeline's set-up and the destination sync (about a second). After each completed run the
bridge writes the state it committed to a small file of its own, keyed by the pipeline flags and
the working directory. The next `run` with the same flags starts the tap at once from that
guess; once the destination's state is known the guess is checked (`TapProcess.start_from`):
equal, the tap's output is used; different (the pipeline was loaded from another machine, the
destination replaced or restored), that tap is stopped, its output discarded, and the tap runs
again from the stored state. A wrong or missing hint costs time, never data.

Files: `$DLT_BRIDGE_STATE_HINTS` if set (`off`: no hints), else
`$XDG_CACHE_HOME/dlt-bridge/state-hints/` (default `~/.cache/...`); one small JSON file per
pipeline, readable by the user only. A directory that cannot be written only means no hint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
from typing import Any

log = logging.getLogger("dlt_bridge")

KEY_FLAGS = ("pipeline_name", "pipelines_dir", "destination", "dataset_name")
"""The flags that name the pipeline, its working directory and its destination."""

FORMAT = 1


ENV_VAR = "DLT_BRIDGE_STATE_HINTS"
OFF = "off"


def hint_dir() -> str | None:
    """Where hints are kept; None when turned off (`DLT_BRIDGE_STATE_HINTS=off`)."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return None if chosen.strip().lower() == OFF else chosen
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "dlt-bridge", "state-hints")


def _identity(flags: argparse.Namespace, default_pipeline_name: str) -> dict[str, Any]:
    identity: dict[str, Any] = {"cwd": os.getcwd()}
    for name in KEY_FLAGS:
        value = getattr(flags, name, None)
        if name == "pipeline_name":
            value = value or default_pipeline_name
        if name == "pipelines_dir" and value:
            value = os.path.abspath(value)
        identity[name] = value
    return identity


def hint_path(flags: argparse.Namespace, default_pipeline_name: str) -> str | None:
    """The hint file of the pipeline these flags name, run from this directory (None: off)."""
    return _path_of(_identity(flags, default_pipeline_name))


def _path_of(identity: dict[str, Any]) -> str | None:
    directory = hint_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return os.path.join(directory, f"{digest[:32]}.json")


def read_hint(flags: argparse.Namespace, default_pipeline_name: str) -> tuple[bool, Any]:
    """(True, state) when a hint exists for these flags (state None: no state stored yet)."""
    path = hint_path(flags, default_pipeline_name)
    if path is None:
        return False, None
    try:
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError) as exc:  # unreadable or torn: no hint, the run waits as before
        log.debug("state hint %s not used: %s", path, exc)
        return False, None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        return False, None
    return True, content.get("singer_state")


def write_hint(flags: argparse.Namespace, default_pipeline_name: str, state: Any) -> None:
    """Remember `state` (committed by the run that just finished) for the next run's tap."""
    identity = _identity(flags, default_pipeline_name)
    path = _path_of(identity)
    if path is None:
        return
    content = {"format": FORMAT, "identity": identity, "singer_state": state}
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".hint-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(content, fh)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, TypeError, ValueError) as exc:  # read-only home, odd state: no hint
        log.debug("state hint not written to %s: %s", path, exc)
