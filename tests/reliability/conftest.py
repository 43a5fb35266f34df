"""Every reliability test gets a workspace with a fresh API key; when the test ends, every
artifact in the workspace is searched for the key (see `support.find_secret`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.assert_no_leak()
