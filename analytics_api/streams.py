"""The eight list resources of the analytics API, declared once.

Both engines read this table: the Singer tap (`tap_analytics`) and the native dlt source
(`analytics_source`); so do the fake API and the benchmarks. Change a stream here and all follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class StreamDefinition:
    """One list resource of the API and how to replicate it."""

    name: str
    path: str
    primary_key: str
    replication_key: str
    parent: str | None = None
    """Name of the parent stream whose records supply the path parameter."""
    parent_key: str | None = None
    """Path parameter filled from the parent's primary key; also the column added to child rows."""
    params: dict[str, str] = field(default_factory=dict)
    """Extra query parameters sent on every request of this stream."""

    @property
    def schema(self) -> dict[str, Any]:
        """The stream's JSON schema (a fresh copy each call, safe to mutate)."""
        return json.loads(_schema_text(self.name))

    @property
    def is_child(self) -> bool:
        return self.parent is not None


@cache
def _schema_text(name: str) -> str:
    return resources.files("analytics_api.schemas").joinpath(f"{name}.json").read_text("utf-8")


STREAMS: tuple[StreamDefinition, ...] = (
    StreamDefinition("applications", "/v1/app", "id", "updatedAt"),
    StreamDefinition(
        "event_types",
        "/v1/event-type",
        "uuid",
        "updatedAt",
        # Archived event types are hidden unless asked for; a replica wants them (and their flag).
        params={"include_archived": "true"},
    ),
    StreamDefinition("tokens", "/v1/management/authentication/api-token", "id", "createdAt"),
    StreamDefinition(
        "endpoints",
        "/v1/app/{app_id}/endpoint",
        "id",
        "updatedAt",
        parent="applications",
        parent_key="app_id",
    ),
    StreamDefinition(
        "integrations",
        "/v1/app/{app_id}/integration",
        "id",
        "updatedAt",
        parent="applications",
        parent_key="app_id",
    ),
    StreamDefinition("ingest_source", "/ingest/api/v1/source", "id", "updatedAt"),
    StreamDefinition(
        "ingest_source_endpoint",
        "/ingest/api/v1/source/{src_id}/endpoint",
        "id",
        "updatedAt",
        parent="ingest_source",
        parent_key="src_id",
    ),
    StreamDefinition("webhook_endpoint", "/v1/operational-webhook/endpoint", "id", "updatedAt"),
)

STREAMS_BY_NAME: dict[str, StreamDefinition] = {s.name: s for s in STREAMS}


def child_path(template: str, **params: str) -> str:
    """Fill `{app_id}`-style placeholders; ids and uids may hold `.`, `-`, `_`, so encode them."""
    return template.format(**{k: quote(str(v), safe="") for k, v in params.items()})
