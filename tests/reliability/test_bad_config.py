"""Issue 7.5: bad settings fail with a clear message naming the setting, before any request,
and never echo the API key (nor any value: a key pasted into the wrong setting stays hidden).

Every case runs in-process (fast; the errors and every log record are searched for the key)
and the representative ones also as `python -m tap_analytics` at DEBUG level against a live
fake, which must see zero requests.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from fake_api import DatasetConfig
from tap_analytics.tap import TapAnalytics
from tests.reliability.support import Workspace

pytestmark = pytest.mark.e2e

DIGITS = str(secrets.randbelow(10**17) + 10**17)  # a numeric "key", to look for in the output

Case = tuple[str, Callable[[str, str, int], dict[str, Any]], str, str]
# (id, config from (key, base_url, port), the setting named, words the message must contain)
CASES: list[Case] = [
    ("api_key missing", lambda k, u, p: {"base_url": u}, "api_key", "required"),
    ("api_key empty", lambda k, u, p: {"api_key": "", "base_url": u}, "api_key", "empty"),
    ("api_key blank", lambda k, u, p: {"api_key": "  \t", "base_url": u}, "api_key", "blank"),
    ("api_key int", lambda k, u, p: {"api_key": int(DIGITS), "base_url": u}, "api_key", "string"),
    ("api_key list", lambda k, u, p: {"api_key": [k], "base_url": u}, "api_key", "string"),
    ("api_key object", lambda k, u, p: {"api_key": {"key": k}, "base_url": u}, "api_key", "string"),
    ("api_key newline", lambda k, u, p: {"api_key": k + "\n", "base_url": u}, "api_key", "newline"),
    (
        "api_key inner space",
        lambda k, u, p: {"api_key": k[:9] + " " + k[9:], "base_url": u},
        "api_key",
        "whitespace",
    ),
    (
        "api_key non-ascii",
        lambda k, u, p: {"api_key": k + "\u2013", "base_url": u},
        "api_key",
        "non-ASCII",
    ),
    ("base_url missing", lambda k, u, p: {"api_key": k}, "base_url", "required"),
    (
        "base_url no scheme",
        lambda k, u, p: {"api_key": k, "base_url": f"127.0.0.1:{p}"},
        "base_url",
        "http://",
    ),
    (
        "base_url host:port",
        lambda k, u, p: {"api_key": k, "base_url": f"localhost:{p}"},
        "base_url",
        "http://",
    ),
    (
        "base_url one slash",
        lambda k, u, p: {"api_key": k, "base_url": f"http:/127.0.0.1:{p}"},
        "base_url",
        "http://",
    ),
    (
        "base_url scheme typo",
        lambda k, u, p: {"api_key": k, "base_url": f"htps://127.0.0.1:{p}"},
        "base_url",
        "http://",
    ),
    ("base_url /v1", lambda k, u, p: {"api_key": k, "base_url": u + "/v1"}, "base_url", "API root"),
    (
        "base_url /v1/app",
        lambda k, u, p: {"api_key": k, "base_url": u + "/v1/app/"},
        "base_url",
        "API root",
    ),
    (
        "base_url /api/v1",
        lambda k, u, p: {"api_key": k, "base_url": u + "/api/v1"},
        "base_url",
        "API root",
    ),
    (
        "base_url port typo",
        lambda k, u, p: {"api_key": k, "base_url": u + "v1"},
        "base_url",
        "port",
    ),
    (
        "base_url space",
        lambda k, u, p: {"api_key": k, "base_url": u + " /"},
        "base_url",
        "whitespace",
    ),
    (
        "base_url query",
        lambda k, u, p: {"api_key": k, "base_url": u + "?key=" + k},
        "base_url",
        "query",
    ),
    ("base_url is the key", lambda k, u, p: {"api_key": k, "base_url": k}, "base_url", "http://"),
    (
        "page_size 0",
        lambda k, u, p: {"api_key": k, "base_url": u, "page_size": 0},
        "page_size",
        ">= 1",
    ),
    (
        "page_size 251",
        lambda k, u, p: {"api_key": k, "base_url": u, "page_size": 251},
        "page_size",
        "<= 250",
    ),
    (
        "page_size text",
        lambda k, u, p: {"api_key": k, "base_url": u, "page_size": "50"},
        "page_size",
        "integer",
    ),
    (
        "page_size fraction",
        lambda k, u, p: {"api_key": k, "base_url": u, "page_size": 2.5},
        "page_size",
        "integer",
    ),
    (
        "start_date words",
        lambda k, u, p: {"api_key": k, "base_url": u, "start_date": "yesterday"},
        "start_date",
        "ISO 8601",
    ),
    (
        "start_date no month 13",
        lambda k, u, p: {"api_key": k, "base_url": u, "start_date": "2024-13-45"},
        "start_date",
        "ISO 8601",
    ),
    (
        "start_date Feb 30",
        lambda k, u, p: {"api_key": k, "base_url": u, "start_date": "2024-02-30T00:00:00Z"},
        "start_date",
        "ISO 8601",
    ),
    (
        "start_date number",
        lambda k, u, p: {"api_key": k, "base_url": u, "start_date": 20240101},
        "start_date",
        "string",
    ),
    (
        "start_date is the key",
        lambda k, u, p: {"api_key": k, "base_url": u, "start_date": k},
        "start_date",
        "ISO 8601",
    ),
]
PROCESS_CASES = {
    "api_key missing",
    "api_key empty",
    "api_key list",
    "api_key newline",
    "base_url no scheme",
    "base_url port typo",
    "page_size 251",
    "start_date no month 13",
}


def _hidden(text: str, key: str) -> None:
    assert key not in text and DIGITS not in text and key[8:20] not in text, text


@pytest.mark.parametrize(("name", "make", "setting", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_setting_is_named_before_any_request_without_echo(
    ws: Workspace,
    fake_api_factory: Any,
    caplog: pytest.LogCaptureFixture,
    name: str,
    make: Callable[[str, str, int], dict[str, Any]],
    setting: str,
    words: str,
) -> None:
    api = fake_api_factory(DatasetConfig(applications=2), token=ws.key)
    config = make(ws.key, api.url, api.port)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigValidationError) as info:
        TapAnalytics(config=config, parse_env_config=False)
    errors = " | ".join(info.value.errors)
    assert f"setting '{setting}'" in errors and words in errors, errors
    ws.keep("in-process.log", errors + "\n" + str(info.value) + "\n" + caplog.text)
    _hidden(errors + str(info.value) + caplog.text, ws.key)
    assert api.stats()["total"] == 0

    if name in PROCESS_CASES:
        run = ws.tap(config)
        assert run.returncode != 0
        assert f"setting '{setting}'" in run.stderr and words in run.stderr, run.stderr[-2000:]
        assert "Traceback" not in run.stderr  # a message, not a crash
        _hidden(run.stdout + run.stderr, ws.key)
        assert api.stats()["total"] == 0


def test_an_unknown_base_path_is_reported_at_the_first_request(
    ws: Workspace, fake_api_factory: Any
) -> None:
    """A typo in a path the tap cannot know is wrong (`/vl`) fails at the first request, with
    the stream, the path, the status and a pointer at `base_url`; no retries, no state."""
    api = fake_api_factory(DatasetConfig(applications=2), token=ws.key)
    run = ws.tap(ws.config_for(api, base_url=api.url + "/vl", max_concurrency=1))
    assert run.returncode != 0
    error = [line for line in run.stderr.splitlines() if "HTTP 404" in line][-1]
    assert "stream 'applications', GET /v1/app" in error and "`base_url`" in error, error
    assert api.stats()["total"] == 1
    assert not any(
        m["value"].get("bookmarks", {}).get("applications", {}).get("replication_key_value")
        for m in run.of_type("STATE")
    )
