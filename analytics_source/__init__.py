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

import dlt
from dlt.sources import DltResource

from analytics_api.config import (
    api_key_problem,
    base_url_problem,
    is_plain_http_to_remote,
    numeric_setting_problems,
    start_date_problem,
)
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
)
from analytics_api.retry import RetryPolicy
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


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=MAX_TABLE_NESTING)
def analytics_source(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    page_size: int = DEFAULT_PAGE_SIZE,
    start_date: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    request_timeout: float = DEFAULT_TIMEOUT,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    parallelized: bool = True,
    deletes: str = "off",
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
    same load package; such a run reads every record (no incremental filter). Raises
    `ValueError` for unusable settings, naming them but never their values.
    """
    mode = check_delete_mode(deletes)
    problems = settings_problems(
        base_url,
        api_key,
        page_size=page_size,
        start_date=start_date,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        request_timeout=request_timeout,
        max_concurrency=max_concurrency,
    )
    if problems:
        raise ValueError("analytics source: " + " ".join(problems))
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
    )


def settings_problems(
    base_url: str | None,
    api_key: str | None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    start_date: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    request_timeout: float = DEFAULT_TIMEOUT,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    parallelized: bool = True,
) -> list[str]:
    """What is wrong with the source's settings (empty when nothing is); values never quoted.

    Takes the source's own keyword arguments (`parallelized` needs no check), so a caller such
    as the CLI can check one dict of options and then pass the same dict to `analytics_source`.
    """
    problems: list[str] = []
    if not base_url:
        problems.append(
            f"setting 'base_url': missing; set env {BASE_URL_ENV} or `base_url` in"
            " .dlt/config.toml, e.g. https://api.example.com."
        )
    elif problem := base_url_problem(base_url):
        problems.append(problem)
    if not api_key:
        problems.append(f"setting 'api_key': missing; set env {API_KEY_ENV} or .dlt/secrets.toml.")
    elif problem := api_key_problem(api_key, env_hint=f"env {API_KEY_ENV}"):
        problems.append(problem)
    if start_date and (problem := start_date_problem(start_date)):
        problems.append(problem)
    problems.extend(
        numeric_setting_problems(
            page_size=page_size,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            request_timeout=request_timeout,
            max_concurrency=max_concurrency,
        )
    )
    return problems
