"""The singer-sdk standard tap tests, run against the mocked API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import MockAPI, config, mock_api, serve_everything

_StandardTests = get_tap_test_class(
    TapAnalytics,
    config=config(page_size=2),
    suite_config=SuiteConfig(ignore_no_records_for_streams=[]),
)


@pytest.fixture(scope="module", autouse=True)
def _mocked_api() -> Iterator[MockAPI]:
    """The API, mocked for the whole module: the SDK's runner syncs once per class."""
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=3, sources=2)
        yield api


class TestTapAnalyticsStandard(_StandardTests):  # type: ignore[misc, valid-type]
    """The SDK's built-in tap and stream tests."""
