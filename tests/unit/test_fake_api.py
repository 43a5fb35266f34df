"""The local fake of the analytics API behaves like the contract says the real one does."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from fake_api import (
    ALL_KINDS,
    Dataset,
    DatasetConfig,
    FakeAPI,
    FaultConfig,
    FaultRule,
    fault_for,
    parse_ts,
)
from fake_api.__main__ import build_parser
from tests.support import json_lines

_session = requests.Session()  # keep-alive: faster than a new connection per request
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
ID_PATTERNS = {
    "applications": r"^app_[A-Za-z0-9]{27}$",
    "tokens": r"^key_[A-Za-z0-9]{27}$",
    "endpoints": r"^ep_[A-Za-z0-9]{27}$",
    "integrations": r"^integ_[A-Za-z0-9]{27}$",
    "ingest_source": r"^src_[A-Za-z0-9]{21,22}$",
    "ingest_source_endpoint": r"^ep_[A-Za-z0-9]{27}$",
    "webhook_endpoint": r"^ep_[A-Za-z0-9]{27}$",
}
CONTRACT_FIELDS = {
    "applications": {"metadata", "createdAt", "id", "name", "uid", "updatedAt"},
    "event_types": {
        "description",
        "archived",
        "createdAt",
        "deprecated",
        "featureFlag",
        "name",
        "updatedAt",
        "uuid",
    },
    "tokens": {"censoredToken", "createdAt", "id", "name"},
    "endpoints": {
        "version",
        "description",
        "metadata",
        "createdAt",
        "disabled",
        "id",
        "updatedAt",
        "url",
    },
    "integrations": {"createdAt", "featureFlags", "id", "name", "updatedAt"},
    "ingest_source": {"type", "config", "createdAt", "id", "name", "updatedAt"},
    "ingest_source_endpoint": {
        "description",
        "metadata",
        "createdAt",
        "disabled",
        "id",
        "updatedAt",
        "url",
    },
    "webhook_endpoint": {
        "description",
        "metadata",
        "createdAt",
        "disabled",
        "filterTypes",
        "id",
        "rateLimit",
        "uid",
        "updatedAt",
        "url",
    },
}


def get(api: Any, path: str, token: str | None = "", timeout: float = 5, **params: Any):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or api.token}"
    return _session.get(api.url + path, headers=headers, params=params, timeout=timeout)


def walk(api: Any, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """All records of a list, following iterator until done; and the number of pages."""
    out: list[dict[str, Any]] = []
    iterator = None
    pages = 0
    while True:
        q = dict(params, **({"iterator": iterator} if iterator else {}))
        body = get(api, path, **q).json()
        pages += 1
        out.extend(body["data"])
        if body["done"]:
            return out, pages
        iterator = body["iterator"]


def child_path(stream: str, parent_id: str) -> str:
    sdef = STREAMS_BY_NAME[stream]
    return sdef.path.replace("{" + str(sdef.parent_key) + "}", parent_id)


# ---- pagination ----------------------------------------------------------------------------


def test_pagination_exact_pages_and_last_page(fake_api: FakeAPI) -> None:
    apps = fake_api.dump("applications")
    assert len(apps) == 20
    pages = [get(fake_api, "/v1/app", limit=7).json()]
    while not pages[-1]["done"]:
        pages.append(get(fake_api, "/v1/app", limit=7, iterator=pages[-1]["iterator"]).json())
    assert [len(p["data"]) for p in pages] == [7, 7, 6]
    assert [p["done"] for p in pages] == [False, False, True]
    assert set(pages[0]) == {"data", "iterator", "prevIterator", "done"}
    assert pages[0]["prevIterator"] is None
    last = pages[-1]
    assert last["iterator"] == apps[-1]["id"]  # not null on the last page
    past = get(fake_api, "/v1/app", limit=7, iterator=last["iterator"]).json()
    assert past["data"] == [] and past["iterator"] is None and past["done"] is True
    assert [r for p in pages for r in p["data"]] == apps


def test_default_limit_is_50(fake_api_factory: Any) -> None:
    api = fake_api_factory(
        DatasetConfig(applications=120, endpoints_per_app=0, integrations_per_app=0)
    )
    body = get(api, "/v1/app").json()
    assert len(body["data"]) == 50 and body["done"] is False
    _, pages = walk(api, "/v1/app")
    assert pages == 3
    _, pages = walk(api, "/v1/app", limit=250)
    assert pages == 1


@pytest.mark.parametrize("limit", ["0", "-1", "251", "1000", "abc", "1.5", ""])
def test_bad_limit_is_422_with_array_detail(fake_api: FakeAPI, limit: str) -> None:
    r = get(fake_api, "/v1/app", limit=limit)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["query", "limit"]
    assert detail[0]["msg"] and detail[0]["type"]


def test_limit_bounds_accepted(fake_api: FakeAPI) -> None:
    assert len(get(fake_api, "/v1/app", limit=1).json()["data"]) == 1
    assert len(get(fake_api, "/v1/app", limit=250).json()["data"]) == 20


def test_unknown_iterator_and_bad_order(fake_api: FakeAPI) -> None:
    r = get(fake_api, "/v1/app", iterator="app_doesnotexist")
    assert r.status_code == 400 and set(r.json()) == {"code", "detail"}
    r = get(fake_api, "/v1/app", order="sideways")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "order"]


def test_descending_order(fake_api: FakeAPI) -> None:
    ids = [a["id"] for a in fake_api.dump("applications")]
    records, pages = walk(fake_api, "/v1/app", limit=8, order="descending")
    assert [r["id"] for r in records] == ids[::-1] and pages == 3


def test_keep_alive_and_content_length(fake_api: FakeAPI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_api.port)
    for _ in range(3):
        conn.request(
            "GET", "/v1/app?limit=2", headers={"Authorization": f"Bearer {fake_api.token}"}
        )
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and resp.version == 11
        assert int(resp.getheader("Content-Length")) == len(body)
    conn.close()


# ---- auth ----------------------------------------------------------------------------------


def test_auth_401_and_403(fake_api: FakeAPI) -> None:
    app_id = fake_api.dump("applications")[0]["id"]
    for path in ("/v1/app", child_path("endpoints", app_id), "/v1/event-type"):
        for token in (None, "wrong"):
            r = get(fake_api, path, token=token)
            assert r.status_code == 401
            assert r.json()["code"] == "authentication_failed" and r.json()["detail"]
        r = get(fake_api, path, token="forbidden-token")
        assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    # Control endpoints need no token.
    assert requests.get(fake_api.url + "/_fake/stats", timeout=5).status_code == 200
    assert fake_api.stats()["by_status"] == {"401": 6, "403": 3}


# ---- data ----------------------------------------------------------------------------------


def test_include_archived(fake_api: FakeAPI) -> None:
    everything = fake_api.dump("event_types")
    archived = [e for e in everything if e["archived"]]
    assert 0 < len(archived) < len(everything)
    default, _ = walk(fake_api, "/v1/event-type", limit=7)
    assert [e["uuid"] for e in default] == [e["uuid"] for e in everything if not e["archived"]]
    for flag in ("false",):
        assert walk(fake_api, "/v1/event-type", include_archived=flag)[0] == default
    full, _ = walk(fake_api, "/v1/event-type", limit=7, include_archived="true")
    assert full == everything
    names = [e["name"] for e in full]
    assert names == sorted(names)  # ordered by name, like upstream


def test_ids_sort_in_creation_order(fake_api: FakeAPI) -> None:
    for sdef in STREAMS:
        if sdef.name == "event_types":
            continue
        if sdef.is_child:
            assert sdef.parent is not None and sdef.parent_key is not None
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in fake_api.dump(sdef.name):
                groups.setdefault(r[sdef.parent_key], []).append(r)
            lists = list(groups.values())
        else:
            lists = [fake_api.dump(sdef.name)]
        for records in lists:
            ids = [r["id"] for r in records]
            created = [parse_ts(r["createdAt"]) for r in records]
            assert ids == sorted(ids)
            assert created == sorted(created) and len(set(created)) == len(created)


def test_record_shapes(fake_api: FakeAPI) -> None:
    dump = fake_api.dump_all()
    digits: set[int] = set()
    all_ep_ids: list[str] = []
    for name, records in dump.items():
        sdef = STREAMS_BY_NAME[name]
        assert records, name
        for r in records:
            fields = set(r) - ({sdef.parent_key} if sdef.parent_key else set())
            assert fields <= CONTRACT_FIELDS[name], (name, fields - CONTRACT_FIELDS[name])
            if name in ID_PATTERNS:
                assert re.match(ID_PATTERNS[name], r["id"]), r["id"]
            for f in ("createdAt", "updatedAt"):
                if f in r:
                    assert TS.match(r[f]), r[f]
                    frac = r[f][20:-1]
                    digits.add(len(frac))
            if "updatedAt" in r:
                assert parse_ts(r["updatedAt"]) >= parse_ts(r["createdAt"])
            if "metadata" in r:
                assert all(isinstance(v, str) for v in r["metadata"].values())
            if r["id" if "id" in r else "uuid"].startswith("ep_"):
                all_ep_ids.append(r["id"])
    assert digits == {0, 3, 6, 9}
    assert len(all_ep_ids) == len(set(all_ep_ids))

    def values(stream: str, field: str) -> list[Any]:
        return [r.get(field, "<missing>") for r in dump[stream]]

    for stream, field in [
        ("applications", "uid"),
        ("webhook_endpoint", "uid"),
        ("webhook_endpoint", "rateLimit"),
        ("webhook_endpoint", "filterTypes"),
        ("event_types", "featureFlag"),
        ("tokens", "name"),
        ("ingest_source", "config"),
        ("integrations", "featureFlags"),
    ]:
        seen = values(stream, field)
        assert "<missing>" in seen and None in seen, (stream, field)
        assert any(v not in ("<missing>", None) for v in seen), (stream, field)
    assert any(v > 65535 for v in values("webhook_endpoint", "rateLimit") if isinstance(v, int))
    assert any(r["version"] > 65535 for r in dump["endpoints"])
    assert all(isinstance(r["version"], int) for r in dump["endpoints"])
    types = {r["type"]: r for r in dump["ingest_source"]}
    assert "config" not in types["generic-webhook"]
    assert isinstance(types["cron"]["config"], dict) and "schedule" in types["cron"]["config"]
    assert any(
        isinstance(r.get("config"), dict) and isinstance(r["config"].get("options"), dict)
        for r in dump["ingest_source"]
    )
    assert all(isinstance(e["archived"], bool) for e in dump["event_types"])
    assert all(re.match(r"^[0-9a-f-]{36}$", e["uuid"]) for e in dump["event_types"])


def test_dump_equals_walking_all_pages(fake_api: FakeAPI) -> None:
    for sdef in STREAMS:
        expected = fake_api.dump(sdef.name)
        if sdef.is_child:
            assert sdef.parent is not None and sdef.parent_key is not None
            got = []
            for parent in fake_api.dump(sdef.parent):
                records, _ = walk(fake_api, child_path(sdef.name, parent["id"]), limit=2)
                got.extend({**r, sdef.parent_key: parent["id"]} for r in records)
        else:
            got, _ = walk(fake_api, sdef.path, limit=3, **sdef.params)
        assert got == expected, sdef.name
    # The dump over HTTP is the same JSONL.
    body = requests.get(fake_api.url + "/_fake/dump/endpoints", timeout=5).text
    assert json_lines(body) == fake_api.dump("endpoints")


def test_child_path_accepts_uid_and_unknown_parent_is_404(fake_api: FakeAPI) -> None:
    app = next(a for a in fake_api.dump("applications") if a.get("uid"))
    by_uid = get(fake_api, child_path("endpoints", app["uid"])).json()["data"]
    assert by_uid == get(fake_api, child_path("endpoints", app["id"])).json()["data"]
    r = get(fake_api, child_path("endpoints", "app_nope"))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert get(fake_api, "/v1/nothing-here").status_code == 404


def test_reproducible_with_same_seed() -> None:
    a, b, c = Dataset(DatasetConfig(seed=5)), Dataset(DatasetConfig(seed=5)), Dataset()
    names = [s.name for s in STREAMS]
    assert [a.dump(n) for n in names] == [b.dump(n) for n in names]
    assert [a.dump(n) for n in names] != [c.dump(n) for n in names]
    assert a.mutate(0.3, seed=2) == b.mutate(0.3, seed=2)
    assert [a.dump(n) for n in names] == [b.dump(n) for n in names]


# ---- mutations -----------------------------------------------------------------------------


def test_mutation_changes_exactly_the_reported_records(fake_api: FakeAPI) -> None:
    before = fake_api.dump_all()
    # Warm the page cache so the test also proves it is invalidated.
    walk(fake_api, "/v1/app", limit=250)
    newest = max(
        parse_ts(r[f])
        for rs in before.values()
        for r in rs
        for f in ("createdAt", "updatedAt")
        if f in r
    )
    changed = fake_api.mutate(share=0.2, seed=11)
    after = fake_api.dump_all()
    assert set(changed) == {s.name for s in STREAMS}
    for sdef in STREAMS:
        pk, rk = sdef.primary_key, sdef.replication_key
        old = {r[pk]: r for r in before[sdef.name]}
        new = {r[pk]: r for r in after[sdef.name]}
        keys = changed[sdef.name]
        assert keys and len(keys) == len(set(keys)), sdef.name
        if sdef.name == "tokens":
            assert set(new) - set(old) == set(keys)
            assert all(old[k] == new[k] for k in old)
        else:
            assert set(new) == set(old)
            assert {k for k in new if new[k] != old[k]} == set(keys), sdef.name
            for k in keys:
                diff = {f for f in set(new[k]) | set(old[k]) if new[k].get(f) != old[k].get(f)}
                assert rk in diff and len(diff) == 2, (sdef.name, diff)
        for k in keys:
            assert parse_ts(new[k][rk]) > newest
    # Some endpoints changed although their application did not.
    changed_apps = set(changed["applications"])
    ep_apps = {r["app_id"] for r in after["endpoints"] if r["id"] in set(changed["endpoints"])}
    assert ep_apps - changed_apps
    # Pages served afterwards show the new data.
    assert walk(fake_api, "/v1/app", limit=250)[0] == after["applications"]


def test_mutations_accumulate(fake_api: FakeAPI) -> None:
    first = fake_api.mutate(0.1, seed=1)
    mid = max(parse_ts(r["updatedAt"]) for r in fake_api.dump("applications"))
    second = fake_api.mutate(0.1, seed=1)
    assert first != second  # a second mutation picks its own records
    for k in second["applications"]:
        rec = next(r for r in fake_api.dump("applications") if r["id"] == k)
        assert parse_ts(rec["updatedAt"]) > mid


# ---- deleted parents -----------------------------------------------------------------------


def test_deleted_parents(fake_api: FakeAPI) -> None:
    apps = [a["id"] for a in fake_api.dump("applications")]
    gone = apps[3:5]
    n_endpoints = len(fake_api.dump("endpoints"))
    fake_api.delete_parents("applications", gone)
    assert [a["id"] for a in walk(fake_api, "/v1/app")[0]] == apps  # still listed
    for app in gone:
        for stream in ("endpoints", "integrations"):
            r = get(fake_api, child_path(stream, app))
            assert r.status_code == 404
            assert r.json()["code"] == "not_found" and r.json()["detail"]
    assert get(fake_api, child_path("endpoints", apps[0])).status_code == 200
    dumped = fake_api.dump("endpoints")
    assert len(dumped) == n_endpoints - 2 * 5
    assert not {r["app_id"] for r in dumped} & set(gone)
    src = fake_api.dump("ingest_source")[0]["id"]
    fake_api.delete_parents("ingest_source", [src])
    assert get(fake_api, child_path("ingest_source_endpoint", src)).status_code == 404
    assert all(r["src_id"] != src for r in fake_api.dump("ingest_source_endpoint"))
    with pytest.raises(KeyError):
        fake_api.delete_parents("applications", ["app_unknown"])
    changed = fake_api.mutate(1.0, seed=0)
    assert len(changed["endpoints"]) == n_endpoints - 10  # children of deleted apps untouched


# ---- faults --------------------------------------------------------------------------------


def _raw_get(api: Any, path: str, timeout: float = 5) -> requests.Response:
    return get(api, path, timeout=timeout)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_fault_kind_happens_and_is_counted(fake_api: FakeAPI, kind: str) -> None:
    page1 = get(fake_api, "/v1/app", limit=5).json() if kind == "repeated-cursor" else None
    fake_api.reset_stats()
    fake_api.set_faults(
        FaultConfig(
            retry_after="0",
            slow_seconds=0.4,
            rules=(FaultRule(kind, target="/v1/app", count=1),),
        )
    )
    try:
        r = get(
            fake_api,
            "/v1/app",
            limit=5,
            iterator=page1["iterator"] if page1 else None,
            timeout=0.15 if kind == "slow" else 5,
        )
    except requests.exceptions.RequestException as exc:
        r = None
        error: Exception | None = exc
    else:
        error = None
    normal = fake_api.dump("applications")[:5]
    if kind == "429":
        assert r is not None and r.status_code == 429 and r.headers["Retry-After"] == "0"
        assert set(r.json()) == {"code", "detail"}
    elif kind == "429-date":
        assert r is not None and r.status_code == 429
        assert parsedate_to_datetime(r.headers["Retry-After"]).tzinfo is not None
    elif kind == "429-no-retry-after":
        assert r is not None and r.status_code == 429 and "Retry-After" not in r.headers
    elif kind in ("500", "502", "503", "504"):
        assert r is not None and r.status_code == int(kind) and r.json()["code"]
    elif kind == "reset":
        assert isinstance(
            error, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
        ), error
    elif kind == "slow":
        assert isinstance(error, requests.exceptions.ReadTimeout), error
        # the fake counts a slow answer once it is sent, after the client gave up on it
        deadline = time.monotonic() + 10
        while not fake_api.stats()["faults"] and time.monotonic() < deadline:
            time.sleep(0.01)  # poll interval
    elif kind == "truncated":
        assert r is not None and r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(r.content)
        with pytest.raises(ValueError):
            json.loads(r.content)
    elif kind in ("html-200", "html-502"):
        assert r is not None and r.status_code == (200 if kind == "html-200" else 502)
        assert r.headers["Content-Type"].startswith("text/html") and b"<html>" in r.content
    else:
        assert r is not None and r.status_code == 200
        body = r.json()
        if kind == "no-data":
            assert "data" not in body
        elif kind == "data-not-list":
            assert isinstance(body["data"], dict)
        elif kind == "missing-pk":
            assert "id" not in body["data"][0] and "id" in body["data"][1]
        elif kind == "repeated-cursor":
            assert page1 is not None
            assert body["iterator"] == page1["iterator"] and body["done"] is False
        elif kind == "missing-done":
            assert "done" not in body and body["data"] == normal
        elif kind == "null-iterator-not-done":
            assert body["iterator"] is None and body["done"] is False
    stats = fake_api.stats()
    assert stats["faults"] == {kind: 1}
    # count=1: the rule is used up, the next request is normal.
    assert get(fake_api, "/v1/app", limit=5).json()["data"] == normal


def test_fault_rule_targets(fake_api: FakeAPI) -> None:
    app = fake_api.dump("applications")[0]["id"]
    fake_api.set_faults(FaultConfig(rules=(FaultRule("500", target="endpoints"),)))
    assert get(fake_api, "/v1/app").status_code == 200
    for _ in range(3):  # no count: always
        assert get(fake_api, child_path("endpoints", app)).status_code == 500
    fake_api.set_faults(
        FaultConfig(rules=(FaultRule("503", target="/v1/app/{app_id}/integration"),))
    )
    assert get(fake_api, child_path("integrations", app)).status_code == 503
    fake_api.set_faults(FaultConfig(rules=(FaultRule("429", count=2, retry_after="1"),)))
    statuses = [get(fake_api, "/v1/event-type").status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    fake_api.clear_faults()
    assert get(fake_api, child_path("endpoints", app)).status_code == 200
    with pytest.raises(ValueError):
        FaultRule("418")


def test_consecutive_fault_cap(fake_api: FakeAPI) -> None:
    fake_api.set_faults(FaultConfig(rate=1.0, kinds=("500",), max_consecutive=3))
    assert [get(fake_api, "/v1/app").status_code for _ in range(8)] == [500] * 3 + [200] + [
        500
    ] * 3 + [200]
    # With a rate of 50 %, any request succeeds within 4 attempts (3 retries).
    fake_api.set_faults(FaultConfig(rate=0.5, kinds=("500", "503", "429"), seed=3, retry_after="0"))
    worst = 0
    for limit in range(1, 121):
        for attempt in range(4):
            if get(fake_api, "/v1/app", limit=limit).status_code == 200:
                worst = max(worst, attempt)
                break
        else:
            pytest.fail(f"limit={limit} still failing after 4 attempts")
    assert worst == 3  # the cap was actually reached somewhere


def test_random_faults_rate_counted_and_reproducible(fake_api_factory: Any) -> None:
    faults = FaultConfig(
        rate=0.3, seed=42, retry_after="0", kinds=("429", "500", "502", "503", "504")
    )
    runs = []
    for _ in range(2):
        api = fake_api_factory(faults=faults)
        statuses = [get(api, "/v1/app", limit=n).status_code for n in range(1, 201)]
        stats = api.stats()
        assert stats["faults_total"] == sum(s != 200 for s in statuses)
        assert stats["total"] == 200
        runs.append(statuses)
    assert runs[0] == runs[1]
    assert 0.2 < sum(s != 200 for s in runs[0]) / 200 < 0.4
    assert fault_for(42, "GET /v1/app?limit=1", 0, 0.3, ("500",)) == fault_for(
        42, "GET /v1/app?limit=1", 0, 0.3, ("500",)
    )


def test_latency_does_not_block_other_requests(fake_api_factory: Any) -> None:
    """Requests are served side by side: while one waits out its latency, others are handled."""
    api = fake_api_factory(latency_ms=1000)
    results: list[int] = []

    def one() -> None:
        results.append(get(api, "/v1/app").status_code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6
    assert api.stats()["max_in_flight"] >= 2


# ---- stats ---------------------------------------------------------------------------------


def test_stats_per_template_and_path(fake_api: FakeAPI) -> None:
    apps = [a["id"] for a in fake_api.dump("applications")[:2]]
    get(fake_api, "/v1/app", limit=5)
    for app in apps:
        get(fake_api, child_path("endpoints", app), limit=2)
    get(fake_api, "/v1/app", limit=999)
    s = fake_api.stats()
    assert s["total"] == 4
    assert s["by_template"] == {"/v1/app": 2, "/v1/app/{app_id}/endpoint": 2}
    assert s["by_path"][child_path("endpoints", apps[0])] == 1
    assert s["by_status"] == {"200": 3, "422": 1}
    assert s["by_template_status"]["/v1/app"] == {"200": 1, "422": 1}
    assert s["records"] == 5 + 2 + 2
    requests.post(fake_api.url + "/_fake/stats/reset", timeout=5)
    assert fake_api.stats()["total"] == 0


# ---- binding, CLI -----------------------------------------------------------------------


def test_binds_loopback_only(fake_api: FakeAPI) -> None:
    assert fake_api.server._tcp.server_address[0] == "127.0.0.1"
    assert "--host" not in build_parser().format_help()
    # Reaching the port over another local address fails.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a local address
        other = probe.getsockname()[0]
    except OSError:
        other = None
    finally:
        probe.close()
    if other and not other.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((other, fake_api.port), timeout=1).close()


def test_cli_fault_rule_syntax() -> None:
    args = build_parser().parse_args(
        ["--fault-rule", "500:/v1/app", "--fault-rule", "429:*:5", "--applications", "3"]
    )
    assert args.fault_rule == [FaultRule("500", "/v1/app"), FaultRule("429", "*", 5)]
    assert args.applications == 3 and args.port == 0
