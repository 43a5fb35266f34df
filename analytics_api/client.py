"""The HTTP client of the contract, used by both engines: auth, retries, safe errors, paging.

* The key goes in `Authorization: Bearer ...` to `base_url` only: redirects are never followed.
* Retries follow `analytics_api.retry`; a 429 pauses every thread of the run; a TLS certificate
  that fails verification is not retried.
* At most `max_concurrency` requests are in flight at once, whichever thread sends them.
* Each body is parsed once (msgspec) into a `Page`; the cursor rule is `analytics_api.paging`.
* Messages name the stream and path, say what to do, and never carry the key or a whole body.

Only `requests` and `msgspec`: no singer-sdk, no dlt.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import msgspec
import requests

from analytics_api.errors import (
    AnalyticsAPIError,
    RedirectRefusedError,
    ResponseFormatError,
    RetryBudgetExhaustedError,
    TransientAPIError,
)
from analytics_api.failures import (
    describe_failure,
    error_detail,
    fatal_status_error,
    untrusted_certificate,
)
from analytics_api.limits import DEFAULT_MAX_CONCURRENCY, DEFAULT_PAGE_SIZE
from analytics_api.paging import CursorWalk, Page, decode_page
from analytics_api.redact import excerpt
from analytics_api.retry import RetryPolicy, retry_after_seconds

Logger = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]

_RETRYABLE: tuple[type[Exception], ...] = (
    TransientAPIError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    api_key: str
    page_size: int = DEFAULT_PAGE_SIZE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    user_agent: str = "tap-analytics"


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen: reported to `on_retry` (logs, metrics)."""

    where: str
    retry_number: int
    max_retries: int
    wait: float
    status: int | None
    reason: str


class ApiClient:
    """Thread-safe client: one `requests.Session` per thread, one shared 429 pause."""

    def __init__(
        self,
        settings: ClientSettings,
        logger: Logger | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        self.settings = settings
        self.logger: Logger = logger or logging.getLogger("analytics_api")
        self.on_retry = on_retry
        self._local = threading.local()
        self._slots = threading.BoundedSemaphore(max(1, settings.max_concurrency))
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0
        self._base = settings.base_url.strip().rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "User-Agent": settings.user_agent,
        }

    @property
    def session(self) -> requests.Session:
        """This thread's session (requests sessions are not thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            # requests re-reads proxy and CA variables from the environment on every request
            # (a tenth of the client's time); read them once instead, same behaviour.
            session.proxies.update(requests.utils.get_environ_proxies(self._base))
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
            session.trust_env = False
            size = max(4, self.settings.max_concurrency)
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    # -- pages ----------------------------------------------------------------------------

    def iter_pages(
        self,
        stream: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        child: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's records, following `iterator` until `done`.

        `child=True` marks a path under a parent (`/v1/app/{id}/endpoint`): a 404 there raises
        `ParentNotFoundError` (the parent is gone); elsewhere a 404 is a configuration error.
        """
        walk = CursorWalk(f"stream '{stream}', GET {path}")
        while not walk.finished:
            query: dict[str, Any] = {"limit": self.settings.page_size, **(params or {})}
            if walk.cursor is not None:
                query["iterator"] = walk.cursor
            page = self.get_page(stream, path, query, child=child)
            yield page.data
            walk.advance(page.done, page.iterator)

    def get_page(
        self, stream: str, path: str, query: Mapping[str, Any], *, child: bool = False
    ) -> Page:
        """One page, with the contract's retry policy (429/5xx, network errors, bad bodies)."""
        where = f"stream '{stream}', GET {path}"
        policy = self.settings.retry
        for attempt in range(policy.max_retries + 1):
            self._wait_for_shared_pause()
            try:
                with self._slots:
                    return self._attempt(where, path, query, child)
            except _RETRYABLE as exc:
                reason, advice = describe_failure(
                    exc, self.settings.api_key, policy.timeout, self._base
                )
                if untrusted_certificate(exc):  # the same certificate every time: no retry
                    raise AnalyticsAPIError(f"{where}: {reason}. {advice}") from None
                if attempt == policy.max_retries:
                    raise RetryBudgetExhaustedError(
                        f"{where}: giving up after {policy.max_retries} retries; last failure: "
                        f"{reason}. {advice}",
                        status=exc.status if isinstance(exc, TransientAPIError) else None,
                    ) from None
                status = exc.status if isinstance(exc, TransientAPIError) else None
                retry_after = exc.retry_after if isinstance(exc, TransientAPIError) else None
                wait = policy.wait(attempt + 1, retry_after)
                if status == 429:
                    self._pause_everyone(wait)
                self._report_retry(
                    RetryEvent(where, attempt + 1, policy.max_retries, wait, status, reason)
                )
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _report_retry(self, event: RetryEvent) -> None:
        self.logger.warning(
            "Retrying %s in %.1f s (retry %d of %d) after %s",
            event.where,
            event.wait,
            event.retry_number,
            event.max_retries,
            event.reason,
        )
        if self.on_retry is not None:
            self.on_retry(event)

    def _get(self, path: str, query: Mapping[str, Any]) -> requests.Response:
        """GET `base_url + path` with `query`: what `session.get(url, params=query)` sends.

        `Session.get` merges the session's settings into a new request every time (a third of
        the client's time per page, mostly runtime protocol checks inside requests). Here the
        session's request is prepared once per thread and copied, the query encoded as
        requests encodes it; with cookies in the session (set by a server) every request goes
        through `Session.get` again, so that they are sent as before.
        """
        session = self.session
        timeout = self.settings.retry.timeout
        template: requests.PreparedRequest | None = getattr(self._local, "template", None)
        if session.cookies:
            template = None
        elif template is None:
            template = session.prepare_request(requests.Request("GET", self._base + "/"))
            self._local.template = template
        if template is None:
            # Never follow: the key must only go to `base_url`, and data must only come from it.
            return session.get(
                self._base + path, params=query, timeout=timeout, allow_redirects=False
            )
        prepared = template.copy()
        prepared.prepare_url(self._base + path, encode_query(query))
        return session.send(
            prepared,
            timeout=timeout,
            allow_redirects=False,  # as above
            proxies=session.proxies,
            stream=False,
            verify=session.verify,
            cert=session.cert,
        )

    def _attempt(self, where: str, path: str, query: Mapping[str, Any], child: bool) -> Page:
        response = self._get(path, query)
        status = response.status_code
        body = response.content  # reads the whole body: a reset mid-body raises here
        secret = self.settings.api_key
        if self.settings.retry.is_retryable_status(status):
            raise TransientAPIError(
                f"HTTP {status}{error_detail(body, secret)}",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            raise RedirectRefusedError(
                f"{where}: the API answered with a redirect (HTTP {status}), which is never "
                "followed so that the API key only goes to `base_url`; set `base_url` to the "
                "address the API is served from.",
                status=status,
            )
        if status >= 400:
            raise fatal_status_error(where, status, body, secret, child=child)
        try:
            return decode_page(body)
        except msgspec.ValidationError as exc:
            raise ResponseFormatError(
                f"{where}: the response is JSON but not a list page ({exc}); expected "
                "{data: [...], iterator, done}. Body starts: "
                f"{excerpt(body, secret, 120)!r}. Check `base_url` points at the API root.",
                status=status,
            ) from None
        except msgspec.DecodeError as exc:
            # Truncated or non-JSON bodies (an HTML error page from a proxy) are usually
            # transient: retry them, and report clearly if they persist.
            raise TransientAPIError(
                f"HTTP {status} with a body that is not valid JSON ({exc}); body starts: "
                f"{excerpt(body, secret, 120)!r}",
                status=status,
            ) from None

    # -- the shared 429 pause -----------------------------------------------------------

    def _pause_everyone(self, seconds: float) -> None:
        """A 429 tells every thread to wait, not just the one that got it."""
        with self._pause_lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)
            self._local.honoured_until = self._pause_until  # this thread sleeps it itself

    def _wait_for_shared_pause(self) -> None:
        pause_until = self._pause_until
        if pause_until <= getattr(self._local, "honoured_until", 0.0):
            return
        self._local.honoured_until = pause_until
        remaining = pause_until - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def encode_query(query: Mapping[str, Any]) -> str:
    """The query string requests builds from a dict of scalars (`None` values left out)."""
    return urlencode(
        [
            (key, value.encode("utf-8") if isinstance(value, str) else value)
            for key, value in query.items()
            if value is not None
        ],
        doseq=True,
    )
