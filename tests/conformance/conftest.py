"""Fixtures of the conformance suite: the engine parameter, scripted servers, recorded waits."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conformance.engines import ENGINES, Outcome, run
from tests.servers import ScriptedServer

API_KEY = "sk_conformance_SECRET_7d3e1b"
"""Distinctive enough that finding it anywhere in a run's output means it leaked."""

_PROJECT_PACKAGES = ("analytics_api", "analytics_source", "tap_analytics")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _quiet_dlt(monkeypatch: pytest.MonkeyPatch) -> None:
    """No telemetry from the dlt runs of this suite."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")


class Timeline:
    """What a run did, in order, with the thread that did it: `("sleep", thread, seconds)` for
    each recorded wait and, once `sends` is used, `("send", thread, url)` for each request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, int, Any]] = []

    def add(self, kind: str, detail: Any) -> None:
        with self._lock:
            self.events.append((kind, threading.get_ident(), detail))


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch, timeline: Timeline) -> list[float]:
    """Every wait the project's code asks for, recorded and not slept.

    The shared client waits through `time.sleep`; only calls from the project's packages are
    recorded (and return at once). Anyone else's sleep (dlt, http.server) really sleeps.
    """
    waits: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.split(".")[0] in _PROJECT_PACKAGES:
            waits.append(seconds)
            timeline.add("sleep", seconds)
            return
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return waits


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch, timeline: Timeline) -> Timeline:
    """`timeline`, with every request the run sends (through requests' transport adapter)."""
    send = requests.adapters.HTTPAdapter.send

    def spy(self: requests.adapters.HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        timeline.add("send", request.url)
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    return timeline


@pytest.fixture
def api() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[ScriptedServer]:
    """A second server: the target of redirects, which must never be contacted."""
    with ScriptedServer() as server:
        yield server


Runner = Callable[..., Outcome]


@pytest.fixture
def run_engine(engine: str, tmp_path: Path) -> Runner:
    """`run_engine(base_url, streams=[...], api_key=API_KEY, **settings)` for this engine."""
    counter = iter(range(1_000))

    def go(base_url: str, streams: list[str] | None = None, **settings: Any) -> Outcome:
        api_key = settings.pop("api_key", API_KEY)
        workdir = tmp_path / f"run{next(counter)}"
        workdir.mkdir()
        return run(engine, base_url, api_key, streams, workdir=workdir, **settings)

    return go
