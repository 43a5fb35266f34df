"""The bridge's dlt settings, as a config provider consulted after every user source.

dlt reads each setting from its providers in order (environment, `.dlt/secrets.toml`,
`.dlt/config.toml`, ...), first with the pipeline name as the top section, then without it. The
bridge adds one provider at the end of that list, so any value a user sets in any of those
places wins, and it only answers the plain (unprefixed) keys, and only while a pipeline created by
`create_pipeline` is resolving them: other pipelines of the same process never see these values.
Nothing is written to `os.environ`.

Defaults (all measured on a 2-core machine; see BENCHMARKS.md):

* `sources.data_writer.disable_compression = true`: the extracted, intermediate files are read
  back once by normalize on the same machine; gzip only costs CPU there (~0.6 s per 100k
  records). The load files' compression (`normalize.data_writer`) keeps dlt's default.
* `normalize.parquet_normalizer.add_dlt_load_id = true` and `add_dlt_id = true`: rows handed to
  dlt as arrow tables (`analytics_dlt.arrow`) get `_dlt_load_id` and `_dlt_id` like rows handed as
  dicts, so both give the same tables.
* `runtime.dlthub_telemetry = false`: dlt's anonymous telemetry stays off unless the user turns
  it on. dlt resolves this once per process, when its run context is first set up, so it only
  takes effect when the bridge's provider is added before anything else used dlt (the CLI does
  that first thing in `main()`).
* `runtime.log_level` (given by the command line, `install(dlt_log_level=...)`): `ERROR` at the
  commands' default level, so a successful run shows the commands' own summary, not dlt's
  per-table notices; `WARNING` (dlt's own default) with `--log-level DEBUG`. Resolved once per
  process like the telemetry setting; a level the user configures for dlt wins.

One load worker on DuckDB is not a config default: `SingerLoader` passes `workers=1` to
`pipeline.load()`, which dlt treats as a default that `load.workers` set by the user overrides.
"""

from __future__ import annotations

import threading
from typing import Any

from dlt.common.configuration.providers import ConfigProvider

from analytics_dlt import compat

__all__ = [
    "ARROW_DLT_COLUMNS",
    "DUCKDB_LOAD_WORKERS",
    "EXTRACT_NO_COMPRESSION",
    "TELEMETRY_OFF",
    "BridgeDefaults",
    "default_for",
    "install",
]

Key = tuple[str, ...]

EXTRACT_NO_COMPRESSION: dict[Key, Any] = {("sources", "data_writer", "disable_compression"): True}
ARROW_DLT_COLUMNS: dict[Key, Any] = {
    ("normalize", "parquet_normalizer", "add_dlt_load_id"): True,
    ("normalize", "parquet_normalizer", "add_dlt_id"): True,
}
TELEMETRY_OFF: dict[Key, Any] = {("runtime", "dlthub_telemetry"): False}
DUCKDB_LOAD_WORKERS = 1
"""Load workers on DuckDB: one DuckDB file takes one writer at a time, so dlt's 20 parallel load
jobs buy little time (~0.3 s per 100k records) and cost memory that grows with the data (peak RSS
290 MB at 100k and 590 MB at 1M records with 20; 230 and 290 MB with 1)."""


class BridgeDefaults(ConfigProvider):
    """Lowest-precedence values for the bridge's own pipelines (and the process-wide telemetry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_pipeline: dict[str, dict[Key, Any]] = {}
        self._process: dict[Key, Any] = dict(TELEMETRY_OFF)

    def set_pipeline_defaults(self, pipeline_name: str, values: dict[Key, Any]) -> None:
        """The defaults for the pipeline called `pipeline_name` (replacing earlier ones)."""
        with self._lock:
            self._by_pipeline[pipeline_name] = dict(values)

    def pipeline_defaults(self, pipeline_name: str) -> dict[Key, Any]:
        return dict(self._by_pipeline.get(pipeline_name, {}))

    # -- ConfigProvider -------------------------------------------------------------------------

    def get_value(
        self, key: str, hint: Any, pipeline_name: str | None, *sections: str
    ) -> tuple[Any | None, str]:
        path = (*sections, key)
        full_key = ".".join(path)
        if pipeline_name:
            return None, full_key  # `<pipeline_name>.<...>` keys are the user's alone
        if path in self._process:
            return self._process[path], full_key
        current = compat.current_pipeline_name()
        if current is None:
            return None, full_key
        values = self._by_pipeline.get(current)
        if not values:
            return None, full_key
        return values.get(path), full_key

    @property
    def supports_secrets(self) -> bool:
        return False

    @property
    def supports_sections(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return "dlt-bridge defaults"


_DEFAULTS = BridgeDefaults()


def default_for(pipeline_name: str, key: str) -> Any:
    """This module's default of `key` (dotted, e.g. `normalize.workers`) for the pipeline called
    `pipeline_name`, or None; for reading a setting outside a dlt step, where the provider does
    not answer (it cannot tell which pipeline asks)."""
    return _DEFAULTS.pipeline_defaults(pipeline_name).get(tuple(key.split(".")))


def install(dlt_log_level: str | None = None) -> BridgeDefaults:
    """Adds the bridge's defaults provider to dlt's config providers (idempotent); with
    `dlt_log_level`, the default of dlt's `runtime.log_level` (see the module doc)."""
    if dlt_log_level is not None:
        with _DEFAULTS._lock:
            _DEFAULTS._process[("runtime", "log_level")] = dlt_log_level
    compat.add_provider(_DEFAULTS)
    return _DEFAULTS
