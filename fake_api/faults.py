"""Fault injection: what can go wrong, when, and how reproducibly.

Two mechanisms, checked in this order for every API request (control paths under ``/_fake/``
are never faulted):

1. **Rules** (:class:`FaultRule`): explicit, deterministic. "Every request to this target gets
   this fault", optionally only for the next ``count`` matching requests. Rules ignore the
   consecutive-fault cap. Used for "always 500", "429 for the next 5 requests", bad responses.
2. **Random faults**: a share ``rate`` of requests gets a fault kind picked from ``kinds``.
   The decision is a hash of ``(seed, request key, attempt number)`` where the request key is
   ``METHOD + path + query`` and the attempt number counts earlier requests with that same key,
   so it does not depend on thread timing. At most ``max_consecutive`` faults in a row are
   injected for one request key: with 3, the 4th attempt of a request always succeeds.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# Transient faults: a well-behaved client retries these.
TRANSIENT_KINDS: tuple[str, ...] = (
    "429",  # 429 with Retry-After: <retry_after seconds>
    "429-date",  # 429 with Retry-After as an HTTP date (now + retry_after seconds)
    "429-no-retry-after",  # 429 without Retry-After
    "500",
    "502",
    "503",
    "504",
    "reset",  # headers + part of the body, then the socket is reset (RST)
    "truncated",  # a complete 200 response whose JSON body is cut short
    "slow",  # sleeps slow_seconds before answering normally (beyond a client read timeout)
)
# Bad responses: a client should fail loudly (or, for html-502, retry then fail).
BAD_KINDS: tuple[str, ...] = (
    "html-200",  # an HTML error page with status 200
    "html-502",  # an HTML error page with status 502 (a proxy's page)
    "no-data",  # envelope without "data"
    "data-not-list",  # "data" is an object
    "missing-pk",  # the first record of the page lacks its primary key
    "repeated-cursor",  # "iterator" repeats the request's iterator, done false: an endless loop
    "missing-done",  # envelope without "done"
    "null-iterator-not-done",  # "done": false with "iterator": null
)
ALL_KINDS: tuple[str, ...] = TRANSIENT_KINDS + BAD_KINDS
DEFAULT_RANDOM_KINDS: tuple[str, ...] = (
    "429",
    "429-date",
    "429-no-retry-after",
    "500",
    "502",
    "503",
    "504",
    "reset",
)


@dataclass(frozen=True)
class FaultRule:
    """A deterministic fault for requests matching ``target``.

    ``target`` is ``"*"`` (every API request), a stream name (``"endpoints"``), a path
    template (``"/v1/app/{app_id}/endpoint"``) or a concrete path (``"/v1/app/app_x/endpoint"``,
    no query string). ``count`` limits the rule to the next N matching requests (``None``:
    forever). ``retry_after`` overrides :attr:`FaultConfig.retry_after` for 429 kinds.
    """

    kind: str
    target: str = "*"
    count: int | None = None
    retry_after: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(ALL_KINDS)}")

    def matches(self, path: str, template: str, stream: str) -> bool:
        return self.target in ("*", path, template, stream)


@dataclass(frozen=True)
class FaultConfig:
    """Fault settings. The default injects nothing."""

    rate: float = 0.0
    """Share of API requests (0..1) that get a random fault."""
    kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS
    """Kinds the random faults are drawn from (any of :data:`ALL_KINDS`)."""
    seed: int = 0
    max_consecutive: int = 3
    """Cap on consecutive random faults for one request key (method + path + query)."""
    targets: tuple[str, ...] = ("*",)
    """Random faults only hit requests matching one of these (same syntax as FaultRule.target)."""
    retry_after: str = "1"
    """Retry-After seconds for "429" (and the offset of the date for "429-date")."""
    slow_seconds: float = 5.0
    """How long a "slow" fault sleeps before answering."""
    rules: tuple[FaultRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be within 0..1")
        bad = [k for k in self.kinds if k not in ALL_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; known: {', '.join(ALL_KINDS)}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("rate > 0 needs at least one kind")
        # Accept lists (e.g. from JSON) and freeze them.
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(
            self,
            "rules",
            tuple(r if isinstance(r, FaultRule) else FaultRule(**r) for r in self.rules),
        )

    @property
    def active(self) -> bool:
        return self.rate > 0 or bool(self.rules)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        data["targets"] = list(self.targets)
        data["rules"] = [asdict(r) for r in self.rules]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FaultConfig fields: {sorted(unknown)}")
        return cls(**data)

    def with_rules(self, *rules: FaultRule) -> FaultConfig:
        return replace(self, rules=self.rules + rules)


@dataclass
class Decision:
    kind: str
    retry_after: str
    slow_seconds: float
    source: str  # "rule" or "random"


class FaultInjector:
    """Thread-safe decisions for one :class:`FaultConfig` (history resets with a new config)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._remaining = [r.count for r in config.rules]
            self._attempts: dict[str, int] = {}
            self._consecutive: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.config.active

    def decide(self, key: str, path: str, template: str, stream: str) -> Decision | None:
        with self._lock:
            cfg = self.config
            for i, rule in enumerate(cfg.rules):
                left = self._remaining[i]
                if (left is None or left > 0) and rule.matches(path, template, stream):
                    if left is not None:
                        self._remaining[i] = left - 1
                    return Decision(
                        rule.kind, rule.retry_after or cfg.retry_after, cfg.slow_seconds, "rule"
                    )
            if cfg.rate <= 0 or not any(t in ("*", path, template, stream) for t in cfg.targets):
                return None
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            consecutive = self._consecutive.get(key, 0)
            kind = fault_for(cfg.seed, key, attempt, cfg.rate, cfg.kinds)
            if kind is None or consecutive >= cfg.max_consecutive:
                self._consecutive[key] = 0
                return None
            self._consecutive[key] = consecutive + 1
            return Decision(kind, cfg.retry_after, cfg.slow_seconds, "random")


def fault_for(seed: int, key: str, attempt: int, rate: float, kinds: tuple[str, ...]) -> str | None:
    """The random fault (or None) for attempt ``attempt`` of request ``key``: a pure function."""
    digest = hashlib.blake2b(f"{seed}\0{key}\0{attempt}".encode(), digest_size=16).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u >= rate:
        return None
    return kinds[int.from_bytes(digest[8:], "big") % len(kinds)]
