"""The contract package on its own: cursor rule, retry policy, redaction, settings checks, and the
shared client's 429 pause and concurrency bound. Both engines call exactly these functions."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest
import requests_mock

from analytics_api.client import ApiClient, ClientSettings
from analytics_api.config import api_key_problem, base_url_problem, start_date_problem
from analytics_api.errors import PaginationError
from analytics_api.paging import CursorWalk, Page, next_cursor
from analytics_api.redact import excerpt, redact
from analytics_api.retry import RetryPolicy, retry_after_seconds
from analytics_api.timestamps import canonical, latest_timestamp

BASE = "https://api.example.com"
KEY = "sk_test_contract_0123456789"


# -- the cursor rule ----------------------------------------------------------------------------


def test_done_ends_the_walk_even_with_a_non_null_iterator() -> None:
    walk = CursorWalk("GET /v1/app")
    assert walk.advance(False, "app_1") == "app_1"
    assert walk.advance(True, "app_2") is None  # last page: iterator is the last id, not null
    assert walk.finished and walk.pages == 2


def test_a_repeated_cursor_anywhere_in_the_walk_is_an_error() -> None:
    seen: set[str] = set()
    next_cursor(False, "a", seen, "GET /x")
    next_cursor(False, "b", seen, "GET /x")
    with pytest.raises(PaginationError, match="GET /x"):
        next_cursor(False, "a", seen, "GET /x")


def test_not_done_without_an_iterator_is_an_error() -> None:
    with pytest.raises(PaginationError, match="without an iterator"):
        next_cursor(False, None, set(), "GET /x")


# -- the retry policy --------------------------------------------------------------------------


def test_waits_double_from_the_backoff_factor_and_retry_after_wins() -> None:
    policy = RetryPolicy()
    assert [policy.wait(n) for n in (1, 2, 3)] == [2, 4, 8]
    assert RetryPolicy(backoff_factor=0.5).wait(3) == 2
    assert policy.wait(1, retry_after=0) == 0
    assert policy.wait(2, retry_after=7) == 7
    assert policy.wait(1, retry_after=10_000) == policy.max_wait == 300
    assert RetryPolicy(backoff_factor=100).wait(5) == 300


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(header: str, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 42, usegmt=True)
    assert retry_after_seconds(header, now=lambda: now) == 42
    assert retry_after_seconds(email.utils.formatdate(now - 5, usegmt=True), now=lambda: now) == 0


# -- redaction and settings ---------------------------------------------------------------------


def test_the_key_is_redacted_before_an_excerpt_is_cut() -> None:
    body = ("x" * 195 + KEY + "y" * 50).encode()
    assert KEY[:8] not in excerpt(body, KEY)
    assert redact(f"token={KEY}", KEY) == "token=***"
    assert len(excerpt("z" * 1000, KEY)) <= 201


def test_settings_checks_name_the_setting_and_never_quote_the_value() -> None:
    assert base_url_problem("https://api.example.com") is None
    for bad in ("api.example.com", "https://api.example.com/v1", "https://h:8x", "https://h?q=1"):
        problem = base_url_problem(bad)
        assert problem is not None and problem.startswith("setting 'base_url'")
    problem = api_key_problem(KEY + "\n")
    assert problem is not None and KEY not in problem
    assert api_key_problem(KEY) is None
    assert start_date_problem("2024-13-45") is not None
    assert start_date_problem("2024-01-31T00:00:00Z") is None


def test_latest_timestamp_compares_instants_not_strings() -> None:
    assert latest_timestamp(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z"]) == canonical(
        "2024-01-01T00:00:00.5Z"
    )


# -- the shared client ---------------------------------------------------------------------------


def _page(ident: str) -> dict[str, object]:
    return {"json": {"data": [{"id": ident}], "iterator": ident, "done": True}}


def test_a_429_pauses_requests_of_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread A gets `429 Retry-After: 30`; the next request of thread B first waits out what is
    left of that pause. Sleeps are recorded, not slept, so no real time is involved."""
    sleeps: list[tuple[str, float]] = []
    monkeypatch.setattr(
        time, "sleep", lambda s: sleeps.append((threading.current_thread().name, s))
    )
    client = ApiClient(ClientSettings(BASE, KEY))
    with requests_mock.Mocker() as mocker:
        mocker.get(
            BASE + "/a",
            [{"status_code": 429, "headers": {"Retry-After": "30"}}, _page("a")],
        )
        mocker.get(BASE + "/b", **_page("b"))
        worker = threading.Thread(target=client.get_page, args=("s", "/a", {}), name="worker-a")
        worker.start()
        worker.join()
        page = client.get_page("s", "/b", {})
    assert page.data == [{"id": "b"}]
    assert sleeps[0] == ("worker-a", 30)  # the thread that got the 429 waits what it was told
    others = [seconds for name, seconds in sleeps if name != "worker-a"]
    assert len(others) == 1 and 0 < others[0] <= 30  # the other thread waits the rest of it


def test_max_concurrency_bounds_requests_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads share a client limited to 2: never more than 2 attempts at once.

    Attempts are held until every thread has asked and a moment has passed, so an unbounded
    client shows up as more than 2 at once. The moment only makes the check sharper; a slow
    machine cannot make a correct client fail it.
    """
    client = ApiClient(ClientSettings(BASE, KEY, max_concurrency=2))
    lock = threading.Lock()
    in_flight = [0, 0]  # now, max
    all_asked = threading.Barrier(9)
    held = threading.Event()

    def attempt(*_: object) -> Page:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        held.wait(timeout=60)
        with lock:
            in_flight[0] -= 1
        return Page(data=[], done=True)

    def ask() -> None:
        all_asked.wait()
        client.get_page("s", "/a", {})

    monkeypatch.setattr(client, "_attempt", attempt)
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    all_asked.wait()
    while in_flight[1] < 2:  # wait for the event "the first two are in"
        time.sleep(0.001)
    time.sleep(0.2)  # room for a third to get in if nothing stops it
    held.set()
    for thread in threads:
        thread.join()
    assert in_flight[1] == 2
