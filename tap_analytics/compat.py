"""Every use of a singer-sdk internal, in one place.

singer-sdk (0.54 and 0.55 alike) has no public hook for the few things below, so the tap
overrides or reads private names here and nowhere else:

* `PluginBase._validate_config`: the SDK's own messages quote the offending value (a mistyped
  API key ends up in the logs). The tap validates with messages that name the setting only.
* `PluginBase.cb_config`, the command line's `--config` callback (public name, internal role):
  a file that is missing, unreadable or not a JSON object raises `ConfigFileError`, whose
  one-line message names the file and the fix, instead of a bare `FileNotFoundError` or a JSON
  parser's message that does not say which file.
* `Stream._write_record_message`: the fast record path. Records are parsed JSON already
  checked against the schema's field names; the SDK's per-record conformance, message object
  and encoder would change nothing, and cost half the run time.
* `Stream._increment_stream_state`: bookmarks must be compared as instants. The SDK keeps the
  larger of two values compared as text, so the tap hands it a canonical form of the value.
  These streams are unsorted (`is_sorted = False`): the SDK keeps the new bookmark in the
  state's `PROGRESS_MARKERS` and promotes it when the stream's scan is complete, and logs a
  warning each time it creates that entry (once per stream, every run). The tap creates the
  entry itself, exactly as the SDK writes it, so the state is the same and the warning, true of
  every run by design, is said once in docs/incremental.md instead.
* `Stream._stream_version` and `Stream.state_manager.is_flushed`: read and set by the fast path
  exactly as the SDK's own `_write_record_message` does.
* `Stream._process_record`: a record that is not emitted (not newer than the bookmark) still
  has its children synced, by the SDK's own rule for an emitted record (children of a record
  a stream map filters out are skipped).
* The mapper's classes (`SameRecordTransform`, `StreamMap.flattening_enabled`): the fast path
  is taken only while they say every record passes unchanged (`records_pass_unchanged`).
* `Stream._write_activate_version_message`: `Stream.sync` (final) sends ACTIVATE_VERSION before
  the records, once per call (once per parent for a child stream). The tap holds it back and
  sends it once after the stream's complete scan (`tap_analytics.versions`), through the same
  method. `Stream._write_schema_message` goes first, so a child stream that was never synced
  (no parent left) still has its SCHEMA before its ACTIVATE_VERSION; `Stream._initialized_at`
  gives that stream the version the SDK gives records (`Stream.sync`).

Not private, but relied on in the same way and tested with them: the SDK uses the counter and
the timer of the documented `Stream.get_record_counter` / `get_sync_timer` once per sync
(`tap_analytics.quiet`).

`PRIVATE_HOOKS` lists them with the parameters the tap relies on; `tests/unit/test_compat.py`
checks each against the installed singer-sdk and that a small sync still goes through it, so a
framework change fails a test that names the hook instead of silently changing the output.
"""

from __future__ import annotations

import inspect
import json
import typing as t
from dataclasses import dataclass
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._state import PROGRESS_MARKER_NOTE, PROGRESS_MARKERS
from singer_sdk.helpers.types import Context
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import PluginBase

if t.TYPE_CHECKING:
    from tap_analytics.writer import FastSingerWriter

P = inspect.Parameter

UNSORTED_NOTE = {PROGRESS_MARKER_NOTE: "Progress is not resumable if interrupted."}
"""What the SDK writes into a new `PROGRESS_MARKERS` entry of an unsorted stream's state."""


@dataclass(frozen=True)
class PrivateHook:
    """A private singer-sdk method the tap overrides or calls, and the parameters it relies on."""

    owner: type
    name: str
    parameters: tuple[tuple[str, Any], ...]  # (name, inspect kind), `self` excluded

    @property
    def qualname(self) -> str:
        return f"{self.owner.__name__}.{self.name}"

    def problem(self) -> str | None:
        """Why the installed singer-sdk no longer matches, or None when it does."""
        method = getattr(self.owner, self.name, None)
        if not callable(method):
            return f"singer-sdk hook {self.qualname} no longer exists"
        params = tuple(inspect.signature(method).parameters.values())[1:]
        found = tuple((p.name, p.kind) for p in params)
        if found != self.parameters:
            return (
                f"singer-sdk hook {self.qualname} changed its parameters: expected "
                f"{_show(self.parameters)}, found {_show(found)}"
            )
        return None


def _show(parameters: tuple[tuple[str, Any], ...]) -> str:
    return "(" + ", ".join(f"{name}: {kind.description}" for name, kind in parameters) + ")"


PRIVATE_HOOKS: tuple[PrivateHook, ...] = (
    PrivateHook(PluginBase, "_validate_config", (("raise_errors", P.KEYWORD_ONLY),)),
    PrivateHook(Stream, "_write_record_message", (("record", P.POSITIONAL_OR_KEYWORD),)),
    PrivateHook(
        Stream,
        "_increment_stream_state",
        (("latest_record", P.POSITIONAL_OR_KEYWORD), ("context", P.KEYWORD_ONLY)),
    ),
    PrivateHook(
        Stream,
        "_write_activate_version_message",
        (("full_table_version", P.POSITIONAL_OR_KEYWORD),),
    ),
    PrivateHook(Stream, "_write_schema_message", ()),
    PrivateHook(
        Stream,
        "_process_record",
        (
            ("record", P.POSITIONAL_OR_KEYWORD),
            ("child_context", P.POSITIONAL_OR_KEYWORD),
            ("partition_context", P.POSITIONAL_OR_KEYWORD),
        ),
    ),
)
"""The private methods the tap overrides or calls (private attributes are checked by tests too)."""


class ConfigFileError(Exception):
    """A `--config` file that is missing, unreadable, or not a JSON object."""


def config_file_problem(path: str) -> str | None:
    """What is wrong with a config file, naming it and the fix; None when it is usable."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return (
            f"config file {path!r} not found: pass --config the path of a JSON file that "
            "holds at least api_key and base_url."
        )
    except OSError as exc:  # permission denied, a directory
        return f"config file {path!r} cannot be read ({exc.strerror}): check it and its path."
    except json.JSONDecodeError as exc:  # the message quotes no content, only a position
        return f"config file {path!r} is not JSON (line {exc.lineno}: {exc.msg}): fix it."
    except UnicodeDecodeError:
        return f"config file {path!r} is not UTF-8 text: save it as UTF-8 JSON."
    if not isinstance(value, dict):
        return f'config file {path!r} holds no JSON object: write {{"api_key": ..., ...}}.'
    return None


class CompatTap(Tap):
    """A tap whose config check never quotes a value, and whose `--config` errors are short."""

    @classmethod
    def cb_config(cls, ctx: Any, param: Any, value: tuple[str, ...]) -> Any:
        """The SDK's callback, once every file given (`ENV` aside) reads as a JSON object."""
        for path in value:
            if path != "ENV" and (problem := config_file_problem(path)):
                raise ConfigFileError(problem)
        return super().cb_config(ctx, param, value)

    def config_problems(self) -> list[str]:
        """Every problem with `self.config`, each naming the setting, never its value."""
        return []

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = self.config_problems()
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors, schema={})
        if errors:  # discovery and --about need no config
            self.logger.info("Config incomplete (fine for discovery): %s", "; ".join(errors))
        return errors


class CompatStream(Stream):
    """A stream with the fast record path, bookmarks compared as instants, and ACTIVATE_VERSION
    sent when the tap decides rather than at the start of every `sync()`."""

    @property
    def fast_writer(self) -> FastSingerWriter | None:
        """The writer records go to directly, or None for the SDK's record path."""
        return None

    def time_extracted(self) -> str:
        """`time_extracted` for the fast path (an ISO 8601 timestamp)."""
        raise NotImplementedError

    def bookmark_value(self, record: dict[str, Any]) -> str | None:
        """The value to bookmark for `record`, or None when it cannot move the bookmark."""
        raise NotImplementedError

    def _write_record_message(self, record: dict[str, Any]) -> None:
        writer = self.fast_writer
        if writer is None:
            super()._write_record_message(record)
            return
        writer.write_record(self.name, record, self.time_extracted(), self._stream_version)
        self.state_manager.is_flushed = False  # a STATE must follow these records

    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        value = self.bookmark_value(latest_record)
        if value is not None:
            if not self.is_sorted:  # the SDK's entry, made before it warns that it makes it
                state = self.get_context_state(context)
                state.setdefault(PROGRESS_MARKERS, dict(UNSORTED_NOTE))
            rk = t.cast("str", self.replication_key)
            super()._increment_stream_state({rk: value}, context=context)

    def records_pass_unchanged(self) -> bool:
        """The SDK's per-record work would change no record: every property selected, no
        stream map, no flattening (the fast record path is then taken)."""
        maps = self.stream_maps
        return (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and all(self.mask.get(("properties", name), True) for name in self.schema["properties"])
        )

    def sync_children(self, record: dict[str, Any], context: Context | None) -> None:
        """Sync the children of a record that is not emitted, as the SDK does for one that is."""
        self._process_record(record, child_context=context)

    def hold_activate_version(self, version: int) -> None:
        """`sync()` would send ACTIVATE_VERSION now, before the records (by default: send)."""
        self.send_activate_version(version)

    def send_activate_version(self, version: int) -> None:
        """ACTIVATE_VERSION for this stream (each stream-map alias), after its SCHEMA."""
        self._write_schema_message()  # a repeat is dropped by the tap's writer
        super()._write_activate_version_message(version)

    def default_table_version(self) -> int:
        """The version `Stream.sync` gives this run's FULL_TABLE records: the tap's start (s)."""
        return self._initialized_at // 1000

    def _write_activate_version_message(self, full_table_version: int) -> None:
        self.hold_activate_version(full_table_version)
