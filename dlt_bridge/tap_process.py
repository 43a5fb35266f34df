"""The tap under `dlt-bridge run`: started once the destination's state is known, from that state.

The tap gets the stored Singer state as a `--state` file (none on a first run), as any Singer tap
expects. Its stdout is the bridge's input. Its stderr is read on a thread: at the bridge's debug
level every line is passed on; otherwise only the tap's warnings and errors, so a successful run
stays quiet; the tap's last error line is not repeated but kept, and the bridge's own error
line says it when the run fails.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import threading
from typing import IO, Any

log = logging.getLogger("dlt_bridge")

_LOUD = ("WARNING", "ERROR", "CRITICAL")
"""Level names of the tap's stderr lines shown at the bridge's default level."""


class TapStartError(Exception):
    """The tap command could not be started (not found, not executable)."""


class TapProcess:
    """One tap run: its process, its stdout, and what it said on stderr."""

    def __init__(self, command: list[str], workdir: str, state: Any, *, verbose: bool) -> None:
        if state is not None:
            path = os.path.join(workdir, "state.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(state, fh)
            command = [*command, "--state", path]
        log.debug("tap command: %s", shlex.join(command))
        try:
            self.proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=_tap_environment(verbose),
            )
        except OSError as exc:
            raise TapStartError(f"could not start the tap ({shlex.join(command)}): {exc}") from exc
        self.last_error: str | None = None
        self._verbose = verbose
        self._stderr = threading.Thread(target=self._relay, name="tap-stderr", daemon=True)
        self._stderr.start()

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def _relay(self) -> None:
        """Pass the tap's stderr lines on (see the module doc); keep its last error line."""
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            level = next((name for name in _LOUD if name in line), None)
            if level in ("ERROR", "CRITICAL"):  # said once, by the bridge's own error line
                self.last_error = _message_part(line)
            if self._verbose or level == "WARNING":
                log.log(logging.DEBUG if self._verbose else logging.WARNING, "tap: %s", line)

    def wait(self) -> int:
        """The tap's exit code, once it and its stderr are finished."""
        code = self.proc.wait()
        self._stderr.join()
        return code

    def stop(self) -> None:
        """Terminate the tap if it still runs (the bridge failed or was interrupted)."""
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        self._stderr.join()


def _tap_environment(verbose: bool) -> dict[str, str] | None:
    """The tap's environment: ours, plus its own debug level when the bridge's is debug (the
    tap hides its INFO lines and tracebacks unless `TAP_ANALYTICS_LOGLEVEL` says otherwise)."""
    if not verbose or "TAP_ANALYTICS_LOGLEVEL" in os.environ:
        return None
    return {**os.environ, "TAP_ANALYTICS_LOGLEVEL": "DEBUG"}


def _message_part(line: str) -> str:
    """The message of a log line (singer-sdk's format: `time | level | logger | message`)."""
    parts = line.split(" | ", 3)
    return parts[3].strip() if len(parts) == 4 else line.strip()
