"""The tap under `dlt-bridge run`: started first, from a guessed state or told its state later.

The Singer state a run starts from is the one stored in the destination, known only after dlt
is imported and the pipeline is synced (about a second). Our own tap takes `--state -` and reads
the state from its standard input after its own start-up, so it is started before the bridge
imports dlt and the two start-ups overlap. With a state hint (`dlt_bridge.state_hint`: the state
the previous run committed) the tap gets that guess at once and runs meanwhile; `start_from`
then checks the guess against the stored state and restarts the tap on a mismatch. Without a
hint `start_from` writes the stored state (or `{}`, no state) and closes the tap's input. Another
tap command gets a state file and starts once the state is known, as Singer taps expect.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from typing import IO, Any

log = logging.getLogger("dlt_bridge")

PIPE_BYTES = 1 << 20
"""Size asked for the tap's output pipe (Linux; the default is 64 KB): a small run's whole
output fits, so the tap is not held up while the bridge is still importing dlt."""


class TapStartError(Exception):
    """The tap command could not be started (not found, not executable)."""


def same_state(a: Any, b: Any) -> bool:
    """Equal Singer states; None (no state stored) is the empty state `{}`."""
    return (a or {}) == (b or {})


class TapProcess:
    """One tap run: its command, its process, and how it gets its state."""

    def __init__(
        self,
        command: list[str],
        workdir: str,
        *,
        state_on_stdin: bool,
        hint: tuple[bool, Any] = (False, None),
    ) -> None:
        self.command = command
        self.workdir = workdir
        self.state_on_stdin = state_on_stdin
        self.proc: subprocess.Popen[bytes] | None = None
        self.guessed: bool = hint[0] and state_on_stdin
        self.guess: Any = hint[1] if self.guessed else None
        self.restarted = False
        """True when the guess differed from the stored state and the tap was started again."""
        if state_on_stdin:
            self.proc = self._spawn([*command, "--state", "-"], stdin=subprocess.PIPE)
            if self.guessed:
                self._write_state(self.guess)

    def start_from(self, state: Any) -> None:
        """Run the tap from `state`, the one stored in the destination (None: a full sync).

        A tap already started from a hint equal to it goes on; one started from another guess is
        stopped, its output left unread, and started again from `state`.
        """
        if state is not None:
            log.info("starting the tap from the state stored in the destination")
        else:
            log.info("no state stored in the destination: the tap starts a full sync")
        if self.guessed:
            if same_state(self.guess, state):
                log.debug("the tap started early from the state hint, equal to the stored state")
                return
            log.info(
                "the state hint differs from the state stored in the destination: the tap is"
                " started again from the stored state"
            )
            self.stop()
            self.restarted = True
            self.proc = self._spawn([*self.command, "--state", "-"], stdin=subprocess.PIPE)
        if self.state_on_stdin:
            self._write_state(state)
            return
        command = list(self.command)
        if state is not None:
            path = os.path.join(self.workdir, "state.json")
            with open(path, "wb") as fh:
                _write_json(fh, state)
            command += ["--state", path]
        self.proc = self._spawn(command, stdin=subprocess.DEVNULL)

    def _write_state(self, state: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            with self.proc.stdin:
                _write_json(self.proc.stdin, {} if state is None else state)
        except BrokenPipeError:  # the tap already exited; its exit code tells why
            log.debug("the tap exited before reading its state")

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc is not None and self.proc.stdout is not None, "tap not started"
        return self.proc.stdout

    def stop(self) -> None:
        """Terminate the tap if it still runs (the bridge failed or was interrupted)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self._close_output(proc)
            return
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()  # the tap may be waiting for its state
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_output(proc)

    @staticmethod
    def _close_output(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()

    def _spawn(self, command: list[str], *, stdin: int) -> subprocess.Popen[bytes]:
        log.debug("tap command: %s", shlex.join(command))
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=stdin)
        except OSError as exc:
            raise TapStartError(f"could not start the tap ({shlex.join(command)}): {exc}") from exc
        _widen_pipe(proc.stdout)
        return proc


def _widen_pipe(pipe: IO[bytes] | None) -> None:
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[union-attr]
    except (ImportError, AttributeError, OSError, ValueError):  # not Linux, or a lower limit
        pass


def _write_json(fh: IO[bytes], value: Any) -> None:
    fh.write(json.dumps(value).encode("utf-8") + b"\n")
    fh.flush()
