"""`--deletes {off,soft,hard}`: ACTIVATE_VERSION applied in the same load package as the rows.

The loader (`dlt_bridge.loader.SingerLoader`) hands this module every record's key and version,
every ACTIVATE_VERSION, and the end of the input:

* a RECORD's key is remembered under its `version` (records without one count for any version);
* ACTIVATE_VERSION is checked (the stream needs a SCHEMA; its version may not be older than one
  already applied, kept in the dlt source state under `VERSIONS_KEY`, next to the Singer state)
  and remembered, not applied: a tap that sends it first (singer-sdk's default) is then as safe
  as one that sends it after the records;
* at the end of a complete input (in `run`, only if the tap exited 0), for each activated stream
  the live keys stored in the destination that the version did not send are turned into rows
  that mark (`soft`) or delete (`hard`) them (`analytics_dlt.deletions`), and the applied
  versions are written to the source state. They go into the run's last load package with its
  last rows and its Singer state: dlt commits all of it, or nothing (a failed or killed run
  leaves a package that is finished or discarded as a whole by the next run).

With `off` ACTIVATE_VERSION is ignored (merge tables keep every row).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dlt

from analytics_dlt.deletions import (
    DeleteMode,
    json_columns_of,
    live_keys,
    merge_problem,
    run_time,
    tombstones,
)
from analytics_dlt.hints import SequenceGenerator
from dlt_bridge.messages import ActivateVersionMessage, BridgeInputError

__all__ = ["VERSIONS_KEY", "DeletionTracker", "TapFailedError", "tap_files_for_deletes"]

log = logging.getLogger("dlt_bridge")

VERSIONS_KEY = "singer_versions"
"""Key of `{stream: last applied version}` in the dlt source state, next to the Singer state."""


class TapFailedError(Exception):
    """The tap of a `run --deletes` exited non-zero: nothing of the run may be committed."""

    def __init__(self, code: int, cause: str | None = None) -> None:
        self.code = code
        super().__init__(f"the tap failed (exit {code})" + (f": {cause}" if cause else ""))


class DeletionTracker:
    """Keys per stream and version, the activated versions, and the rows that apply them."""

    def __init__(
        self,
        pipeline: dlt.Pipeline,
        mode: DeleteMode,
        sequence: SequenceGenerator,
        *,
        on_input_end: Callable[[], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.mode = mode
        self.sequence = sequence
        self.on_input_end = on_input_end
        self.deleted_at = run_time()
        self.keys: dict[str, dict[int | None, set[Any]]] = {}
        self.activated: dict[str, int] = {}
        self.deleted: dict[str, int] = {}
        self.gone: dict[str, set[Any]] = {}
        """Keys found gone per applied stream (history closes their versions)."""
        self._merge_checked = False

    def on_schema(self, line: int, stream: str, key_properties: list[str]) -> None:
        """The destination must merge: checked at the first keyed stream, naming it."""
        if self._merge_checked or not key_properties:
            return
        problem = merge_problem(self.pipeline)
        if problem is not None:
            raise BridgeInputError(line, f"--deletes {self.mode}: {problem}", stream)
        self._merge_checked = True

    def on_record(self, stream: str, key_properties: list[str], record: Any, version: Any) -> None:
        if len(key_properties) != 1:
            return
        by_version = self.keys.get(stream)
        if by_version is None:
            by_version = self.keys[stream] = {}
        keys = by_version.get(version)
        if keys is None:
            keys = by_version[version] = set()
        keys.add(record.get(key_properties[0]))

    def on_activate(
        self,
        line: int,
        message: ActivateVersionMessage,
        has_schema: bool,
        source_state: Mapping[str, Any],
    ) -> None:
        stream = message.stream
        if not has_schema:
            raise BridgeInputError(line, "ACTIVATE_VERSION before the stream's SCHEMA", stream)
        applied = (source_state.get(VERSIONS_KEY) or {}).get(stream)
        known = [v for v in (applied, self.activated.get(stream)) if isinstance(v, int)]
        latest = max(known) if known else None
        if latest is not None and message.version < latest:
            raise BridgeInputError(
                line,
                f"ACTIVATE_VERSION {message.version} is older than version {latest}, already"
                " applied to this stream; refusing to delete with a stale version",
                stream,
            )
        self.activated[stream] = message.version

    def finish(self, streams: Mapping[str, Any], source_state: dict[str, Any]) -> Iterator[Any]:
        """At the end of a complete input: the rows that apply every activated version."""
        if self.on_input_end is not None:
            self.on_input_end()
        versions = source_state.setdefault(VERSIONS_KEY, {})
        for name, version in self.activated.items():
            stream = streams[name]
            keys = stream.key_properties
            if len(keys) != 1:
                log.warning(
                    "stream %r: ACTIVATE_VERSION not applied: deletions need exactly one key"
                    " property, the stream has %d",
                    name,
                    len(keys),
                )
                continue
            hints = stream.hints
            by_version = self.keys.get(name, {})
            sent = by_version.get(version, set()) | by_version.get(None, set())
            missing = live_keys(self.pipeline, hints["table_name"], keys[0], self.mode) - sent
            rows = tombstones(
                self.pipeline,
                hints["table_name"],
                keys[0],
                missing,
                self.mode,
                self.deleted_at,
                self.sequence.take(len(missing)),
                json_columns_of(hints["columns"]),
            )
            versions[name] = version
            self.deleted[name] = len(rows)
            self.gone[name] = missing
            if rows:
                log.info(
                    "stream %r: %s %d row(s) not in version %d",
                    name,
                    "deleting" if self.mode == "hard" else "marking",
                    len(rows),
                    version,
                )
                yield dlt.mark.with_hints(
                    rows, dlt.mark.make_hints(**hints), create_table_variant=True
                )


def tap_files_for_deletes(
    command: list[str], config_path: str, catalog_path: str | None, workdir: str
) -> tuple[str, str]:
    """A config with `emit_activate_version_messages: true` and a catalog with every stream
    FULL_TABLE, written to `workdir` (the user's files are read, never changed).

    Without a catalog the tap's own (`--discover`) is used with every stream selected.
    """
    with open(config_path, encoding="utf-8") as fh:
        config = json.load(fh)
    config["emit_activate_version_messages"] = True
    if catalog_path:
        with open(catalog_path, encoding="utf-8") as fh:
            catalog = json.load(fh)
        select_all = False
    else:
        found = subprocess.run(
            [*command, "--config", config_path, "--discover"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if found.returncode != 0:
            tail = found.stderr.decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"tap discovery failed (exit {found.returncode}): {tail}")
        catalog = json.loads(found.stdout)
        select_all = True
    for entry in catalog.get("streams") or []:
        entry["replication_method"] = "FULL_TABLE"
        for md in entry.get("metadata") or []:
            if md.get("breadcrumb") == []:
                md.setdefault("metadata", {})["replication-method"] = "FULL_TABLE"
                if select_all:
                    md["metadata"]["selected"] = True
    paths = (os.path.join(workdir, "config.json"), os.path.join(workdir, "catalog.json"))
    for path, value in zip(paths, (config, catalog), strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the config has the key
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh)
    return paths
