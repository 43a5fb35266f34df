"""A small HTTP client for the analytics API: auth, retries, safe errors, one parse per page.

Kept apart from the singer-sdk stream classes so that the same code serves the sequential
sync and the worker threads that prefetch child pages (`tap_analytics.prefetch`).
"""

from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import backoff
import msgspec
import requests

from tap_analytics.errors import (
    AnalyticsAPIError,
    ParentNotFoundError,
    ResponseFormatError,
    TransientAPIError,
    excerpt,
)
from tap_analytics.pagination import DonePaginator

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""The contract's retryable statuses; every other 4xx/5xx fails at once."""

_RETRYABLE: tuple[type[Exception], ...] = (
    TransientAPIError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class Page(msgspec.Struct):
    """The list envelope. `data` and `done` are required: without them a page means nothing."""

    data: list[dict[str, Any]]
    done: bool
    iterator: str | None = None


_decode_page = msgspec.json.Decoder(Page).decode


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    api_key: str
    page_size: int = 250
    max_retries: int = 3
    backoff_factor: float = 2.0
    timeout: float = 60.0
    user_agent: str = "tap-analytics"


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Parse a `Retry-After` header: delta-seconds or an HTTP date. None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def child_path(template: str, **params: str) -> str:
    """Fill `{app_id}`-style placeholders; ids and uids may hold `.`, `-`, `_`, so encode them."""
    return template.format(**{k: quote(str(v), safe="") for k, v in params.items()})


class ApiClient:
    """Thread-safe client: one `requests.Session` per thread, one shared 429 pause."""

    def __init__(
        self,
        settings: ClientSettings,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.logger = logger or logging.getLogger("tap-analytics")
        self._sleep_override = sleep
        self._local = threading.local()
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0
        self._base = settings.base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "User-Agent": settings.user_agent,
        }

    def _sleep(self, seconds: float) -> None:
        """Wait; looked up at call time so tests can patch `time.sleep`."""
        (self._sleep_override or time.sleep)(seconds)

    # -- sessions -------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
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
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    # -- pages ----------------------------------------------------------------------------

    def iter_pages(
        self, stream: str, path: str, params: Mapping[str, str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's records, following `iterator` until `done`."""
        where = f"stream '{stream}', GET {path}"
        paginator = DonePaginator(where)
        while not paginator.finished:
            query: dict[str, Any] = {"limit": self.settings.page_size, **(params or {})}
            if paginator.current_value is not None:
                query["iterator"] = paginator.current_value
            page = self.get_page(stream, path, query)
            yield page.data
            paginator.advance(page)

    def get_page(self, stream: str, path: str, query: Mapping[str, Any]) -> Page:
        """One page, with the contract's retry policy (429/5xx, network errors, bad bodies)."""
        where = f"stream '{stream}', GET {path}"
        waits = backoff.expo(base=2, factor=self.settings.backoff_factor)
        next(waits)  # python-backoff's generators yield 0 first
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            self._wait_for_shared_pause()
            try:
                return self._attempt(where, path, query)
            except _RETRYABLE as exc:
                reason = _describe(exc, self.settings.api_key)
                if attempt == retries:
                    raise AnalyticsAPIError(
                        f"{where}: giving up after {retries} retries; last failure: {reason}. "
                        "The API may be down or rate-limiting; run again later (state up to "
                        "the last committed record is kept), or raise `max_retries`."
                    ) from None
                retry_after = exc.retry_after if isinstance(exc, TransientAPIError) else None
                wait = retry_after if retry_after is not None else next(waits)
                if retry_after is not None:
                    next(waits)  # keep the exponential schedule aligned with the attempt number
                if isinstance(exc, TransientAPIError) and exc.status == 429:
                    self._pause_everyone(wait)
                self.logger.warning(
                    "Retrying %s in %.1f s (retry %d of %d) after %s",
                    where,
                    wait,
                    attempt + 1,
                    retries,
                    reason,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, where: str, path: str, query: Mapping[str, Any]) -> Page:
        response = self.session.get(
            self._base + path,
            params=query,
            timeout=self.settings.timeout,
            # Never follow: the key must only go to `base_url`, and data must only come from it.
            allow_redirects=False,
        )
        status = response.status_code
        body = response.content  # reads the whole body: a reset mid-body raises here
        if status in RETRY_STATUSES:
            raise TransientAPIError(
                f"HTTP {status}{_detail(body, self.settings.api_key)}",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise self._fatal_status(where, status, body)
        if 300 <= status < 400:
            raise AnalyticsAPIError(
                f"{where}: unexpected redirect (HTTP {status}) that was not followed; "
                "check `base_url`."
            )
        try:
            return _decode_page(body)
        except msgspec.ValidationError as exc:
            raise ResponseFormatError(
                f"{where}: the response is JSON but not a list page ({exc}); expected "
                "{data: [...], iterator, done}. Body starts: "
                f"{excerpt(body, self.settings.api_key, 120)!r}. Check `base_url` points at "
                "the API root."
            ) from None
        except msgspec.DecodeError as exc:
            # Truncated or non-JSON bodies (an HTML error page from a proxy) are usually
            # transient: retry them, and report clearly if they persist.
            raise TransientAPIError(
                f"HTTP {status} with a body that is not valid JSON ({exc}); body starts: "
                f"{excerpt(body, self.settings.api_key, 120)!r}",
                status=status,
            ) from None

    def _fatal_status(self, where: str, status: int, body: bytes) -> AnalyticsAPIError:
        detail = _detail(body, self.settings.api_key)
        if status == 401:
            hint = "the API key is missing or wrong: check the `api_key` setting"
        elif status == 403:
            hint = "the API key lacks permission for this resource: grant it or deselect the stream"
        elif status == 404:
            return ParentNotFoundError(
                f"{where}: HTTP 404 Not Found{detail}: the path does not exist; check that "
                "`base_url` is the API root (e.g. https://api.example.com)."
            )
        elif status == 422:
            hint = "the API rejected the request parameters (is `page_size` within 1..250?)"
        else:
            hint = "the API refused the request; this is not retried"
        return AnalyticsAPIError(f"{where}: HTTP {status}{detail}: {hint}.")

    # -- the shared 429 pause -----------------------------------------------------------

    def _pause_everyone(self, seconds: float) -> None:
        """A 429 tells every worker to wait, not just the one that got it."""
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
            self._sleep(remaining)


def _detail(body: bytes, secret: str) -> str:
    """`(code: detail)` from an error body, short and secret-free; both error shapes handled."""
    if not body:
        return ""
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return f" ({excerpt(body, secret, 120)})"
    if isinstance(parsed, dict):
        detail = parsed.get("detail")
        if isinstance(detail, list):  # 422: [{loc, msg, type}]
            detail = "; ".join(
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
                for d in detail
                if isinstance(d, dict)
            )
        code = parsed.get("code")
        text = f"{code}: {detail}" if code else str(detail)
        return f" ({excerpt(text, secret, 160)})"
    return f" ({excerpt(body, secret, 120)})"


def _describe(exc: Exception, secret: str) -> str:
    if isinstance(exc, requests.Timeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ConnectionError):
        return f"connection error ({excerpt(type(exc).__name__ + ': ' + str(exc), secret, 120)})"
    return excerpt(str(exc), secret, 200)
