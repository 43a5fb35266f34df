"""Successive states of the fake, as runs saw them: the ground truth of history tables.

A history test (or benchmark) changes the fake in rounds (``mutate``, ``delete_records``) and
runs an engine after each one. :class:`Rounds` keeps what the fake served to each run and, from
that alone, the versions each ``<stream>_history`` table must hold: one per version a run saw,
valid from its replication key value until the next version a run saw, or until the deletion
run that found it gone (a run in deletion mode: its window is recorded, the exact instant is the
engine's), or open.

    rounds = Rounds(api)
    with rounds.run(deletions=False):
        ...  # one engine run
    api.mutate(0.2, seed=1)
    with rounds.run(deletions=False):
        ...
    rounds.expected("applications")  # [Version(key, valid_from, valid_to, gone, record), ...]
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from analytics_api.streams import STREAMS, STREAMS_BY_NAME


class _Dumps(Protocol):
    def dump_all(self) -> dict[str, list[dict[str, Any]]]: ...


@dataclass(frozen=True)
class Observation:
    """What the fake served during one run."""

    records: dict[str, dict[Any, dict[str, Any]]]
    """Per stream, every record by primary key (children carry their parent id)."""
    deletions: bool
    """The run scanned in deletion mode: the versions of records gone are closed by it."""
    started: dt.datetime
    ended: dt.datetime


@dataclass(frozen=True)
class Version:
    """One row a history table must hold."""

    key: Any
    valid_from: str
    """The replication key value as the fake served it (RFC 3339 text)."""
    valid_to: str | None
    """The next observed version's `valid_from`; None when open or closed as gone."""
    gone: tuple[dt.datetime, dt.datetime] | None
    """Closed as gone by the deletion run that ran within this window."""
    record: dict[str, Any]


@dataclass
class Rounds:
    """The fake's states as each run saw them (see the module doc)."""

    api: _Dumps
    observations: list[Observation] = field(default_factory=list)

    @contextlib.contextmanager
    def run(self, *, deletions: bool = False) -> Iterator[None]:
        """Around one engine run: what the fake serves now, and when the run ran. Nothing may
        change the fake's data while the run is inside."""
        dumps = self.api.dump_all()
        started = dt.datetime.now(dt.timezone.utc)
        yield
        ended = dt.datetime.now(dt.timezone.utc)
        records = {s.name: {r[s.primary_key]: r for r in dumps[s.name]} for s in STREAMS}
        self.observations.append(Observation(records, deletions, started, ended))

    def forget_last(self) -> None:
        """The last run failed: it changed nothing, so it saw nothing."""
        self.observations.pop()

    def expected(self, stream: str, first: int = 0) -> list[Version]:
        """The versions `<stream>_history` must hold after the runs from `first` on, by key and
        `valid_from`. `first` > 0 when history started on an existing dataset: the run before
        the first history run is the state its current table held (records deleted upstream
        before that run are not handled: an incremental current table still holds them)."""
        version_key = STREAMS_BY_NAME[stream].replication_key
        seen: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
        gone: dict[Any, tuple[dt.datetime, dt.datetime]] = {}
        for observation in self.observations[first:]:
            served = observation.records[stream]
            for key, record in served.items():
                versions = seen.setdefault(key, [])
                if not versions or versions[-1][0] != record[version_key]:
                    versions.append((record[version_key], record))
                gone.pop(key, None)
            if observation.deletions:
                for key in seen:
                    if key not in served and key not in gone:
                        gone[key] = (observation.started, observation.ended)
        out = []
        for key, versions in seen.items():
            for i, (valid_from, record) in enumerate(versions):
                last = i + 1 == len(versions)
                out.append(
                    Version(
                        key,
                        valid_from,
                        None if last else versions[i + 1][0],
                        gone.get(key) if last else None,
                        record,
                    )
                )
        return sorted(out, key=lambda v: str(v.key))  # stable: each key's versions in order

    def served(self, stream: str, index: int = -1) -> dict[Any, dict[str, Any]]:
        """What the fake served to run `index` (the last by default), by key."""
        return self.observations[index].records[stream]
