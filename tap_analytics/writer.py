"""Singer message output: msgspec encoding into our own buffer, written out in large chunks.

The SDK's default writer encodes with simplejson and flushes after every message (two of the
largest costs per record). Here lines collect in a buffer that goes to stdout when it passes
64 KiB and at every STATE message. That keeps the Singer guarantee that matters: a target never
sees a STATE before the records it covers, because bytes leave in order. Our own buffer also
holds when stdout is unbuffered (`PYTHONUNBUFFERED=1`, common in containers), where writing
each line would cost one system call per record.

A SCHEMA message identical to the last one sent for its stream is not repeated: the SDK sends
a child stream's SCHEMA every time it syncs the child for a parent (3,001 times for 3,000
applications); targets need it once.

Per record only the record itself is encoded: the bytes around it (type, stream, time_extracted,
version) are encoded once and reused, which gives the same line as encoding the whole message.
A STATE message is encoded from its value directly, without the SDK's `to_dict` (a deep copy of
the state through `dataclasses.asdict`, once per parent).
"""

from __future__ import annotations

import atexit
import datetime as dt
import decimal
import sys
import typing as t

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.messages import Message, SingerMessageType


def _enc_hook(obj: t.Any) -> t.Any:
    if isinstance(obj, dt.datetime):
        return obj.isoformat(sep="T")
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return float(obj) if obj != obj.to_integral_value() else int(obj)
    return str(obj)


class FastSingerWriter(GenericSingerWriter[bytes, Message]):
    """msgspec-encoded Singer lines; one flush per STATE message rather than per message."""

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._pending = bytearray()
        self._schemas: dict[str, tuple[t.Any, ...]] = {}
        # stream -> (time_extracted, version, bytes before the record, bytes after it)
        self._frames: dict[str, tuple[str, int | None, bytes, bytes]] = {}
        atexit.register(self.flush)  # records after the last STATE still reach the target

    def serialize_message(self, message: Message) -> bytes:
        if message.type == SingerMessageType.STATE:
            value = t.cast("t.Any", message).value
            if value is not None:  # as `to_dict`: {"type", "value"}, without the deep copy
                return self._encoder.encode({"type": "STATE", "value": value}) + b"\n"
        return self._encoder.encode(message.to_dict()) + b"\n"

    def write_message(self, message: Message) -> None:
        if message.type == SingerMessageType.SCHEMA:
            schema = t.cast("t.Any", message)
            sent = (schema.schema, schema.key_properties, schema.bookmark_properties)
            if self._schemas.get(schema.stream) == sent:
                return
            self._schemas[schema.stream] = sent
        self._pending += self.format_message(message)
        if message.type == SingerMessageType.STATE or len(self._pending) >= self.CHUNK:
            self.flush()

    def write_record(
        self, stream: str, record: dict[str, t.Any], time_extracted: str, version: int | None
    ) -> None:
        """The per-record fast path: no message object, only the record is encoded.

        The line equals the encoding of `{"type": "RECORD", "stream", "record",
        "time_extracted"[, "version"]}`; the parts around the record change once a second.
        """
        frame = self._frames.get(stream)
        if frame is None or frame[0] is not time_extracted or frame[1] != version:
            frame = self._frame(stream, time_extracted, version)
        pending = self._pending
        size = len(pending)
        pending += frame[2]
        try:
            self._encoder.encode_into(record, pending, -1)  # append
        except BaseException:
            del pending[size:]  # no half line
            raise
        pending += frame[3]
        if len(pending) >= self.CHUNK:
            self.flush()

    def _frame(
        self, stream: str, time_extracted: str, version: int | None
    ) -> tuple[str, int | None, bytes, bytes]:
        encode = self._encoder.encode
        head = b'{"type":"RECORD","stream":' + encode(stream) + b',"record":'
        tail = b',"time_extracted":' + encode(time_extracted)
        if version is not None:
            tail += b',"version":' + encode(version)
        frame = (time_extracted, version, head, tail + b"}\n")
        self._frames[stream] = frame
        return frame

    def flush(self) -> None:
        """Write out everything encoded so far, then flush stdout itself."""
        if self._pending:
            out = sys.stdout.buffer
            out.write(self._pending)
            self._pending.clear()
            out.flush()
