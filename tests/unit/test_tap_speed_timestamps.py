"""`canonical`'s shortcut for the API's usual form agrees with the general parser."""

from __future__ import annotations

import random

import pytest

from analytics_api import timestamps
from analytics_api.timestamps import TimestampError, canonical


def _general(value: str) -> str:
    try:
        return timestamps._canonical(value)
    except TimestampError:
        return "error"


def _fast(value: str) -> str:
    try:
        return canonical(value)
    except TimestampError:
        return "error"


EDGES = [
    "2024-02-29T23:59:59Z",
    "2023-02-29T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-00-10T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:60:00Z",
    "2024-01-01T23:59:60Z",
    "2024-01-01T00:00:00.Z",
    "2024-01-01T00:00:00.1Z",
    "2024-01-01T00:00:00.123456789Z",
    "2024-01-01T00:00:00.1234567891Z",
    "2024-01-01t00:00:00Z",
    "2024-01-01T00:00:00z",
    "2024-01-01 00:00:00Z",
    "2024-01-01T00:00:00+00:00",
    "2024-01-01T00:00:00-05:30",
    "2024-01-01",
    "2024-1-01T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00Z\n",
    "\uff12024-01-01T00:00:00Z",
    "2024-01-01T0\uff10:00:00Z",
    "2024-01-01T00:00:0\u0661Z",
    "",
]


@pytest.mark.parametrize("value", EDGES)
def test_edge_cases_agree(value: str) -> None:
    assert _fast(value) == _general(value)


def test_random_timestamps_agree() -> None:
    rng = random.Random(13)
    digits = "0123456789"
    for _ in range(20_000):
        year = "".join(rng.choice(digits) for _ in range(4))
        month, day, hour, minute, second = (f"{rng.randint(0, 99):02d}" for _ in range(5))
        fraction = rng.choice(
            ["", "." + "".join(rng.choice(digits) for _ in range(rng.randint(0, 11)))]
        )
        suffix = rng.choice(["Z", "Z", "z", "+00:00", "-01:30", ""])
        value = f"{year}-{month}-{day}T{hour}:{minute}:{second}{fraction}{suffix}"
        assert _fast(value) == _general(value), value


def test_not_a_string_is_an_error() -> None:
    with pytest.raises(TimestampError):
        canonical(20240101)  # type: ignore[arg-type]
