"""The API contract, asserted the same way for both engines (`engine` in ["tap", "native"]).

The table of behaviours is in README.md next to this file. Each case scripts a small local server
(`servers.ScriptedServer`) or uses the shared fake API, runs one engine through
`engines.run`, and asserts on the outcome: records, error type and keywords, request counts, the
waits the client asked for (recorded, never slept), and log records counted, not worded.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from analytics_api.errors import (
    AnalyticsAPIError,
    AuthenticationError,
    PaginationError,
    ParentNotFoundError,
    RecordError,
    RedirectRefusedError,
    ResponseFormatError,
    RetryBudgetExhaustedError,
)
from analytics_api.limits import MAX_PAGE_SIZE
from analytics_api.redact import MASK
from analytics_api.streams import STREAMS, STREAMS_BY_NAME, child_path
from analytics_api.timestamps import canonical, canonical_from_datetime
from fake_api import FakeAPI
from tests.conformance.conftest import API_KEY, Runner, Timeline
from tests.conformance.engines import Outcome, all_streams, comparable_set, run_cli
from tests.servers import (
    EMPTY,
    Reply,
    Request,
    ScriptedServer,
    at_most,
    error,
    failing_first,
    page,
    paged,
    sequence,
)

APPS = "/v1/app"


def app(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"app_{i:03d}",
        "name": f"app {i}",
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": f"2024-01-02T00:00:{i % 60:02d}.5Z",
        **extra,
    }


def record_for(stream: str, i: int, **extra: Any) -> dict[str, Any]:
    """A minimal valid record of `stream`: its keys and timestamps."""
    definition = STREAMS_BY_NAME[stream]
    prefix = stream[:3]
    record = {
        definition.primary_key: f"{prefix}_{i:03d}",
        "createdAt": f"2024-01-01T00:00:{i % 60:02d}Z",
        "updatedAt": f"2024-01-02T00:00:{i % 60:02d}.25Z",
    }
    record.update(extra)
    return record


def ids(outcome: Outcome, stream: str = "applications") -> list[str]:
    key = STREAMS_BY_NAME[stream].primary_key
    return sorted(str(r[key]) for r in outcome.records.get(stream, []))


def cursors(requests: list[Request]) -> list[str | None]:
    return [r.query.get("iterator") for r in requests]


def assert_failed(outcome: Outcome, kind: type[BaseException], *words: str) -> str:
    """The run failed with `kind`, its message holds every word; returns the message."""
    assert not outcome.ok, f"{outcome.engine}: expected {kind.__name__}, the run succeeded"
    assert isinstance(outcome.error, kind), (
        f"{outcome.engine}: expected {kind.__name__}, got {type(outcome.error).__name__}: "
        f"{outcome.error}"
    )
    message = outcome.message
    for word in words:
        assert word in message, f"{outcome.engine}: {word!r} not in {message!r}"
    assert_no_key(outcome)
    return message


SECRET_TAIL = API_KEY[len(API_KEY) // 2 :]


def assert_no_key(outcome: Outcome) -> None:
    """Neither the key nor its second half (a cut-off excerpt) anywhere in what the run
    produced: error chain, logs at every level, stdout, stderr, warnings, records, tables."""
    text = outcome.everything()
    for secret in (API_KEY, SECRET_TAIL):
        at = text.find(secret)
        if at >= 0:
            context = text[max(0, at - 120) : at + len(secret) + 40].replace(secret, "<KEY>")
            pytest.fail(f"{outcome.engine}: the API key leaked: ...{context}...")


# -- pagination --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "page_size", "requests"),
    [(7, 3, 3), (6, 3, 2), (1, 250, 1), (0, 5, 1)],
    ids=["partial-last-page", "full-last-page", "single-page", "empty"],
)
def test_done_ends_paging_though_the_last_iterator_is_set(
    api: ScriptedServer, run_engine: Runner, count: int, page_size: int, requests: int
) -> None:
    records = [app(i) for i in range(count)]
    api.pages(APPS, records)
    outcome = run_engine(api.url, ["applications"], page_size=page_size)
    assert outcome.ok, outcome.error
    assert ids(outcome) == [r["id"] for r in records]  # each exactly once
    sent = api.requests_to(APPS)
    assert len(sent) == requests
    expected_cursors = [None] + [
        records[i]["id"] for i in range(page_size - 1, count - 1, page_size)
    ]
    assert cursors(sent) == expected_cursors[:requests]


@pytest.mark.parametrize(
    "iterators",
    [["app_001", "app_001"], ["app_001", "app_003", "app_001"]],
    ids=["same-as-previous", "same-as-earlier"],
)
def test_repeated_cursor_is_a_pagination_error(
    api: ScriptedServer, run_engine: Runner, iterators: list[str]
) -> None:
    pages = [
        page([app(2 * n), app(2 * n + 1)], iterator, done=False)
        for n, iterator in enumerate(iterators)
    ]
    api.route(APPS, at_most(sequence(*pages), len(pages) + 3))
    outcome = run_engine(api.url, ["applications"], page_size=2)
    assert_failed(outcome, PaginationError, "applications", APPS)
    assert len(api.requests_to(APPS)) == len(iterators)  # stopped at the repeat, no loop


def test_not_done_without_iterator_is_a_pagination_error(
    api: ScriptedServer, run_engine: Runner
) -> None:
    api.route(APPS, at_most(sequence(page([app(0)], None, done=False)), 4))
    outcome = run_engine(api.url, ["applications"], page_size=2)
    assert_failed(outcome, PaginationError, "applications", APPS)
    assert len(api.requests_to(APPS)) == 1


@pytest.mark.parametrize("page_size", [1, 2, MAX_PAGE_SIZE, None], ids=str)
def test_limit_is_the_configured_page_size(
    api: ScriptedServer, run_engine: Runner, page_size: int | None
) -> None:
    records = [app(i) for i in range(3)]
    api.pages(APPS, records)
    settings = {} if page_size is None else {"page_size": page_size}
    outcome = run_engine(api.url, ["applications"], **settings)
    assert outcome.ok, outcome.error
    assert ids(outcome) == [r["id"] for r in records]
    limits = {r.query.get("limit") for r in api.requests_to(APPS)}
    assert limits == {str(page_size or MAX_PAGE_SIZE)}


def test_event_types_ask_for_archived_ones(api: ScriptedServer, run_engine: Runner) -> None:
    """The API hides archived event types unless asked; every page asks (the stream's params)."""
    event_types = STREAMS_BY_NAME["event_types"]
    records = [record_for("event_types", i, archived=i == 1) for i in range(3)]
    api.pages(event_types.path, records, key="uuid")
    outcome = run_engine(api.url, ["event_types"], page_size=2)
    assert outcome.ok, outcome.error
    assert ids(outcome, "event_types") == [r["uuid"] for r in records]
    sent = api.requests_to(event_types.path)
    assert len(sent) == 2
    assert all(r.query.get("include_archived") == "true" for r in sent), [r.query for r in sent]


@pytest.mark.parametrize("page_size", [MAX_PAGE_SIZE + 1, 1000, 0])
def test_page_size_outside_the_api_limit_is_refused_before_any_request(
    api: ScriptedServer, run_engine: Runner, page_size: int
) -> None:
    api.pages(APPS, [app(0)])
    outcome = run_engine(api.url, ["applications"], page_size=page_size)
    assert not outcome.ok
    assert "page_size" in outcome.message, outcome.message
    assert api.requests == []


# -- retries -----------------------------------------------------------------------------------

RETRYABLE = [429, 500, 502, 503, 504]


@pytest.mark.parametrize(
    ("status", "failures"), [(s, 1) for s in RETRYABLE] + [(429, 3), (503, 3)], ids=str
)
def test_retryable_status_then_success(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], status: int, failures: int
) -> None:
    """Failures on the second page: the same cursor is asked again, nothing lost or repeated."""
    records = [app(i) for i in range(4)]
    second_page = lambda r: r.query.get("iterator") == "app_001"  # noqa: E731
    api.route(APPS, failing_first(paged(records), [error(status)] * failures, when=second_page))
    outcome = run_engine(api.url, ["applications"], page_size=2)
    assert outcome.ok, outcome.error
    assert ids(outcome) == [r["id"] for r in records]
    sent = api.requests_to(APPS)
    assert sum(1 for r in sent if second_page(r)) == failures + 1
    assert len(sent) == failures + 2
    assert sleeps == [2.0, 4.0, 8.0][:failures]  # default backoff: 2, 4, 8 s


@pytest.mark.parametrize(
    ("max_retries", "attempts", "waits"),
    [(None, 4, [2.0, 4.0, 8.0]), (0, 1, []), (1, 2, [2.0]), (5, 6, [2.0, 4.0, 8.0, 16.0, 32.0])],
    ids=["default", "no-retries", "one-retry", "five-retries"],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_budget_exhausted(
    api: ScriptedServer,
    run_engine: Runner,
    sleeps: list[float],
    status: int,
    max_retries: int | None,
    attempts: int,
    waits: list[float],
) -> None:
    api.script(APPS, error(status, "busy", "try later"))
    settings = {} if max_retries is None else {"max_retries": max_retries}
    outcome = run_engine(api.url, ["applications"], **settings)
    # the error says what the server said last ("try later")
    assert_failed(
        outcome, RetryBudgetExhaustedError, "applications", APPS, str(status), "try later"
    )
    assert len(api.requests_to(APPS)) == attempts
    assert sleeps == waits


def test_backoff_factor_scales_the_waits(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    api.script(APPS, error(500))
    outcome = run_engine(api.url, ["applications"], backoff_factor=0.5)
    assert_failed(outcome, RetryBudgetExhaustedError, APPS)
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("retry_after", ["3", "0", "1.5"])
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_the_wait(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], status: int, retry_after: str
) -> None:
    api.script(
        APPS, error(status, **{"Retry-After": retry_after}), page([app(0)], "app_000", done=True)
    )
    outcome = run_engine(api.url, ["applications"])
    assert outcome.ok, outcome.error
    assert ids(outcome) == ["app_000"]
    assert len(api.requests_to(APPS)) == 2
    assert sleeps == [float(retry_after)]


def test_retry_after_takes_the_place_of_one_backoff_wait(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    """A retry told when to come back still counts: the next one waits the schedule's second
    step (4 s), not its first."""
    api.script(
        APPS,
        error(429, **{"Retry-After": "7"}),
        error(429),
        page([app(0)], "app_000", done=True),
    )
    outcome = run_engine(api.url, ["applications"])
    assert outcome.ok, outcome.error
    assert ids(outcome) == ["app_000"]
    assert len(api.requests_to(APPS)) == 3
    assert sleeps == [7.0, 4.0]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_http_date_waits_until_that_date(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], status: int
) -> None:
    ahead = 40.0
    before = time.time()
    when = int(before + ahead)  # HTTP dates have whole seconds
    header = email.utils.formatdate(when, usegmt=True)
    api.script(APPS, error(status, **{"Retry-After": header}), page([app(0)], "app_000", done=True))
    outcome = run_engine(api.url, ["applications"])
    after = time.time()
    assert outcome.ok, outcome.error
    assert len(sleeps) == 1
    # The client reads the clock somewhere between `before` and `after`.
    assert when - after - 1e-6 <= sleeps[0] <= when - before + 1e-6


@pytest.mark.parametrize("header", ["soon", "past-date"])
def test_unusable_or_past_retry_after(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], header: str
) -> None:
    """A `Retry-After` that is not a number or a date falls back to the backoff (2 s); a date
    already past means at once."""
    value = "soon" if header == "soon" else email.utils.formatdate(time.time() - 60, usegmt=True)
    api.script(APPS, error(503, **{"Retry-After": value}), page([app(0)], "app_000", done=True))
    outcome = run_engine(api.url, ["applications"])
    assert outcome.ok, outcome.error
    assert ids(outcome) == ["app_000"]
    assert sleeps == ([2.0] if header == "soon" else [0.0])


CONNECTION_FAILURES = {
    "reset": [Reply(drop=True)] * 3,
    "read-timeout": [Reply(stall=True)] * 3,
    # one budget and one schedule whatever failed: 2, 4, 8 s across the three kinds
    "mixed": [
        Reply(drop=True),
        Reply(200, b'{"data": [{"id": "app_002", "upd'),
        Reply(stall=True),
    ],
}


@pytest.mark.parametrize("failure", list(CONNECTION_FAILURES))
def test_connection_failure_is_retried(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], failure: str
) -> None:
    """A connection closed before any answer, or no answer within `request_timeout`, is
    retried like a 503: three times, then the page; nothing lost or repeated. A body cut
    short counts against the same budget and schedule."""
    records = [app(i) for i in range(4)]
    second_page = lambda r: r.query.get("iterator") == "app_001"  # noqa: E731
    api.route(APPS, failing_first(paged(records), CONNECTION_FAILURES[failure], when=second_page))
    outcome = run_engine(api.url, ["applications"], page_size=2, request_timeout=0.2)
    assert outcome.ok, outcome.error
    assert ids(outcome) == [r["id"] for r in records]
    assert sum(1 for r in api.requests_to(APPS) if second_page(r)) == 4
    assert sleeps == [2.0, 4.0, 8.0]


def test_connection_failures_beyond_the_budget_name_the_path(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    api.script(APPS, Reply(drop=True))
    outcome = run_engine(api.url, ["applications"])
    assert_failed(outcome, RetryBudgetExhaustedError, "applications", APPS)
    assert len(api.requests_to(APPS)) == 4
    assert sleeps == [2.0, 4.0, 8.0]


def test_a_429_pauses_every_request_that_follows(
    api: ScriptedServer, run_engine: Runner, sends: Timeline
) -> None:
    """A 429 pauses the whole run, not only the request that got it: every request sent
    after it, on any thread, is preceded by a wait on that thread (a run on one thread
    meets this with the one wait it already makes).

    The first parent's child list answers 429 with `Retry-After: 300`; the other parents'
    child lists are held until that list is asked again, so with several workers they send
    their next requests after the pause began. Waits are recorded, not slept: the pause
    lasts for the rest of the run.
    """
    parents = [record_for("applications", i) for i in range(12)]
    api.pages(APPS, parents)
    endpoints = STREAMS_BY_NAME["endpoints"].path
    paths = [child_path(endpoints, app_id=p["id"]) for p in parents]
    retried = threading.Event()

    def first(request: Request) -> Reply:
        if len(api.requests_to(paths[0])) > 1:
            retried.set()
            return page([record_for("endpoints", 0)], None, done=True)
        return error(429, "rate_limited", "slow down", **{"Retry-After": "300"})

    def held(n: int) -> Any:
        def handle(request: Request) -> Reply:
            retried.wait(timeout=30)
            return page([record_for("endpoints", n)], None, done=True)

        return handle

    api.route(paths[0], first)
    for n, path in enumerate(paths[1:], start=1):
        api.route(path, held(n))
    outcome = run_engine(api.url, ["endpoints"], max_concurrency=4, parallelized=True)
    assert outcome.ok, outcome.error
    assert len(outcome.records["endpoints"]) == len(parents)
    events = sends.events
    sent = [(i, thread, url) for i, (kind, thread, url) in enumerate(events) if kind == "send"]
    # the 429 went out at `throttled`; by the time it is asked again (`retry`) the pause began
    throttled, retry = [i for i, _, url in sent if url.split("?")[0].endswith(paths[0])]
    for i, thread, url in sent:
        if i < retry:
            continue
        waited = [
            seconds for kind, t, seconds in events[throttled:i] if kind == "sleep" and t == thread
        ]
        assert waited and 0 < waited[0] <= 300, f"{outcome.engine}: {url} sent without a pause"


@pytest.mark.parametrize("status", [400, 409, 501])
def test_non_retryable_status_fails_at_once(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], status: int
) -> None:
    api.script(APPS, error(status, "conflict", "nope"))
    outcome = run_engine(api.url, ["applications"])
    assert_failed(outcome, AnalyticsAPIError, "applications", APPS, str(status))
    assert not isinstance(outcome.error, RetryBudgetExhaustedError)
    assert len(api.requests_to(APPS)) == 1
    assert sleeps == []


# -- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_never_followed(
    api: ScriptedServer,
    elsewhere: ScriptedServer,
    run_engine: Runner,
    sleeps: list[float],
    status: int,
) -> None:
    elsewhere.pages(APPS, [app(0)])
    api.script(APPS, Reply(status, b"", {"Location": f"{elsewhere.url}{APPS}?limit=250"}))
    outcome = run_engine(api.url, ["applications"])
    message = assert_failed(outcome, RedirectRefusedError, APPS, str(status))
    assert "redirect" in message.lower()
    assert elsewhere.requests == []  # not contacted at all, so no Authorization header there
    assert len(api.requests_to(APPS)) == 1
    assert sleeps == []
    assert outcome.records.get("applications", []) == []


def test_redirect_on_a_child_path_fails_the_run(
    api: ScriptedServer, elsewhere: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    """Under a parent too: refused at once, not skipped like a 404, the target never asked."""
    api.pages(APPS, [app(0)])
    path = child_path(STREAMS_BY_NAME["endpoints"].path, app_id="app_000")
    elsewhere.pages(path, [record_for("endpoints", 0)])
    api.script(path, Reply(302, b"", {"Location": f"{elsewhere.url}{path}"}))
    outcome = run_engine(api.url, ["endpoints"])
    assert_failed(outcome, RedirectRefusedError, "endpoints", path, "302")
    assert elsewhere.requests == []
    assert len(api.requests_to(path)) == 1
    assert sleeps == []
    assert outcome.records.get("endpoints", []) == []


# -- statuses with a hint ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "hint"), [(401, "key"), (403, "permission")])
def test_auth_failure_fails_at_once_with_a_hint(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], status: int, hint: str
) -> None:
    api.script(APPS, error(status, "authentication_failed", "Invalid token"))
    outcome = run_engine(api.url, ["applications"])
    message = assert_failed(outcome, AuthenticationError, APPS, str(status))
    assert hint in message.lower()
    assert len(api.requests_to(APPS)) == 1
    assert sleeps == []


def test_422_fails_with_a_page_size_hint(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    detail = [{"loc": ["query", "limit"], "msg": "ensure this value is <= 250", "type": "x"}]
    api.script(APPS, error(422, "validation", detail))
    outcome = run_engine(api.url, ["applications"])
    assert_failed(outcome, AnalyticsAPIError, APPS, "422", "page_size")
    assert len(api.requests_to(APPS)) == 1
    assert sleeps == []


CHILD_STREAMS = [s.name for s in STREAMS if s.is_child]


@pytest.mark.parametrize("concurrency", [1, 8], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("child", CHILD_STREAMS)
def test_404_on_a_child_path_skips_that_parent_only(
    api: ScriptedServer, run_engine: Runner, child: str, concurrency: int
) -> None:
    definition = STREAMS_BY_NAME[child]
    parent = STREAMS_BY_NAME[definition.parent or ""]
    siblings = [s for s in STREAMS if s.parent == parent.name and s.name != child]
    parents = [record_for(parent.name, i) for i in range(3)]
    api.pages(parent.path, parents, key=parent.primary_key)
    parent_ids = [p[parent.primary_key] for p in parents]
    expected: list[str] = []
    for n, parent_id in enumerate(parent_ids):
        for sibling in siblings:  # the parent's other child lists answer normally
            path = child_path(sibling.path, **{sibling.parent_key or "": parent_id})
            api.pages(path, [record_for(sibling.name, 10 * n)])
        path = child_path(definition.path, **{definition.parent_key or "": parent_id})
        if n == 1:
            api.script(path, error(404, "not_found", "Application not found"))
            continue
        children = [record_for(child, 10 * n + j) for j in range(2)]
        api.pages(path, children)
        expected += [c["id"] for c in children]
    outcome = run_engine(
        api.url,
        [child, *(s.name for s in siblings)],
        max_concurrency=concurrency,
        parallelized=concurrency > 1,
    )
    assert outcome.ok, outcome.error
    assert ids(outcome, child) == sorted(expected)
    by_parent = {r[definition.parent_key or ""] for r in outcome.records[child]}
    assert by_parent == {parent_ids[0], parent_ids[2]}
    gone = child_path(definition.path, **{definition.parent_key or "": parent_ids[1]})
    assert len(api.requests_to(gone)) == 1  # a 404 is an answer: not retried
    assert len(outcome.warnings_mentioning(parent_ids[1])) == 1, "the skipped parent: one warning"
    for sibling in siblings:  # the 404 skips that one list, not the parent's other children
        assert len(outcome.records[sibling.name]) == len(parents), sibling.name


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_on_a_child_path_fails_the_run(
    api: ScriptedServer, run_engine: Runner, status: int
) -> None:
    """Only a 404 under a parent means "the parent is gone": a refused child list fails."""
    parents = [app(i) for i in range(2)]
    api.pages(APPS, parents)
    endpoints = STREAMS_BY_NAME["endpoints"].path
    path = child_path(endpoints, app_id=parents[0]["id"])
    api.script(path, error(status, "forbidden", "not for this key"))
    api.pages(child_path(endpoints, app_id=parents[1]["id"]), [record_for("endpoints", 1)])
    outcome = run_engine(api.url, ["endpoints"], max_concurrency=1, parallelized=False)
    assert_failed(outcome, AuthenticationError, "endpoints", path, str(status))
    assert len(api.requests_to(path)) == 1


def test_a_child_list_is_retried_like_any_other(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    parents = [app(i) for i in range(2)]
    api.pages(APPS, parents)
    endpoints = STREAMS_BY_NAME["endpoints"].path
    expected = []
    for n, parent in enumerate(parents):
        children = [record_for("endpoints", 10 * n + j) for j in range(2)]
        path = child_path(endpoints, app_id=parent["id"])
        if n == 0:
            api.route(path, failing_first(paged(children), [error(502)]))
        else:
            api.pages(path, children)
        expected += [c["id"] for c in children]
    outcome = run_engine(api.url, ["endpoints"])
    assert outcome.ok, outcome.error
    assert ids(outcome, "endpoints") == sorted(expected)
    assert len(api.requests_to(child_path(endpoints, app_id=parents[0]["id"]))) == 2
    assert sleeps == [2.0]


def test_404_on_a_top_level_path_fails(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float]
) -> None:
    api.script(APPS, error(404, "not_found", "Not found"))
    outcome = run_engine(api.url, ["applications"])
    assert_failed(outcome, AnalyticsAPIError, "applications", APPS, "404")
    assert not isinstance(outcome.error, ParentNotFoundError)  # only a child path means that
    assert len(api.requests_to(APPS)) == 1
    assert sleeps == []


# -- bodies ------------------------------------------------------------------------------------

HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body>"
    + "Bad gateway, nginx. " * 500
    + "</body></html>"
)
GOOD_PAGE = page([app(0), app(1)], "app_001", done=True)
BROKEN_BODIES = {
    "html": Reply(200, HTML),
    "truncated-json": Reply(200, b'{"data": [{"id": "app_000", "name": "app 0", "createdAt": "20'),
    "cut-in-transit": Reply(200, GOOD_PAGE.body, cut_after=40),
}


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
def test_unparsable_2xx_body_is_retried_then_a_clear_error(
    api: ScriptedServer, run_engine: Runner, sleeps: list[float], broken: str
) -> None:
    api.script(APPS, BROKEN_BODIES[broken])
    outcome = run_engine(api.url, ["applications"])
    message = assert_failed(outcome, RetryBudgetExhaustedError, "applications", APPS)
    if broken != "cut-in-transit":
        assert "JSON" in message
    if broken == "html":
        assert "<html>" in message  # the start of the body, to recognise a proxy's page
    assert len(message) < 800  # an excerpt, never the whole body
    assert len(api.requests_to(APPS)) == 4
    assert sleeps == [2.0, 4.0, 8.0]
    assert outcome.records.get("applications", []) == []


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
def test_unparsable_2xx_body_once_then_good_page(
    api: ScriptedServer, run_engine: Runner, broken: str
) -> None:
    api.script(APPS, BROKEN_BODIES[broken], GOOD_PAGE)
    outcome = run_engine(api.url, ["applications"])
    assert outcome.ok, outcome.error
    assert ids(outcome) == ["app_000", "app_001"]
    assert len(api.requests_to(APPS)) == 2


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"items": [app(0)], "iterator": "app_000", "done": True}, "data"),
        ({"data": [app(0)], "iterator": "app_000"}, "done"),
        ({"data": app(0), "iterator": "app_000", "done": True}, "data"),
        ([app(0)], "data"),
    ],
    ids=["without-data", "without-done", "data-not-a-list", "bare-list"],
)
def test_json_body_without_the_envelope_names_the_path(
    api: ScriptedServer, run_engine: Runner, body: Any, missing: str
) -> None:
    api.script(APPS, Reply(200, body))
    outcome = run_engine(api.url, ["applications"])
    assert_failed(outcome, ResponseFormatError, "applications", APPS, missing)
    assert len(api.requests_to(APPS)) == 1
    assert outcome.records.get("applications", []) == []


# -- the API key never leaks -------------------------------------------------------------------


def _echoing_scripts(elsewhere_url: str) -> dict[str, list[Reply]]:
    detail = f"invalid token {API_KEY} for this org"
    html = f"<html><body><p>Bad gateway</p><pre>Authorization: Bearer {API_KEY}</pre></body></html>"
    return {
        "400-detail": [error(400, "bad_request", detail)],
        "401-detail": [error(401, "authentication_failed", detail)],
        "retried-html-then-401": [
            Reply(500, html),
            Reply(200, html),
            error(401, "authentication_failed", detail),
        ],
        "422-detail": [
            error(422, "validation", [{"loc": ["header", API_KEY], "msg": detail, "type": "x"}])
        ],
        "200-html": [Reply(200, html)],
        "503-html-then-ok": [Reply(503, html), page([app(0)], "app_000", done=True)],
        "429-detail-then-ok": [
            error(429, "rate_limited", detail),
            page([app(0)], "app_000", done=True),
        ],
        "redirect-location": [
            Reply(
                302,
                html,
                {"Location": f"{elsewhere_url}{APPS}?api_key={API_KEY}&token={API_KEY}"},
            )
        ],
        "non-text-body": [Reply(200, b"\xff\xfe" + API_KEY.encode() + b"\x00\x81")],
    }


@pytest.mark.parametrize(
    "scenario",
    list(_echoing_scripts("http://x")),
)
def test_api_key_echoed_by_the_server_never_appears(
    api: ScriptedServer, elsewhere: ScriptedServer, run_engine: Runner, scenario: str
) -> None:
    api.script(APPS, *_echoing_scripts(elsewhere.url)[scenario])
    outcome = run_engine(api.url, ["applications"])
    assert api.requests_to(APPS)[0].headers.get("authorization") == f"Bearer {API_KEY}"
    assert_no_key(outcome)
    assert elsewhere.requests == []
    if scenario.endswith("then-ok"):
        assert outcome.ok, outcome.error
        assert ids(outcome) == ["app_000"]
    else:
        assert not outcome.ok
    if scenario in ("401-detail", "retried-html-then-401"):
        # the server's detail still reaches the user, with the key masked
        assert_failed(outcome, AuthenticationError, f"invalid token {MASK} for this org")
    if scenario == "retried-html-then-401":
        assert len(api.requests_to(APPS)) == 3  # the 500 and the HTML page were retried


@pytest.mark.parametrize("suffix", ["\n", " ", "\u00e9"], ids=["newline", "space", "non-ascii"])
def test_unusable_api_key_is_refused_without_quoting_it(
    api: ScriptedServer, run_engine: Runner, suffix: str
) -> None:
    """A key that cannot go into a header (a trailing newline from a file) is refused before
    any request, by name: `requests` would quote the whole header in its exception."""
    api.pages(APPS, [app(0)])
    outcome = run_engine(api.url, ["applications"], api_key=API_KEY + suffix)
    assert not outcome.ok
    assert "api_key" in outcome.message, outcome.message
    assert api.requests == []
    assert_no_key(outcome)


def test_api_key_not_in_a_successful_run(api: ScriptedServer, run_engine: Runner) -> None:
    api.pages(APPS, [app(i) for i in range(3)])
    outcome = run_engine(api.url, ["applications"], page_size=2)
    assert outcome.ok, outcome.error
    sent = api.requests_to(APPS)
    assert len(sent) == 2
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in sent)
    assert_no_key(outcome)


def test_bookmark_is_the_latest_replication_key_by_time(
    api: ScriptedServer, run_engine: Runner
) -> None:
    """`...:05Z` sorts after `...:05.5Z` as a string; as instants `.5` is later."""
    stamps = ["2024-03-01T10:00:05.5Z", "2024-03-01T10:00:05Z", "2024-03-01T09:59:59.999999999Z"]
    api.pages(APPS, [app(i, updatedAt=ts) for i, ts in enumerate(stamps)])
    outcome = run_engine(api.url, ["applications"], page_size=2)
    assert outcome.ok, outcome.error
    assert canonical(outcome.bookmarks["applications"]) == canonical(stamps[0])


def test_bookmark_never_passes_the_run_start(api: ScriptedServer, run_engine: Runner) -> None:
    """A record stamped after the run began (changed while the scan ran) must be read again by
    the next run: the stored bookmark is capped at the run's start, never the record's value."""
    future = "2999-01-01T00:00:00Z"
    api.pages(APPS, [app(0, updatedAt="2024-03-01T10:00:00Z"), app(1, updatedAt=future)])
    outcome = run_engine(api.url, ["applications"], page_size=2)
    after_run = canonical_from_datetime(dt.datetime.now(dt.timezone.utc))
    assert outcome.ok, outcome.error
    assert len(outcome.records["applications"]) == 2
    bookmark = canonical(outcome.bookmarks["applications"])
    assert canonical("2024-03-01T10:00:00Z") < bookmark <= after_run


@pytest.mark.parametrize("scenario", ["retried-html-then-401", "redirect"])
def test_api_key_never_appears_on_the_command_line_output(
    api: ScriptedServer,
    elsewhere: ScriptedServer,
    engine: str,
    tmp_path: Path,
    scenario: str,
) -> None:
    """As users run them (a child process at DEBUG level): exit code, stdout, stderr, tables."""
    scripts = _echoing_scripts(elsewhere.url)
    if scenario == "redirect":
        api.script(APPS, *scripts["redirect-location"])
    else:
        api.script(APPS, scripts["503-html-then-ok"][0], *scripts["401-detail"])
    outcome = run_cli(
        engine, api.url, API_KEY, ["applications"], workdir=tmp_path, backoff_factor=0
    )
    assert outcome.returncode != 0
    assert APPS in outcome.stderr
    for secret in (API_KEY, SECRET_TAIL):
        assert secret not in outcome.everything(), f"{engine}: the API key leaked"
    assert elsewhere.requests == []
    assert api.requests_to(APPS)[0].headers.get("authorization") == f"Bearer {API_KEY}"


# -- records -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "null"])
@pytest.mark.parametrize("stream", ["applications", "event_types", "endpoints"])
def test_record_without_primary_key_is_an_error(
    api: ScriptedServer, run_engine: Runner, stream: str, how: str
) -> None:
    definition = STREAMS_BY_NAME[stream]
    pk = definition.primary_key
    bad = record_for(stream, 1, name="no key")
    if how == "missing":
        del bad[pk]
    else:
        bad[pk] = None
    records = [record_for(stream, 0), bad, record_for(stream, 2)]
    path = _serve_one_stream(api, stream, records)
    outcome = run_engine(api.url, [stream])
    assert_failed(outcome, RecordError, stream, pk, path)
    assert all(r.get(pk) is not None for r in outcome.records.get(stream, []))
    assert stream not in outcome.bookmarks  # no progress committed, not even the first page's


@pytest.mark.parametrize("how", ["missing", "null"])
@pytest.mark.parametrize("stream", ["applications", "tokens", "endpoints"])
def test_record_without_replication_key_is_an_error(
    api: ScriptedServer, run_engine: Runner, stream: str, how: str
) -> None:
    definition = STREAMS_BY_NAME[stream]
    rk = definition.replication_key
    bad = record_for(stream, 1)
    if how == "missing":
        del bad[rk]
    else:
        bad[rk] = None
    records = [record_for(stream, 0), bad, record_for(stream, 2)]
    path = _serve_one_stream(api, stream, records)
    outcome = run_engine(api.url, [stream])
    assert_failed(outcome, RecordError, stream, rk, path)
    assert all(r.get(rk) is not None for r in outcome.records.get(stream, []))
    assert stream not in outcome.bookmarks


def _serve_one_stream(api: ScriptedServer, stream: str, records: list[dict[str, Any]]) -> str:
    """Serve `records` as `stream`, one record per page (under one parent for a child), so a
    bad second record fails the run after a first page went through; returns their path."""
    definition = STREAMS_BY_NAME[stream]
    pages = [
        page([record], f"cursor_{n}", done=n == len(records) - 1)
        for n, record in enumerate(records)
    ]
    if not definition.is_child:
        api.script(definition.path, *pages)
        return definition.path
    parent = STREAMS_BY_NAME[definition.parent or ""]
    parent_record = record_for(parent.name, 0)
    api.pages(parent.path, [parent_record], key=parent.primary_key)
    path = child_path(definition.path, **{definition.parent_key or "": parent_record["id"]})
    api.script(path, *pages)
    for sibling in STREAMS:
        if sibling.parent == definition.parent and sibling.name != stream:
            api.script(
                child_path(sibling.path, **{sibling.parent_key or "": parent_record["id"]}), EMPTY
            )
    return path


WEBHOOKS = STREAMS_BY_NAME["webhook_endpoint"].path


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rateLimit": "5"}, "rateLimit"),
        ({"disabled": 1}, "disabled"),
        ({"updatedAt": "2024-13-45T00:00:00Z"}, "updatedAt"),
        ({"id": 7}, "id"),
    ],
    ids=["int-as-string", "bool-as-int", "bad-date", "int-key"],
)
def test_a_value_of_the_wrong_type_is_an_error(
    api: ScriptedServer,
    run_engine: Runner,
    engine: str,
    request: pytest.FixtureRequest,
    fields: dict[str, Any],
    field: str,
) -> None:
    """Not coerced and not a variant column: the run fails naming stream, field and record."""
    if engine == "tap" and field != "updatedAt":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="known difference: the tap emits a value of the wrong type unchanged "
                "(only its timestamps are checked); the native source refuses the record",
            )
        )
    bad = {"id": "ep_001", "updatedAt": "2024-01-01T00:00:00Z", **fields}
    api.script(WEBHOOKS, page([record_for("webhook_endpoint", 0), bad], None, done=True))
    outcome = run_engine(api.url, ["webhook_endpoint"])
    assert_failed(outcome, RecordError, "webhook_endpoint", field, repr(bad["id"]))
    assert "webhook_endpoint" not in outcome.bookmarks


def test_fields_outside_the_schema_are_dropped_with_one_warning_each(
    api: ScriptedServer, run_engine: Runner
) -> None:
    drift = {"throttleRate": 5, "legacyFlag": True}
    apps = [app(i, **drift) for i in range(4)]
    api.pages(APPS, apps)
    endpoints: list[str] = []
    for a in apps[:2]:
        path = child_path(STREAMS_BY_NAME["endpoints"].path, app_id=a["id"])
        children = [
            record_for("endpoints", int(a["id"][-3:]) * 10 + j, throttleRate=7) for j in range(3)
        ]
        api.pages(path, children)
        endpoints += [c["id"] for c in children]
    for a in apps[2:]:
        api.script(child_path(STREAMS_BY_NAME["endpoints"].path, app_id=a["id"]), EMPTY)
    outcome = run_engine(api.url, ["applications", "endpoints"], page_size=2)
    assert outcome.ok, outcome.error
    assert ids(outcome) == [a["id"] for a in apps]
    assert ids(outcome, "endpoints") == sorted(endpoints)
    for stream, fields in [("applications", drift), ("endpoints", {"throttleRate": 7})]:
        for name in fields:
            assert all(name not in r for r in outcome.records[stream]), (stream, name)
            assert name not in outcome.columns[stream], (stream, name)
            assert _snake(name) not in outcome.columns[stream], (stream, name)
    # one warning per stream and field, however many records and pages carry it, naming both
    assert len(outcome.warnings_mentioning("throttleRate")) == 2
    assert len(outcome.warnings_mentioning("legacyFlag")) == 1
    for stream, name in [
        ("applications", "throttleRate"),
        ("endpoints", "throttleRate"),
        ("applications", "legacyFlag"),
    ]:
        named = [r for r in outcome.warnings_mentioning(name) if stream in r.getMessage()]
        assert len(named) == 1, (stream, name)


def _snake(name: str) -> str:
    from analytics_dlt.hints import destination_column_name

    return destination_column_name(name)


# -- the full fake API -------------------------------------------------------------------------


def test_full_dataset_equals_the_fake_api_dump(fake_api: FakeAPI, run_engine: Runner) -> None:
    outcome = run_engine(fake_api.url, None, api_key=fake_api.token, page_size=7)
    assert outcome.ok, outcome.error
    for stream in all_streams():
        want = fake_api.dump(stream)
        got = outcome.records.get(stream, [])
        assert len(got) == len(want), stream
        assert comparable_set(stream, got) == comparable_set(stream, want), stream
        rk = STREAMS_BY_NAME[stream].replication_key
        latest = max(canonical(r[rk]) for r in want)
        assert canonical(outcome.bookmarks[stream]) == latest, stream
    assert fake_api.token not in outcome.everything()
