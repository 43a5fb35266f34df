"""TapAnalytics: settings, the eight streams, and the shared HTTP client."""

from __future__ import annotations

import copy
import typing as t
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from analytics_api.client import ApiClient, ClientSettings
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
)
from analytics_api.retry import RetryPolicy
from tap_analytics.compat import CompatTap
from tap_analytics.settings import CONFIG_SCHEMA, EMIT_ACTIVATE_VERSION, config_errors
from tap_analytics.streams import STREAM_TYPES
from tap_analytics.writer import FastSingerWriter

if t.TYPE_CHECKING:  # imported when a sync needs them: `--about` and `--discover` do not
    from tap_analytics.prefetch import ChildPrefetcher, PageReader, ResponseProbe

__version__ = "0.1.0"


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
    _page_readers: dict[str, PageReader] | None = None

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
        sends them (page readers, child prefetch workers, the main thread).
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
                max_concurrency=int(config.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)),
                user_agent=config.get("user_agent") or f"tap-analytics/{__version__}",
            ),
            logger=self.logger,
        )

    def take_page_reader(self, stream_name: str) -> PageReader | None:
        """This top-level stream's pages, already being read in the background, or None while
        the tap fetches sequentially (see `fetching_ahead`). Called as each top-level stream
        starts its scan."""
        self._scans_started.add(stream_name)
        if self._page_readers is None:
            return None
        return self._page_readers.pop(stream_name, None)

    def fetching_ahead(self) -> bool:
        """Whether to fetch ahead on threads from now on: `max_concurrency` > 1 and responses
        are slow (`ResponseProbe`). Once true it stays true, and every selected top-level
        stream that has not started yet starts reading its pages in the background (a few
        pages ahead, bounded), so independent streams are fetched side by side."""
        if self._page_readers is not None:
            return True
        probe = self.response_probe
        if probe is None or not probe.slow:
            return False
        from tap_analytics.prefetch import PageReader  # a sync only

        self._page_readers = {}
        for stream in self.streams.values():
            definition = getattr(stream, "definition", None)
            if definition is None or definition.is_child or stream.name in self._scans_started:
                continue
            if not (stream.selected or stream.has_selected_descendents):
                continue
            self._page_readers[stream.name] = PageReader(
                self.client.iter_pages(stream.name, definition.path, definition.params),
                name=stream.name,
            )
        return True

    @cached_property
    def _scans_started(self) -> set[str]:
        """Top-level streams whose scan has begun (their pages are read where they are)."""
        return set()

    @cached_property
    def response_probe(self) -> ResponseProbe | None:
        """Times the requests sent while sequential; None when `max_concurrency` is 1."""
        if self.prefetcher is None:
            return None
        from tap_analytics.prefetch import ResponseProbe  # a sync only

        return ResponseProbe()

    @cached_property
    def prefetcher(self) -> ChildPrefetcher | None:
        """Concurrent child fetching (used once `fetching_ahead`), or None when
        `max_concurrency` is 1: strictly sequential requests."""
        workers = int(self.config.get("max_concurrency", DEFAULT_MAX_CONCURRENCY))
        if workers <= 1:
            return None
        from tap_analytics.prefetch import ChildPrefetcher  # a sync only

        return ChildPrefetcher(workers)
