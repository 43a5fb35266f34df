"""Handles for tests and benchmarks: the fake in a background thread or in its own process.

Both classes offer the same methods; :class:`FakeAPIProcess` implements them over the HTTP
control endpoints (``/_fake/...``), :class:`FakeAPI` calls the server directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from .data import DatasetConfig
from .faults import FaultConfig, FaultRule
from .server import FakeServer


class _Handle:
    url: str
    token: str
    forbidden_token: str | None

    def tap_config(self, **extra: Any) -> dict[str, Any]:
        """A tap config dict for this server: ``{"api_key": token, "base_url": url, **extra}``."""
        return {"api_key": self.token, "base_url": self.url, **extra}

    def start(self) -> _Handle:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Handle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_fault_rule(self, rule: FaultRule) -> None:
        """Append one rule to the current fault config (resets the fault history)."""
        self.set_faults(self.faults().with_rules(rule))

    def clear_faults(self) -> None:
        self.set_faults(None)

    # Implemented by subclasses:
    def set_faults(self, faults: FaultConfig | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def faults(self) -> FaultConfig:  # pragma: no cover
        raise NotImplementedError

    def dump_all(self) -> dict[str, list[dict[str, Any]]]:
        from analytics_api.streams import STREAMS

        return {s.name: self.dump(s.name) for s in STREAMS}

    def dump(self, stream: str) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError


class FakeAPI(_Handle):
    """The fake API served from a daemon thread of this process.

    >>> with FakeAPI(DatasetConfig(seed=3, applications=5)) as api:
    ...     requests.get(api.url + "/v1/app", headers={"Authorization": f"Bearer {api.token}"})
    """

    def __init__(
        self,
        dataset: DatasetConfig | None = None,
        token: str = "test-token",
        faults: FaultConfig | None = None,
        latency_ms: float = 0,
        port: int = 0,
        forbidden_token: str | None = "forbidden-token",
    ) -> None:
        self.server = FakeServer(
            dataset=dataset,
            token=token,
            forbidden_token=forbidden_token,
            faults=faults,
            latency_ms=latency_ms,
            port=port,
        )
        self.dataset = self.server.config
        self.token = token
        self.forbidden_token = forbidden_token
        self.url = self.server.url
        self.port = self.server.port
        self._started = False

    def start(self) -> FakeAPI:
        if not self._started:
            self.server.start_background()
            self._started = True
        return self

    def close(self) -> None:
        if self._started:
            self.server.shutdown()
            self._started = False

    def __enter__(self) -> FakeAPI:
        return self.start()

    def dump(self, stream: str) -> list[dict[str, Any]]:
        return self.server.dump(stream)

    def stats(self) -> dict[str, Any]:
        return self.server.stats.snapshot()

    def reset_stats(self) -> None:
        self.server.stats.reset()

    def mutate(
        self, share: float = 0.1, seed: int = 0, *, keep_updated_at: bool = False
    ) -> dict[str, list[str]]:
        return self.server.mutate(share, seed, keep_updated_at=keep_updated_at)

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.server.set_faults(faults)

    def faults(self) -> FaultConfig:
        return self.server.faults.config

    def set_latency(self, ms: float) -> None:
        self.server.latency_ms = ms

    def delete_records(self, share: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
        return self.server.delete_records(share, seed)

    def delete_parents(self, stream: str, ids: list[str]) -> None:
        self.server.delete_parents(stream, list(ids))

    def reset_data(self) -> None:
        self.server.reset_data()

    def prerender(self, limit: int = 250) -> int:
        return self.server.prerender(limit)

    def info(self) -> dict[str, Any]:
        return self.server.info()


class FakeAPIProcess(_Handle):
    """The fake API in a separate Python process (out of the client's GIL), same interface.

    The child runs ``python -m fake_api`` and prints ``READY <url>`` as its first line.
    """

    def __init__(
        self,
        dataset: DatasetConfig | None = None,
        token: str = "test-token",
        faults: FaultConfig | None = None,
        latency_ms: float = 0,
        port: int = 0,
        forbidden_token: str | None = "forbidden-token",
        prerender: int | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.dataset = dataset or DatasetConfig()
        self.token = token
        self.forbidden_token = forbidden_token
        self._faults = faults
        self._latency_ms = latency_ms
        self._port = port
        self._prerender = prerender
        self._timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0

    def start(self) -> FakeAPIProcess:
        if self.proc is not None:
            return self
        cmd = [
            sys.executable,
            "-m",
            "fake_api",
            "--port",
            str(self._port),
            "--token",
            self.token,
            "--dataset-json",
            json.dumps(self.dataset.to_dict()),
            "--latency-ms",
            str(self._latency_ms),
            "--quiet",
            "--exit-on-stdin-eof",
        ]
        if self.forbidden_token:
            cmd += ["--forbidden-token", self.forbidden_token]
        if self._faults is not None:
            cmd += ["--faults-json", json.dumps(self._faults.to_dict())]
        if self._prerender:
            cmd += ["--prerender", str(self._prerender)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, env=env
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:  # keeps draining stdout so the child never blocks on a full pipe
            for line in stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = lines.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise RuntimeError("fake API process did not start in time") from None
        if not first.startswith("READY "):
            self.close()
            raise RuntimeError(f"fake API process failed to start: {first!r}")
        self.url = first.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def __enter__(self) -> FakeAPIProcess:
        return self.start()

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            # --exit-on-stdin-eof: it stops by itself now. A SIGTERM sent while it exits could
            # land after Python restored the default handler, and kill it (exit -15).
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---- control over HTTP ----------------------------------------------------------------

    def _call(self, method: str, path: str, payload: Any = None) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                body: bytes = resp.read()
                return body
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def _json(self, method: str, path: str, payload: Any = None) -> Any:
        return json.loads(self._call(method, path, payload))

    def dump(self, stream: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/_fake/dump/{stream}")
        return [json.loads(line) for line in body.splitlines() if line]

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/_fake/stats")
        return result

    def reset_stats(self) -> None:
        self._call("POST", "/_fake/stats/reset", {})

    def mutate(
        self, share: float = 0.1, seed: int = 0, *, keep_updated_at: bool = False
    ) -> dict[str, list[str]]:
        payload = {"share": share, "seed": seed, "keep_updated_at": keep_updated_at}
        result: dict[str, list[str]] = self._json("POST", "/_fake/mutate", payload)
        return result

    def set_faults(self, faults: FaultConfig | None) -> None:
        if faults is None:
            self._call("DELETE", "/_fake/faults")
        else:
            self._call("PUT", "/_fake/faults", faults.to_dict())

    def faults(self) -> FaultConfig:
        return FaultConfig.from_dict(self._json("GET", "/_fake/faults"))

    def set_latency(self, ms: float) -> None:
        self._call("POST", "/_fake/latency", {"ms": ms})

    def delete_records(self, share: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._json(
            "POST", "/_fake/delete", {"share": share, "seed": seed}
        )
        return result

    def delete_parents(self, stream: str, ids: list[str]) -> None:
        self._call("POST", "/_fake/delete-parent", {"stream": stream, "ids": list(ids)})

    def reset_data(self) -> None:
        self._call("POST", "/_fake/reset", {"stats": False, "data": True})

    def prerender(self, limit: int = 250) -> int:
        return int(self._json("POST", "/_fake/prerender", {"limit": limit})["pages"])

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/_fake/info")
        return result


def start_fake_api(
    dataset: DatasetConfig | None = None,
    *,
    in_process: bool = True,
    **kwargs: Any,
) -> FakeAPI | FakeAPIProcess:
    """Start the fake and return its (already started) handle; close it when done."""
    handle: FakeAPI | FakeAPIProcess
    handle = FakeAPI(dataset, **kwargs) if in_process else FakeAPIProcess(dataset, **kwargs)
    return handle.start()
