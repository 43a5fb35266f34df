"""A local fake of the analytics API for demos, end-to-end tests, fault tests and benchmarks.

Binds to 127.0.0.1 only. See docs/fake_api.md.
"""

from .api import FakeAPI, FakeAPIProcess, start_fake_api
from .data import DEMO_DATASET, Dataset, DatasetConfig, format_ts, parse_ts
from .faults import (
    ALL_KINDS,
    BAD_KINDS,
    DEFAULT_RANDOM_KINDS,
    TRANSIENT_KINDS,
    FaultConfig,
    FaultRule,
    fault_for,
)
from .server import DEFAULT_LIMIT, HOST, MAX_LIMIT, FakeServer

__all__ = [
    "ALL_KINDS",
    "BAD_KINDS",
    "DEFAULT_LIMIT",
    "DEFAULT_RANDOM_KINDS",
    "DEMO_DATASET",
    "HOST",
    "MAX_LIMIT",
    "TRANSIENT_KINDS",
    "Dataset",
    "DatasetConfig",
    "FakeAPI",
    "FakeAPIProcess",
    "FakeServer",
    "FaultConfig",
    "FaultRule",
    "fault_for",
    "format_ts",
    "parse_ts",
    "start_fake_api",
]
