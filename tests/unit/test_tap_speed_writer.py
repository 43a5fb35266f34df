"""The writer's shortcuts produce exactly the bytes of encoding each whole message."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import msgspec
import pytest
from singer_sdk.singerlib.messages import StateMessage

from tap_analytics.writer import FastSingerWriter, _enc_hook

ENCODE = msgspec.json.Encoder(enc_hook=_enc_hook).encode


def _message(
    stream: str, record: dict[str, Any], time_extracted: str, version: int | None
) -> bytes:
    message: dict[str, Any] = {
        "type": "RECORD",
        "stream": stream,
        "record": record,
        "time_extracted": time_extracted,
    }
    if version is not None:
        message["version"] = version
    return ENCODE(message) + b"\n"


def test_record_lines_equal_the_encoded_message() -> None:
    writer = FastSingerWriter()
    calls = [
        ("applications", {"id": "a", "n": 1}, "2024-01-01T00:00:00+00:00", None),
        ("applications", {"id": "b", "x": None}, "2024-01-01T00:00:00+00:00", None),
        ("endpoints", {"id": "e", "nested": {"k": [1, 2.5, True]}}, "2024-01-01T00:00:00+00:00", 7),
        ("applications", {"id": "c"}, "2024-01-01T00:00:01+00:00", None),  # a new second
        ("endpoints", {"id": "f", "d": decimal.Decimal("1.5")}, "2024-01-01T00:00:01+00:00", 8),
        ("endpoints", {"id": "g", "t": dt.datetime(2024, 1, 2)}, "2024-01-01T00:00:01+00:00", None),
        ('stream "quoted"', {"ü": "ß"}, "2024-01-01T00:00:01+00:00", 0),
    ]
    for call in calls:
        writer.write_record(*call)
    assert bytes(writer._pending) == b"".join(_message(*call) for call in calls)
    writer._pending.clear()  # nothing for the exit flush to print


def test_a_record_that_cannot_be_encoded_leaves_no_partial_line() -> None:
    writer = FastSingerWriter()
    writer.write_record("s", {"id": 1}, "t", None)
    before = bytes(writer._pending)

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        writer.write_record("s", {"id": 2, "bad": Boom()}, "t", None)
    assert bytes(writer._pending) == before
    writer._pending.clear()


@pytest.mark.parametrize(
    "value",
    [
        {"bookmarks": {"a": {"replication_key": "updatedAt", "replication_key_value": "x"}}},
        {"bookmarks": {}, "currently_syncing": None},
        {},
    ],
)
def test_state_lines_equal_the_sdk_message_dict(value: dict[str, Any]) -> None:
    message = StateMessage(value=value)
    assert FastSingerWriter().serialize_message(message) == ENCODE(message.to_dict()) + b"\n"
