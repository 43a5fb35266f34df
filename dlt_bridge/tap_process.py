"""The tap under `dlt-bridge run`: started first, told its state once the destination is read.

The Singer state a run starts from is the one stored in the destination, known only after dlt
is imported and the pipeline is synced (about a second). Our own tap takes `--state -` and reads
the state from its standard input after its own start-up (imports, about as long), so it is
started before the bridge imports dlt and the two start-ups overlap; `send_state` then writes
the state (or `{}`, no state) and closes the tap's input. Another tap command gets a state file
and starts once the state is known, as Singer taps expect.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from typing import IO, Any

log = logging.getLogger("dlt_bridge")


class TapStartError(Exception):
    """The tap command could not be started (not found, not executable)."""


class TapProcess:
    """One tap run: its command, its process, and how it gets its state."""

    def __init__(self, command: list[str], workdir: str, *, state_on_stdin: bool) -> None:
        self.command = command
        self.workdir = workdir
        self.state_on_stdin = state_on_stdin
        self.proc: subprocess.Popen[bytes] | None = None
        if state_on_stdin:
            self.proc = self._spawn([*command, "--state", "-"], stdin=subprocess.PIPE)

    def send_state(self, state: Any) -> None:
        """Hand the tap the state to start from (None: a full sync); starts it if not started."""
        if state is not None:
            log.info("starting the tap from the state stored in the destination")
        else:
            log.info("no state stored in the destination: the tap starts a full sync")
        if self.state_on_stdin:
            assert self.proc is not None and self.proc.stdin is not None
            try:
                with self.proc.stdin:
                    _write_json(self.proc.stdin, {} if state is None else state)
            except BrokenPipeError:  # the tap already exited; its exit code tells why
                log.debug("the tap exited before reading its state")
            return
        command = list(self.command)
        if state is not None:
            path = os.path.join(self.workdir, "state.json")
            with open(path, "wb") as fh:
                _write_json(fh, state)
            command += ["--state", path]
        self.proc = self._spawn(command, stdin=subprocess.DEVNULL)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc is not None and self.proc.stdout is not None, "tap not started"
        return self.proc.stdout

    def stop(self) -> None:
        """Terminate the tap if it still runs (the bridge failed or was interrupted)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()  # the tap may be waiting for its state
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _spawn(self, command: list[str], *, stdin: int) -> subprocess.Popen[bytes]:
        log.debug("tap command: %s", shlex.join(command))
        try:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stdin=stdin)
        except OSError as exc:
            raise TapStartError(f"could not start the tap ({shlex.join(command)}): {exc}") from exc


def _write_json(fh: IO[bytes], value: Any) -> None:
    fh.write(json.dumps(value).encode("utf-8") + b"\n")
    fh.flush()
