"""TapAnalytics: settings, the eight streams, and the shared HTTP client."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from analytics_api.client import ApiClient, ClientSettings
from analytics_api.concurrency import FetchPool
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
)
from analytics_api.retry import RetryPolicy
from analytics_api.settings import default_user_agent
from tap_analytics.compat import CompatTap
from tap_analytics.settings import CONFIG_SCHEMA, EMIT_ACTIVATE_VERSION, config_errors
from tap_analytics.streams import STREAM_TYPES, AnalyticsStream, Records
from tap_analytics.writer import FastSingerWriter


class TapAnalytics(CompatTap):
    """Singer tap for the analytics API."""

    name = "tap-analytics"
    # a copy: singer-sdk appends its standard settings to this dict in place
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    message_writer_class = FastSingerWriter
    # What this tap does, whatever the SDK version's default list, and the same `--about` on
    # singer-sdk 0.54 and 0.55: ACTIVATE_VERSION for FULL_TABLE streams when
    # `emit_activate_version_messages` is on (declared in settings.py; built in from 0.55).
    capabilities = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, `emit_activate_version_messages` included on every
        singer-sdk version (built in from 0.55; declared in settings.py for 0.54)."""
        super().append_builtin_config(config_jsonschema)
        properties = config_jsonschema.setdefault("properties", {})
        properties.setdefault(
            EMIT_ACTIVATE_VERSION, CONFIG_SCHEMA["properties"][EMIT_ACTIVATE_VERSION]
        )

    def config_problems(self) -> list[str]:
        """The SDK's messages quote values (a mistyped key would leak); these never do."""
        return config_errors(self.config, self.logger)

    def discover_streams(self) -> list[Stream]:
        return [stream_type(self) for stream_type in STREAM_TYPES.values()]

    @cached_property
    def client(self) -> ApiClient:
        """One client (and connection pool per thread) for every stream of the run.

        Its semaphore bounds the requests in flight to `max_concurrency`, whichever thread
        sends them (the main thread, the threads of `fetch_pool`).
        """
        config = self.config
        return ApiClient(
            ClientSettings(
                base_url=config["base_url"],
                api_key=config["api_key"],
                page_size=int(config.get("page_size", DEFAULT_PAGE_SIZE)),
                retry=RetryPolicy(
                    max_retries=int(config.get("max_retries", DEFAULT_MAX_RETRIES)),
                    backoff_factor=float(config.get("backoff_factor", DEFAULT_BACKOFF_FACTOR)),
                    timeout=float(config.get("request_timeout", DEFAULT_TIMEOUT)),
                ),
                max_concurrency=self.max_concurrency,
                user_agent=config.get("user_agent") or default_user_agent(),
            ),
            logger=self.logger,
        )

    @cached_property
    def max_concurrency(self) -> int:
        """Requests in flight at most; also the threads that fetch child lists ahead."""
        return int(self.config.get("max_concurrency", DEFAULT_MAX_CONCURRENCY))

    @cached_property
    def fetch_pool(self) -> FetchPool:
        """The run's threads fetching ahead (`max_concurrency` of them; none when it is 1)."""
        return FetchPool(self.max_concurrency)

    @cached_property
    def prefetched(self) -> dict[tuple[str, str], Records | Exception]:
        """Child lists fetched ahead: (child stream, parent id) -> its records, or the error
        the fetch raised, taken by the child stream when the SDK syncs it for that parent."""
        return {}

    @cached_property
    def _top_level(self) -> list[AnalyticsStream]:
        """The top-level streams this run syncs, in the SDK's order (`Tap.sync_all`'s rule)."""
        return [
            s
            for s in self.streams.values()
            if isinstance(s, AnalyticsStream)
            and s.parent_stream_type is None
            and (s.selected or s.has_selected_descendents)
        ]

    def top_level_pages(self, stream: AnalyticsStream) -> Iterator[Records]:
        """The pages of a top-level stream. Once the run's first list has answered its first
        page, the lists of the streams after it are read ahead on the pool (a few pages each),
        so independent lists are fetched side by side; a run whose first request fails (a
        wrong key, an unreachable host) sends no other."""
        if self._read_aheads is None:
            return self._then_read_ahead(stream)
        pages = self._read_aheads.pop(stream.name, None)
        return stream.list_pages() if pages is None else pages

    _read_aheads: dict[str, Iterator[Records]] | None = None

    def _then_read_ahead(self, first: AnalyticsStream) -> Iterator[Records]:
        for page in first.list_pages():
            if self._read_aheads is None:
                top_level = self._top_level
                after = top_level[top_level.index(first) + 1 :] if first in top_level else []
                read_ahead = self.fetch_pool.read_ahead
                self._read_aheads = {s.name: read_ahead(s.list_pages()) for s in after}
            yield page

    def top_level_scan_ended(self, stream: AnalyticsStream, *, run_goes_on: bool) -> None:
        """The pool closes with the run: after its last top-level stream, or an error."""
        if not run_goes_on or stream not in self._top_level[:-1]:
            self.fetch_pool.close()
