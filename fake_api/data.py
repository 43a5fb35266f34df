"""Deterministic generated data for the fake analytics API.

Everything here is a pure function of :class:`DatasetConfig` (and, for mutations, of the
mutation seed): the same config always produces byte-identical records.

Records are plain ``dict`` objects shaped exactly as the API serves them: only the contract's
documented fields, unset optional fields sometimes omitted and sometimes ``null``, timestamps
RFC 3339 UTC with ``Z`` and 0, 3, 6 or 9 fractional digits.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any

from analytics_api.streams import STREAMS, STREAMS_BY_NAME

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""Base62 alphabet in ASCII order, so that string order equals numeric order."""

_EPOCH_NS = int(datetime(2022, 1, 3, 9, 0, tzinfo=timezone.utc).timestamp()) * 10**9
_SECOND = 10**9
_DIGITS = (0, 3, 6, 9)

TOP_LEVEL = tuple(s.name for s in STREAMS if not s.is_child)
CHILDREN = tuple(s.name for s in STREAMS if s.is_child)
PARENT_STREAMS = tuple(sorted({s.parent for s in STREAMS if s.parent}))


@dataclass(frozen=True)
class DatasetConfig:
    """Sizes of the generated dataset. Defaults give ~220 records: fast enough for unit tests."""

    seed: int = 1
    applications: int = 20
    endpoints_per_app: int = 5
    integrations_per_app: int = 2
    event_types: int = 30
    tokens: int = 5
    ingest_sources: int = 4
    endpoints_per_source: int = 3
    webhook_endpoints: int = 7
    archived_share: float = 0.2
    """Share of event types with ``archived: true`` (hidden unless ``include_archived=true``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def total_records(self) -> int:
        return (
            self.applications * (1 + self.endpoints_per_app + self.integrations_per_app)
            + self.event_types
            + self.tokens
            + self.ingest_sources * (1 + self.endpoints_per_source)
            + self.webhook_endpoints
        )


DEMO_DATASET = DatasetConfig(
    applications=100,
    endpoints_per_app=10,
    integrations_per_app=3,
    event_types=120,
    tokens=12,
    ingest_sources=10,
    endpoints_per_source=5,
    webhook_endpoints=25,
)
"""What `make demo` loads (1,617 records), and the small scenario of `make bench`."""

# --------------------------------------------------------------------------------------------
# Small helpers


def b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    if n:
        raise ValueError("number too large for width")
    return "".join(reversed(out))


def format_ts(ns: int, digits: int) -> str:
    """RFC 3339 UTC with ``Z`` and ``digits`` fractional digits (``ns`` already truncated)."""
    secs, frac = divmod(ns, _SECOND)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return base + "Z"
    return f"{base}.{frac:09d}"[: len(base) + 1 + digits] + "Z"


def parse_ts(value: str) -> int:
    """Inverse of :func:`format_ts` for any 0..9 fractional digits (UTC ``Z`` only)."""
    if not value.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {value!r}")
    body = value[:-1]
    main, _, frac = body.partition(".")
    secs = int(
        datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    )
    return secs * _SECOND + int((frac + "000000000")[:9] or 0)


def _truncate(ns: int, digits: int) -> int:
    unit = 10 ** (9 - digits)
    return ns - ns % unit


def sort_key(stream: str, record: dict[str, Any]) -> str:
    """The key a list is ordered by (and the iterator value): ``name`` for event types, else id."""
    return (
        record["name"] if stream == "event_types" else record[STREAMS_BY_NAME[stream].primary_key]
    )


_ADJ = ["amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hasty", "icy", "jolly"]
_NOUN = ["otter", "falcon", "maple", "harbor", "comet", "lantern", "meadow", "quartz", "river"]
_GROUPS = ["user", "invoice", "order", "payment", "subscription", "account", "message", "report"]
_ACTIONS = ["created", "updated", "deleted", "failed", "paid", "signup", "archived", "renewed"]
_TEAMS = ["payments", "growth", "core", "platform", "data"]
_SOURCE_TYPES = ["generic-webhook", "cron", "github", "svix", "stripe", "hubspot", "shopify"]


# --------------------------------------------------------------------------------------------
# The dataset


class Dataset:
    """The mutable state of the fake: records per stream, deleted parents, a logical clock.

    Top-level lists are kept sorted by :func:`sort_key`; child lists are keyed by parent id.
    Not thread-safe by itself: the server serialises writes with a lock.
    """

    def __init__(self, config: DatasetConfig | None = None) -> None:
        self.config = config or DatasetConfig()
        self._rng = random.Random(f"fake-api-data:{self.config.seed}")
        self._clock = _EPOCH_NS
        self._max_ns = _EPOCH_NS
        self._ids: set[str] = set()
        self.top: dict[str, list[dict[str, Any]]] = {name: [] for name in TOP_LEVEL}
        self.children: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in CHILDREN}
        self.deleted: dict[str, set[str]] = {name: set() for name in PARENT_STREAMS}
        self.mutations = 0
        self.deletions = 0
        self.removed: dict[str, set[str]] = {s.name: set() for s in STREAMS}
        """Sort keys of records deleted by :meth:`delete_records` (still valid iterators)."""
        self._index: dict[str, dict[str, int]] = {}
        self._generate()

    # ---- clock, ids, timestamps -----------------------------------------------------------

    def _tick(self) -> int:
        """Advance the creation clock (>= 1 s per record, so truncation keeps the order)."""
        self._clock += self._rng.randint(1, 900) * _SECOND + self._rng.randrange(_SECOND)
        return self._clock

    def _new_id(self, prefix: str, created_ns: int, length: int = 27) -> str:
        # KSUID-like: 8 leading base62 chars encode the creation time in ms, so ids sort in
        # creation order; the rest is seeded randomness.
        head = b62(created_ns // 10**6, 8)
        while True:
            tail = "".join(self._rng.choices(BASE62, k=length - 8))
            new = prefix + head + tail
            if new not in self._ids:
                self._ids.add(new)
                return new

    def _stamp(self, ns: int, digits: int | None = None) -> tuple[str, int]:
        d = self._rng.choice(_DIGITS) if digits is None else digits
        ns = _truncate(ns, d)
        self._max_ns = max(self._max_ns, ns)
        return format_ts(ns, d), ns

    def _created_updated(self, i: int) -> tuple[str, str]:
        """createdAt now; updatedAt equal (~30 %) or later by 1 s .. 60 days."""
        created, created_ns = self._stamp(self._tick(), _DIGITS[i % 4])
        if self._rng.random() < 0.3:
            return created, created
        delta = self._rng.randint(1, 60 * 86400) * _SECOND + self._rng.randrange(_SECOND)
        updated, _ = self._stamp(created_ns + delta)
        return created, updated

    def _metadata(self, i: int) -> dict[str, str]:
        n = i % 4
        keys = ["team", "env", "owner", "costCenter"][:n]
        values = {
            "team": self._rng.choice(_TEAMS),
            "env": self._rng.choice(["prod", "staging", "dev"]),
            "owner": f"user-{self._rng.randint(1, 999)}@example.com",
            "costCenter": str(self._rng.randint(1000, 99999)),
        }
        return {k: values[k] for k in keys}

    def _words(self) -> str:
        return f"{self._rng.choice(_ADJ)} {self._rng.choice(_NOUN)}"

    # ---- generation -----------------------------------------------------------------------

    def _generate(self) -> None:
        c = self.config
        self.top["event_types"] = sorted(
            (self._event_type(i) for i in range(c.event_types)), key=lambda r: r["name"]
        )
        self.top["tokens"] = [self._token(i) for i in range(c.tokens)]
        self.top["webhook_endpoint"] = [
            self._webhook_endpoint(i) for i in range(c.webhook_endpoints)
        ]
        apps = []
        for i in range(c.applications):
            app = self._application(i)
            apps.append(app)
            self.children["endpoints"][app["id"]] = [
                self._endpoint(i * c.endpoints_per_app + j) for j in range(c.endpoints_per_app)
            ]
            self.children["integrations"][app["id"]] = [
                self._integration(i * c.integrations_per_app + j)
                for j in range(c.integrations_per_app)
            ]
        self.top["applications"] = apps
        sources = []
        for i in range(c.ingest_sources):
            src = self._ingest_source(i)
            sources.append(src)
            self.children["ingest_source_endpoint"][src["id"]] = [
                self._ingest_endpoint(i * c.endpoints_per_source + j)
                for j in range(c.endpoints_per_source)
            ]
        self.top["ingest_source"] = sources

    def _application(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        rec: dict[str, Any] = {"id": self._new_id("app_", parse_ts(created))}
        variant = i % 3
        if variant == 1:
            rec["uid"] = None
        elif variant == 2:
            rec["uid"] = f"app-{i}.{self._rng.choice(_NOUN)}_{self._rng.randint(0, 99)}"
        rec["name"] = f"{self._words().title()} {i}"
        rec["metadata"] = self._metadata(i)
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    def _event_type(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        per = len(_GROUPS) * len(_ACTIONS)
        group = _GROUPS[i % len(_GROUPS)]
        action = _ACTIONS[(i // len(_GROUPS)) % len(_ACTIONS)]
        name = f"{group}.{action}" + (f".v{i // per + 1}" if i >= per else "")
        rec: dict[str, Any] = {
            "name": name,
            "description": f"A {group} was {action}",
            "archived": self._rng.random() < self.config.archived_share,
            "deprecated": self._rng.random() < 0.1,
        }
        variant = i % 3
        if variant == 1:
            rec["featureFlag"] = None
        elif variant == 2:
            rec["featureFlag"] = f"beta-{self._rng.choice(_NOUN)}"
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        rec["uuid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        return rec

    def _token(self, i: int) -> dict[str, Any]:
        created, _ = self._stamp(self._tick(), _DIGITS[i % 4])
        rec: dict[str, Any] = {"id": self._new_id("key_", parse_ts(created))}
        variant = i % 3
        if variant == 1:
            rec["name"] = None
        elif variant == 2:
            rec["name"] = f"{self._rng.choice(_TEAMS)} token {i}"
        tail = "".join(self._rng.choices(BASE62, k=4))
        rec["censoredToken"] = f"testsk_{'*' * 28}{tail}"
        rec["createdAt"] = created
        return rec

    def _endpoint(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        rec: dict[str, Any] = {"id": self._new_id("ep_", parse_ts(created))}
        rec["metadata"] = self._metadata(i)
        rec["description"] = f"{self._words()} endpoint"
        rec["url"] = f"https://hooks.example.com/{self._rng.choice(_NOUN)}/{i}"
        v = i % 5
        rec["version"] = (
            1
            if v < 3
            else (self._rng.randint(2, 9) if v == 3 else self._rng.randint(65536, 2**31 - 1))
        )
        d = i % 4
        if d == 1:
            rec["disabled"] = False
        elif d >= 2:
            rec["disabled"] = self._rng.random() < 0.3
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    def _integration(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        rec: dict[str, Any] = {"id": self._new_id("integ_", parse_ts(created))}
        rec["name"] = f"{self._words().title()} integration"
        variant = i % 4
        if variant == 0:
            rec["featureFlags"] = []
        elif variant == 1:
            rec["featureFlags"] = sorted({f"ff-{self._rng.choice(_NOUN)}" for _ in range(3)})
        elif variant == 2:
            rec["featureFlags"] = None
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    def _ingest_source(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        length = 21 + i % 2
        rec: dict[str, Any] = {"id": self._new_id("src_", parse_ts(created), length=length)}
        rec["name"] = f"{self._words()} source"
        kind = _SOURCE_TYPES[i % len(_SOURCE_TYPES)]
        rec["type"] = kind
        if kind == "cron":
            cfg: dict[str, Any] = {
                "schedule": f"*/{self._rng.randint(1, 59)} * * * *",
                "payload": '{"ping": true}',
            }
            if i % 2:
                cfg["contentType"] = "application/json"
            rec["config"] = cfg
        elif kind == "svix" and i % 2:
            rec["config"] = None
        elif kind != "generic-webhook":
            rec["config"] = {
                "secret": "whsec_" + "*" * 12,
                "options": {
                    "region": self._rng.choice(["eu", "us"]),
                    "retries": self._rng.randint(0, 5),
                    "events": [f"{g}.created" for g in self._rng.sample(_GROUPS, 2)],
                    "verify": {"enabled": True, "toleranceSeconds": 300},
                },
            }
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    def _ingest_endpoint(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        rec: dict[str, Any] = {"id": self._new_id("ep_", parse_ts(created))}
        rec["url"] = f"https://ingest.example.com/{self._rng.choice(_NOUN)}/{i}"
        rec["description"] = f"{self._words()} ingest endpoint"
        if i % 3:
            rec["disabled"] = i % 3 == 2 and self._rng.random() < 0.5
        rec["metadata"] = self._metadata(i)
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    def _webhook_endpoint(self, i: int) -> dict[str, Any]:
        created, updated = self._created_updated(i)
        rec: dict[str, Any] = {"id": self._new_id("ep_", parse_ts(created))}
        variant = i % 3
        if variant == 1:
            rec["uid"] = None
        elif variant == 2:
            rec["uid"] = f"ops-hook-{i}"
        rec["url"] = f"https://ops.example.com/{self._rng.choice(_NOUN)}/{i}"
        rec["description"] = f"{self._words()} operational webhook"
        rec["disabled"] = self._rng.random() < 0.2
        f = i % 3
        if f == 1:
            rec["filterTypes"] = None
        elif f == 2:
            rec["filterTypes"] = ["message.attempt.failing", "message.attempt.exhausted"][
                : self._rng.randint(1, 2)
            ]
        r = i % 4
        if r == 1:
            rec["rateLimit"] = None
        elif r == 2:
            rec["rateLimit"] = self._rng.randint(1, 65535)
        elif r == 3:
            rec["rateLimit"] = self._rng.randint(65536, 2**31 - 1)
        rec["metadata"] = self._metadata(i)
        rec["createdAt"] = created
        rec["updatedAt"] = updated
        return rec

    # ---- reading --------------------------------------------------------------------------

    def find_parent(self, parent_stream: str, ident: str) -> dict[str, Any] | None:
        """A parent record by id (or by ``uid`` where the resource has one)."""
        index = self._index.get(parent_stream)
        if index is None:
            index = {}
            for pos, r in enumerate(self.top[parent_stream]):
                if r.get("uid"):
                    index.setdefault(r["uid"], pos)
            for pos, r in enumerate(self.top[parent_stream]):
                index[r["id"]] = pos
            self._index[parent_stream] = index
        found = index.get(ident)
        return None if found is None else self.top[parent_stream][found]

    def is_deleted(self, parent_stream: str, parent_id: str) -> bool:
        return parent_id in self.deleted.get(parent_stream, ())

    def dump(self, stream: str) -> list[dict[str, Any]]:
        """Ground truth for ``stream`` as a replica should hold it (copies, safe to mutate).

        Child records carry their parent id under ``parent_key``; children of deleted parents
        are omitted; event types include archived ones (in name order).
        """
        sdef = STREAMS_BY_NAME[stream]
        if not sdef.is_child:
            return [dict(r) for r in self.top[stream]]
        assert sdef.parent is not None and sdef.parent_key is not None
        out = []
        for parent in self.top[sdef.parent]:
            pid = parent["id"]
            if self.is_deleted(sdef.parent, pid):
                continue
            for r in self.children[stream].get(pid, []):
                out.append({**r, sdef.parent_key: pid})
        return out

    def counts(self) -> dict[str, int]:
        return {s.name: len(self.dump(s.name)) for s in STREAMS}

    def max_timestamp_ns(self) -> int:
        return self._max_ns

    # ---- writing --------------------------------------------------------------------------

    def delete_parents(self, parent_stream: str, ids: list[str]) -> None:
        if parent_stream not in self.deleted:
            raise KeyError(f"{parent_stream!r} is not a parent stream ({PARENT_STREAMS})")
        known = {r["id"] for r in self.top[parent_stream]}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise KeyError(f"unknown {parent_stream} ids: {unknown}")
        self.deleted[parent_stream].update(ids)

    def delete_records(self, share: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
        """Delete a seeded share of every stream (see :func:`fake_api.deletions.delete_share`)."""
        from .deletions import delete_share

        return delete_share(self, share, seed)

    def forget_index(self) -> None:
        """Drop the parent lookup index (parents were removed from their lists)."""
        self._index = {}

    def mutate(
        self, share: float = 0.1, seed: int = 0, *, keep_updated_at: bool = False
    ) -> dict[str, list[str]]:
        """Change a seeded ``share`` of the served records of every stream.

        Each chosen record gets ``updatedAt`` strictly later than every timestamp that
        existed before the call, and one other field changed. Child records are chosen
        independently of their parents (an endpoint changes while its application does not).
        ``tokens`` have no ``updatedAt`` (their replication key is ``createdAt``, which never
        changes upstream): for them the mutation *adds* new tokens instead. Children of deleted
        parents are never chosen. Returns the primary keys touched (or added) per stream.

        ``keep_updated_at``: the change the real API should never make, for history tests: the
        chosen records get one field changed and keep their ``updatedAt``; tokens are changed in
        place too (their ``name``), none is added.
        """
        if not 0 <= share <= 1:
            raise ValueError("share must be within 0..1")
        self.mutations += 1
        rng = random.Random(f"fake-api-mutate:{self.config.seed}:{seed}:{self.mutations}")
        self._rng = rng
        # All new timestamps start after everything seen so far (+1 s survives truncation).
        self._clock = max(self._clock, self._max_ns) + _SECOND
        result: dict[str, list[str]] = {}
        for sdef in STREAMS:
            name = sdef.name
            if name == "tokens" and not keep_updated_at:
                n = len(self.top["tokens"])
                k = _share_count(share, n)
                new = [self._token(n + j) for j in range(k)]
                self.top["tokens"].extend(new)
                result[name] = [r["id"] for r in new]
                continue
            pool: list[tuple[list[dict[str, Any]], int]] = []
            if sdef.is_child:
                assert sdef.parent is not None
                for parent in self.top[sdef.parent]:
                    if self.is_deleted(sdef.parent, parent["id"]):
                        continue
                    lst = self.children[name].get(parent["id"], [])
                    pool.extend((lst, j) for j in range(len(lst)))
            else:
                lst = self.top[name]
                pool.extend((lst, j) for j in range(len(lst)))
            chosen = rng.sample(pool, _share_count(share, len(pool)))
            keys = []
            for lst, j in chosen:
                rec = dict(lst[j])
                self._change(name, rec)
                if not keep_updated_at:
                    rec["updatedAt"], _ = self._stamp(self._tick())
                lst[j] = rec
                keys.append(rec[sdef.primary_key])
            result[name] = keys
        return result

    def _change(self, stream: str, rec: dict[str, Any]) -> None:
        tag = f"m{self.mutations}-{self._rng.randint(0, 10**6)}"
        if stream in ("applications", "integrations", "ingest_source", "tokens"):
            rec["name"] = f"{rec.get('name') or ''} ({tag})".strip()
        elif stream == "event_types":  # name is the sort key: change the description instead
            rec["description"] = f"{rec.get('description') or ''} ({tag})"
        elif stream in ("endpoints", "webhook_endpoint", "ingest_source_endpoint"):
            rec["url"] = f"{rec['url'].split('?')[0]}?rev={tag}"
        else:  # pragma: no cover - every stream is handled above
            rec["metadata"] = {**(rec.get("metadata") or {}), "rev": tag}


def _share_count(share: float, n: int) -> int:
    if share <= 0 or n == 0:
        return 0
    return min(n, max(1, round(share * n)))
