"""Reading Singer lines (`dlt_bridge.messages`)."""

from __future__ import annotations

import gzip
import io
import json
import logging
from pathlib import Path

import pytest

from dlt_bridge.messages import (
    ActivateVersionMessage,
    BatchEncoding,
    BatchMessage,
    BridgeInputError,
    RecordMessage,
    SchemaMessage,
    SingerReader,
    StateMessage,
    iter_batch_records,
)


def read(data: bytes, **kwargs: object) -> list[tuple[int, object]]:
    return list(SingerReader(io.BytesIO(data), **kwargs))  # type: ignore[arg-type]


def test_parses_every_known_type_with_line_numbers() -> None:
    data = b"\n".join(
        [
            b'{"type":"SCHEMA","stream":"s","schema":{"properties":{}},"key_properties":["id"]}',
            b"",
            b'{"type":"RECORD","stream":"s","record":{"id":1},"time_extracted":"2024-01-01T00:00:00Z"}',
            b'{"type":"STATE","value":{"a":1}}',
            b'{"type":"ACTIVATE_VERSION","stream":"s","version":3}',
            b'{"type":"BATCH","stream":"s","encoding":{"format":"jsonl","compression":"gzip"},'
            b'"manifest":["file:///tmp/x.json.gz"]}',
        ]
    )
    got = read(data + b"\n")
    assert [n for n, _ in got] == [1, 3, 4, 5, 6]
    kinds = [type(m) for _, m in got]
    assert kinds == [
        SchemaMessage,
        RecordMessage,
        StateMessage,
        ActivateVersionMessage,
        BatchMessage,
    ]
    assert got[0][1].key_properties == ["id"]  # type: ignore[attr-defined]
    assert got[1][1].record == {"id": 1}  # type: ignore[attr-defined]


def test_schema_without_key_properties() -> None:
    ((_, m),) = read(b'{"type":"SCHEMA","stream":"s","schema":{}}\n')
    assert isinstance(m, SchemaMessage) and m.key_properties is None


def test_unknown_type_skipped_with_one_warning_per_type() -> None:
    data = b'{"type":"FOO"}\n{"type":"FOO","x":1}\n{"type":"BAR"}\n{"type":"STATE","value":1}\n'
    reader = SingerReader(io.BytesIO(data))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("dlt_bridge")
    logger.addHandler(handler)
    try:
        got = list(reader)
    finally:
        logger.removeHandler(handler)
    assert [n for n, _ in got] == [4]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'FOO'" in warnings[0] and "line 1" in warnings[0]
    assert "'BAR'" in warnings[1]
    assert reader.skipped_unknown == 3


@pytest.mark.parametrize(
    ("line", "fragment", "stream"),
    [
        (b"not json", "not valid JSON", None),
        (b"[1, 2]", "expected a JSON object", None),
        (b'{"stream": "s"}', "no string 'type'", "s"),
        (b'{"type": "RECORD", "stream": "s"}', "invalid RECORD message", "s"),
        (b'{"type": "RECORD", "stream": "s", "record": [1]}', "Expected `object`", "s"),
        (b'{"type": "SCHEMA", "stream": "s", "schema": "x"}', "invalid SCHEMA message", "s"),
    ],
)
def test_bad_lines_name_the_line(line: bytes, fragment: str, stream: str | None) -> None:
    data = b'{"type":"STATE","value":1}\n' + line + b"\n"
    with pytest.raises(BridgeInputError) as info:
        read(data)
    assert info.value.line == 2
    assert info.value.stream == stream
    assert fragment in str(info.value)
    assert str(info.value).startswith("line 2")


def test_truncated_last_line() -> None:
    data = b'{"type":"STATE","value":1}\n{"type":"RECO'
    with pytest.raises(BridgeInputError):
        read(data)
    with pytest.raises(BridgeInputError):
        read(data, on_truncated_tail=lambda: False)
    reader = SingerReader(io.BytesIO(data), on_truncated_tail=lambda: True)
    assert [n for n, _ in reader] == [1]
    assert reader.dropped_tail
    # a complete (newline-terminated) bad line is never forgiven
    with pytest.raises(BridgeInputError):
        read(b"{bad\n", on_truncated_tail=lambda: True)


@pytest.mark.parametrize("compression", ["gzip", None])
def test_batch_files(tmp_path: Path, compression: str | None) -> None:
    rows = [{"id": i, "v": f"x{i}"} for i in range(5)]
    body = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    path = tmp_path / ("b.json.gz" if compression else "b.jsonl")
    path.write_bytes(gzip.compress(body) if compression else body)
    message = BatchMessage(
        stream="s",
        encoding=BatchEncoding(format="jsonl", compression=compression),
        manifest=[path.as_uri(), str(path)],
    )
    got = list(iter_batch_records(message))
    assert [r for _, _, r in got] == rows + rows
    assert [n for _, n, _ in got][:5] == [1, 2, 3, 4, 5]


def test_batch_errors(tmp_path: Path) -> None:
    enc = BatchEncoding(format="parquet")
    with pytest.raises(ValueError, match="only 'jsonl'"):
        list(iter_batch_records(BatchMessage("s", enc, [])))
    enc = BatchEncoding(format="jsonl")
    with pytest.raises(ValueError, match="does not exist"):
        list(iter_batch_records(BatchMessage("s", enc, [str(tmp_path / "nope")])))
    with pytest.raises(ValueError, match="only local files"):
        list(iter_batch_records(BatchMessage("s", enc, ["s3://bucket/x.json"])))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": 1}\n[1]\n')
    with pytest.raises(ValueError, match="line 2"):
        list(iter_batch_records(BatchMessage("s", enc, [str(bad)])))
