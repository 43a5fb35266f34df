"""The analytics API as a native dlt source: eight tables, merged on their keys, incremental.

    import dlt
    from analytics_source import analytics_source

    pipeline = dlt.pipeline("analytics_native", destination="duckdb", dataset_name="analytics")
    pipeline.run(analytics_source())  # base_url / api_key from dlt config and secrets

Built from the same contract as the Singer tap (`analytics_api`): stream table, JSON schemas,
HTTP client and record rules. Tables, columns and types are those the Singer bridge creates
(`analytics_dlt.hints`). See README.md in this folder.
"""

from __future__ import annotations

import logging
from typing import Any

import dlt
from dlt.sources import DltResource

from analytics_api.config import is_plain_http_to_remote
from analytics_api.retry import RetryPolicy
from analytics_api.settings import DEFAULTS, SOURCE, setting_problems
from analytics_api.timestamps import canonical
from analytics_dlt.deletions import check_delete_mode
from analytics_dlt.hints import MAX_TABLE_NESTING
from analytics_source.helpers import stream_resources
from analytics_source.settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
    SOURCE_NAME,
    USER_AGENT,
)

__all__ = [
    "DEFAULT_DATASET_NAME",
    "DEFAULT_PIPELINE_NAME",
    "SOURCE_NAME",
    "analytics_source",
    "settings_problems",
]

log = logging.getLogger(__name__)

_WHERE = {
    "base_url": f"env {BASE_URL_ENV} or `base_url` in .dlt/config.toml",
    "api_key": f"env {API_KEY_ENV} or `api_key` in .dlt/secrets.toml",
}
"""Where a missing or unusable setting is set, for the messages."""


# Defaults are the contract's settings table's (`analytics_api.settings`); a test checks that
# these arguments are the table's source settings (plus `parallelized`).
@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=MAX_TABLE_NESTING)
def analytics_source(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    page_size: int = DEFAULTS["page_size"],
    start_date: str | None = DEFAULTS["start_date"],
    max_retries: int = DEFAULTS["max_retries"],
    backoff_factor: float = DEFAULTS["backoff_factor"],
    request_timeout: float = DEFAULTS["request_timeout"],
    max_concurrency: int = DEFAULTS["max_concurrency"],
    parallelized: bool = True,
    deletes: str = DEFAULTS["deletes"],
    history: bool = DEFAULTS["history"],
) -> list[DltResource]:
    """The eight streams of the analytics API, one resource (and table) each.

    Arguments not given come from dlt config: `base_url` from `sources.analytics.base_url` (env
    `SOURCES__ANALYTICS__BASE_URL`) or the root `base_url`; `api_key` from
    `sources.analytics.api_key` (env `SOURCES__ANALYTICS__API_KEY`) or the root `api_key` in
    `.dlt/secrets.toml`. `start_date` only matters on the first run: later runs continue from the
    state. With `parallelized` (default), up to `max_concurrency` parents' child lists are fetched
    at once (and never more requests than that in flight); without it every request waits for
    the one before. `deletes` ("off", "soft", "hard"): after each stream's complete scan, rows
    no longer returned by the API get `_sdc_deleted_at` set (soft) or are deleted (hard), in the
    same load package; such a run reads every record (no incremental filter). `history`: each
    stream also gets `<stream>_history`, every version of every record with `_valid_from` and
    `_valid_to` (docs/history.md). Raises
    `ValueError` for unusable settings, naming them but never their values.
    """
    problems = settings_problems(
        base_url,
        api_key,
        page_size=page_size,
        start_date=start_date,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        request_timeout=request_timeout,
        max_concurrency=max_concurrency,
        deletes=deletes,
        history=history,
    )
    if problems:
        raise ValueError("analytics source: " + " ".join(problems))
    mode = check_delete_mode(deletes)
    if is_plain_http_to_remote(base_url):
        log.warning(
            "base_url uses plain http:// to a remote host: the API key crosses the network "
            "unencrypted. Use https://."
        )
    # imported here: the bridge imports this package for `compat`/`hints` and never needs it
    from analytics_api.client import ApiClient, ClientSettings

    client = ApiClient(
        ClientSettings(
            base_url=base_url,
            api_key=api_key,
            page_size=page_size,
            retry=RetryPolicy(
                max_retries=max_retries, backoff_factor=backoff_factor, timeout=request_timeout
            ),
            max_concurrency=max_concurrency,
            user_agent=USER_AGENT,
        ),
        logger=log,
    )
    return stream_resources(
        client,
        initial_value=canonical(start_date) if start_date else None,
        workers=max_concurrency if parallelized else 1,
        deletes=mode,
        history=history,
    )


def settings_problems(base_url: str | None, api_key: str | None, **options: Any) -> list[str]:
    """What is wrong with the source's settings (empty when nothing is); values never quoted.

    `options` are the source's other keyword arguments (`parallelized` needs no check), so a
    caller such as the CLI can check one dict of options and then pass the same dict to
    `analytics_source`. The rules are the contract's settings table's, as for every engine.
    """
    values = {"base_url": base_url, "api_key": api_key, **options}
    return setting_problems(values, SOURCE, where=lambda name: _WHERE.get(name, ""))
