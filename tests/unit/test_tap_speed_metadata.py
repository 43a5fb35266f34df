"""Versions read from METADATA headers equal what singer-sdk reads through importlib.metadata."""

from __future__ import annotations

import email

from singer_sdk.plugin_base import PluginBase

from tap_analytics.metadata import PackageHeaders, package_headers
from tap_analytics.tap import TapAnalytics

SAMPLE = """Metadata-Version: 2.4
Name: some-tap
Version: 1.2.3rc1
Summary: A tap
 that folds its summary
Requires-Python: >=3.10
Classifier: Programming Language :: Python :: 3.10
Classifier: Programming Language :: Python :: 3.11
Classifier: License :: OSI Approved
Description-Content-Type: text/markdown

# Some tap

Version: not a header
"""


def test_headers_read_as_the_email_parser_reads_them() -> None:
    ours, theirs = PackageHeaders(SAMPLE), email.message_from_string(SAMPLE)
    for name in ("Name", "version", "Requires-Python", "Missing"):
        assert ours.get(name) == theirs.get(name)
    assert ours.get_all("Classifier") == theirs.get_all("Classifier")
    assert ours.get_all("Missing", []) == theirs.get_all("Missing", [])
    assert (ours.get("Summary") or "").split() == (theirs.get("Summary") or "").split()


def test_the_tap_reports_the_versions_the_sdk_would() -> None:
    assert TapAnalytics.get_plugin_version() == PluginBase.get_plugin_version.__func__(TapAnalytics)  # type: ignore[attr-defined]
    assert TapAnalytics.get_sdk_version() == PluginBase.get_sdk_version.__func__(TapAnalytics)  # type: ignore[attr-defined]
    sdk_pythons = PluginBase.get_supported_python_versions.__func__(TapAnalytics)  # type: ignore[attr-defined]
    assert TapAnalytics.get_supported_python_versions() == sdk_pythons


def test_a_package_that_is_not_installed_has_no_headers() -> None:
    assert package_headers("no-such-package-anywhere") is None
