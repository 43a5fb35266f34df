"""Reading Singer messages: one msgspec decode per line, line numbers kept for errors.

Message rules enforced here and in `dlt_bridge.loader`:

* every non-blank line must be a JSON object with a string `type`;
* `RECORD`, `SCHEMA`, `STATE`, `BATCH` and `ACTIVATE_VERSION` are understood; any other type is
  skipped with one warning per type (the Singer spec asks targets to ignore unknown messages);
* a RECORD needs an earlier SCHEMA for its stream (checked by the consumer).
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any
from urllib.parse import unquote, urlparse

import msgspec

__all__ = [
    "ActivateVersionMessage",
    "BatchMessage",
    "BridgeInputError",
    "Message",
    "RecordMessage",
    "SchemaMessage",
    "SingerReader",
    "StateMessage",
    "iter_batch_records",
]

log = logging.getLogger("dlt_bridge")


class RecordMessage(msgspec.Struct, tag_field="type", tag="RECORD"):
    stream: str
    record: dict[str, Any]
    version: int | None = None
    time_extracted: str | None = None


class SchemaMessage(msgspec.Struct, tag_field="type", tag="SCHEMA"):
    stream: str
    schema: dict[str, Any]
    key_properties: list[str] | None = None
    bookmark_properties: list[str] | None = None


class StateMessage(msgspec.Struct, tag_field="type", tag="STATE"):
    value: Any = None


class ActivateVersionMessage(msgspec.Struct, tag_field="type", tag="ACTIVATE_VERSION"):
    stream: str
    version: int


class BatchEncoding(msgspec.Struct):
    format: str
    compression: str | None = None


class BatchMessage(msgspec.Struct, tag_field="type", tag="BATCH"):
    stream: str
    encoding: BatchEncoding
    manifest: list[str]


Message = RecordMessage | SchemaMessage | StateMessage | ActivateVersionMessage | BatchMessage

KNOWN_TYPES = frozenset({"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"})


class BridgeInputError(Exception):
    """Bad Singer input. Carries the 1-based line number and, when known, the stream."""

    def __init__(self, line: int | None, reason: str, stream: str | None = None) -> None:
        self.line = line
        self.stream = stream
        self.reason = reason
        where = f"line {line}" if line is not None else "input"
        if stream is not None:
            where += f", stream {stream!r}"
        super().__init__(f"{where}: {reason}")


def _snippet(raw: bytes, limit: int = 80) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SingerReader:
    """Iterates `(line_number, message)` over a binary stream of Singer messages.

    `on_truncated_tail` decides what to do with a last line that has no newline and does not
    parse (a producer killed mid-write): return True to drop it (with a warning), False to fail.
    """

    def __init__(
        self,
        source: IO[bytes] | Iterable[bytes],
        *,
        on_truncated_tail: Callable[[], bool] | None = None,
    ) -> None:
        self._source = source
        self._decoder = msgspec.json.Decoder(Message)
        self._generic = msgspec.json.Decoder()
        self._warned_types: set[str] = set()
        self._on_truncated_tail = on_truncated_tail
        self.line_number = 0
        self.skipped_unknown = 0
        self.dropped_tail = False

    def __iter__(self) -> Iterator[tuple[int, Message]]:
        decode = self._decoder.decode
        number = self.line_number
        for raw in self._source:
            number += 1
            self.line_number = number
            try:
                yield number, decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                message = self._slow_path(number, raw, exc)
                if message is not None:
                    yield number, message

    def _slow_path(self, number: int, raw: bytes, exc: Exception) -> Message | None:
        if not raw.strip():
            return None  # blank line
        try:
            obj = self._generic.decode(raw)
        except msgspec.DecodeError as decode_exc:
            truncated = not raw.endswith(b"\n") and self._on_truncated_tail is not None
            if truncated and self._on_truncated_tail():  # type: ignore[misc]
                self.dropped_tail = True
                log.warning(
                    "line %d: dropped an incomplete last line (the producer stopped mid-write)",
                    number,
                )
                return None
            raise BridgeInputError(
                number, f"not valid JSON ({decode_exc}): {_snippet(raw)}"
            ) from None
        if not isinstance(obj, dict):
            raise BridgeInputError(number, f"expected a JSON object, got {type(obj).__name__}")
        mtype = obj.get("type")
        stream = obj.get("stream") if isinstance(obj.get("stream"), str) else None
        if not isinstance(mtype, str):
            raise BridgeInputError(number, "message has no string 'type'", stream)
        if mtype not in KNOWN_TYPES:
            self.skipped_unknown += 1
            if mtype not in self._warned_types:
                self._warned_types.add(mtype)
                log.warning(
                    "line %d: skipping message of unknown type %r (warned once per type)",
                    number,
                    mtype,
                )
            return None
        raise BridgeInputError(number, f"invalid {mtype} message: {exc}", stream) from None


def _manifest_path(entry: str) -> str:
    parsed = urlparse(entry)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme == "file" else entry
    if len(parsed.scheme) == 1:  # a Windows drive letter, not a scheme
        return entry
    raise ValueError(f"unsupported BATCH manifest location {entry!r} (only local files)")


def iter_batch_records(message: BatchMessage) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Records of a singer-sdk BATCH message: `(file, line_in_file, record)`.

    Supports `encoding.format == "jsonl"`, uncompressed or `gzip` (also recognised by a `.gz`
    suffix). Each line of a file is one record object.
    """
    if message.encoding.format != "jsonl":
        raise ValueError(
            f"unsupported BATCH encoding format {message.encoding.format!r} (only 'jsonl')"
        )
    compression = (message.encoding.compression or "").lower()
    if compression not in ("", "none", "gzip"):
        raise ValueError(f"unsupported BATCH compression {compression!r} (gzip or none)")
    decoder = msgspec.json.Decoder(dict[str, Any])
    for entry in message.manifest:
        path = _manifest_path(entry)
        if not os.path.exists(path):
            raise ValueError(f"BATCH file {entry!r} does not exist")
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            stream: IO[bytes]
            if compression == "gzip" or head == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=fh)  # type: ignore[assignment]
            else:
                stream = fh
            for i, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                try:
                    record = decoder.decode(raw)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    raise ValueError(f"BATCH file {entry!r} line {i}: {exc}") from None
                yield entry, i, record
