"""The fake API's deletion mutation: records leave their lists, children go with their parent."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME, child_path
from fake_api import Dataset, DatasetConfig, FakeAPI

CHILDREN = {s.name: s for s in STREAMS if s.is_child}


def _get(api: FakeAPI, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        api.url + path, headers={"Authorization": f"Bearer {api.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _served(api: FakeAPI, stream: str, parent: str | None = None) -> list[dict[str, Any]]:
    """Every record of one list as a client pages through it (limit 7)."""
    sdef = STREAMS_BY_NAME[stream]
    path = sdef.path
    if parent is not None:
        path = child_path(path, **{str(sdef.parent_key): parent})
    query = "?limit=7" + ("&include_archived=true" if stream == "event_types" else "")
    out: list[dict[str, Any]] = []
    iterator = None
    while True:
        status, body = _get(api, path + query + (f"&iterator={iterator}" if iterator else ""))
        assert status == 200, body
        out += body["data"]
        if body["done"]:
            return out
        iterator = body["iterator"]


def _keys(records: list[dict[str, Any]], stream: str) -> list[str]:
    return [r[STREAMS_BY_NAME[stream].primary_key] for r in records]


def test_deletes_a_share_of_every_stream_and_the_dump_follows(fake_api: FakeAPI) -> None:
    before = fake_api.dump_all()
    deleted = fake_api.delete_records(share=0.2, seed=3)
    after = fake_api.dump_all()
    for stream in STREAMS:
        name = stream.name
        gone = set(deleted[name])
        assert gone, f"{name}: nothing deleted"
        old = _keys(before[name], name)
        assert gone <= set(old), name
        # the dump after is the dump before without exactly the returned keys, same order
        assert _keys(after[name], name) == [k for k in old if k not in gone], name
        # unchanged survivors: deletion touches no other record
        by_key = {r[stream.primary_key]: r for r in before[name]}
        assert all(by_key[r[stream.primary_key]] == r for r in after[name]), name
    top = {s.name for s in STREAMS if not s.is_child}
    for name in top:
        n = len(before[name])
        assert len(deleted[name]) == max(1, round(0.2 * n)), name


def test_lists_serve_exactly_the_dump_after_deletions(fake_api: FakeAPI) -> None:
    fake_api.delete_records(share=0.3, seed=1)
    dump = fake_api.dump_all()
    for stream in STREAMS:
        if stream.is_child:
            continue
        assert _served(fake_api, stream.name) == dump[stream.name], stream.name
    for name, sdef in CHILDREN.items():
        served = []
        for parent in _served(fake_api, str(sdef.parent)):
            served += [
                {**r, str(sdef.parent_key): parent["id"]}
                for r in _served(fake_api, name, parent["id"])
            ]
        assert served == dump[name], name


def test_children_of_a_deleted_parent_disappear_and_their_paths_answer_404(
    fake_api: FakeAPI,
) -> None:
    before = fake_api.dump_all()
    deleted = fake_api.delete_records(share=0.25, seed=5)
    for name, sdef in CHILDREN.items():
        parent_stream = str(sdef.parent)
        gone_parents = set(deleted[parent_stream])
        assert gone_parents
        orphans = [
            r[sdef.primary_key] for r in before[name] if r[str(sdef.parent_key)] in gone_parents
        ]
        assert orphans and set(orphans) <= set(deleted[name]), name
        # and more than the orphans: children of surviving parents are deleted too
        assert set(deleted[name]) - set(orphans), name
        for parent_id in gone_parents:
            path = child_path(sdef.path, **{str(sdef.parent_key): parent_id})
            status, body = _get(fake_api, path)
            assert status == 404 and body["code"] == "not_found", (name, parent_id)


def test_deletions_are_deterministic_by_seed() -> None:
    config = DatasetConfig(seed=4, applications=12)
    first, second, other = Dataset(config), Dataset(config), Dataset(config)
    assert first.delete_records(0.2, seed=9) == second.delete_records(0.2, seed=9)
    assert first.delete_records(0.2, seed=9) == second.delete_records(0.2, seed=9)
    assert other.delete_records(0.2, seed=10) != Dataset(config).delete_records(0.2, seed=9)
    # deletions accumulate: the second call removed records the first left
    assert {s.name: first.dump(s.name) for s in STREAMS} == {
        s.name: second.dump(s.name) for s in STREAMS
    }


def test_share_bounds() -> None:
    data = Dataset(DatasetConfig(applications=3))
    assert all(keys == [] for keys in data.delete_records(0.0).values())
    with pytest.raises(ValueError, match="share"):
        data.delete_records(1.5)
    everything = data.delete_records(1.0)
    assert all(everything.values())
    assert all(data.dump(s.name) == [] for s in STREAMS)


def test_an_iterator_naming_a_deleted_record_stays_valid(fake_api: FakeAPI) -> None:
    status, page = _get(fake_api, "/v1/app?limit=5")
    assert status == 200 and not page["done"]
    last = page["data"][-1]["id"]
    # delete everything up to and including the page's last record, as if mid-run
    fake_api.delete_records(share=1.0, seed=0)
    status, body = _get(fake_api, f"/v1/app?limit=5&iterator={last}")
    assert status == 200 and body == {
        "data": [],
        "iterator": None,
        "prevIterator": None,
        "done": True,
    }


def test_parents_marked_deleted_keep_their_children_out_of_the_pool(fake_api: FakeAPI) -> None:
    apps = fake_api.dump("applications")
    marked = apps[0]["id"]
    fake_api.delete_parents("applications", [marked])
    deleted = fake_api.delete_records(share=0.5, seed=2)
    endpoints_of_marked = {
        r["id"] for r in Dataset(DatasetConfig()).dump("endpoints") if r["app_id"] == marked
    }
    # those were not in the ground truth any more: not reported as deleted by this call
    assert not endpoints_of_marked & set(deleted["endpoints"])


def test_info_counts_deletions_and_reset_undoes_them(fake_api: FakeAPI) -> None:
    original = fake_api.dump_all()
    fake_api.delete_records(0.1)
    assert fake_api.info()["deletions"] == 1
    fake_api.reset_data()
    assert fake_api.dump_all() == original
    assert fake_api.info()["deletions"] == 0
