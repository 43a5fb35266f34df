"""Every stream, across several pages, against mocked pages: exact records, exact requests."""

from __future__ import annotations

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from tests.unit.mockapi import (
    config,
    make_records,
    mock_api,
    run_tap,
    serve_empty_other_lists,
    serve_everything,
)

PAGE = 2  # small pages so every stream spans several


def _expected(api, name: str) -> list[dict]:
    definition = STREAMS_BY_NAME[name]
    if not definition.is_child:
        return api.lists[definition.path]
    parent = STREAMS_BY_NAME[definition.parent]
    expected = []
    for parent_record in api.lists[parent.path]:
        pid = parent_record[parent.primary_key]
        path = definition.path.format(**{definition.parent_key: pid})
        expected += [{**r, definition.parent_key: pid} for r in api.lists[path]]
    return expected


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("name", [s.name for s in STREAMS])
def test_records_equal_pages_and_requests_follow_pagination(name: str, concurrency: int) -> None:
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=5, sources=3)
        out = run_tap(config(page_size=PAGE, max_concurrency=concurrency))
        expected = _expected(api, name)
        assert out.records(name) == expected  # count, order, ids and every field
        assert len({r[STREAMS_BY_NAME[name].primary_key] for r in expected}) == len(expected)

        definition = STREAMS_BY_NAME[name]
        paths = (
            [definition.path]
            if not definition.is_child
            else [
                definition.path.format(
                    **{definition.parent_key: p[STREAMS_BY_NAME[definition.parent].primary_key]}
                )
                for p in api.lists[STREAMS_BY_NAME[definition.parent].path]
            ]
        )
        for path in paths:
            records = api.lists[path]
            key = definition.primary_key
            pages = max(1, -(-len(records) // PAGE))
            sent = api.requests_to(path)
            assert len(sent) == pages, f"{path}: {len(sent)} requests for {pages} pages"
            # first request has no iterator, each next one carries the previous page's last id
            assert "iterator" not in sent[0]
            for i, query in enumerate(sent[1:], start=1):
                assert query["iterator"] == [records[i * PAGE - 1][key]]
            assert all(q["limit"] == [str(PAGE)] for q in sent)
            for query in sent:
                for param, value in definition.params.items():
                    assert query[param] == [value]


def test_last_page_with_non_null_iterator_is_not_followed() -> None:
    """Exactly one request when everything fits in one page, though `iterator` is not null."""
    with mock_api() as api:
        api.serve("/v1/app", make_records("app", 3))
        serve_empty_other_lists(api)
        for i in range(3):
            api.serve(f"/v1/app/app_{i:06d}/endpoint", [])
            api.serve(f"/v1/app/app_{i:06d}/integration", [])
        out = run_tap(config())
        assert len(out.records("applications")) == 3
        assert len(api.requests_to("/v1/app")) == 1
        # an empty list is one request too: `done` is true on the first page
        assert len(api.requests_to("/v1/event-type")) == 1


def test_child_records_carry_parent_id_and_each_schema_is_sent_once() -> None:
    with mock_api() as api:
        serve_everything(api, apps=4)
        out = run_tap(config())
    assert {r["app_id"] for r in out.records("endpoints")} == {f"app_{i:06d}" for i in range(4)}
    assert {r["src_id"] for r in out.records("ingest_source_endpoint")} == {
        "src_000000",
        "src_000001",
    }
    schemas = [m["stream"] for m in out.of_type("SCHEMA")]
    assert sorted(schemas) == sorted(s.name for s in STREAMS)


def test_authorization_header_on_every_request() -> None:
    with mock_api() as api:
        serve_everything(api)
        run_tap(config())
        history = api.mocker.request_history
    assert history
    assert all(r.headers["Authorization"] == "Bearer sk_test_SECRET_4f2a9c" for r in history)
    assert all(r.headers["User-Agent"].startswith("tap-analytics/") for r in history)


def test_child_path_parameters_are_url_encoded() -> None:
    with mock_api() as api:
        api.serve(
            "/v1/app", [{"id": "app.with-dots_and/slash", "updatedAt": "2024-01-01T00:00:00Z"}]
        )
        serve_empty_other_lists(api)
        api.serve("/v1/app/app.with-dots_and%2Fslash/endpoint", make_records("ep", 1))
        api.serve("/v1/app/app.with-dots_and%2Fslash/integration", [])
        out = run_tap(config())
    assert [r["app_id"] for r in out.records("endpoints")] == ["app.with-dots_and/slash"]
