"""The environments file: every problem named by environment and field, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_dlt.environments import (
    Environment,
    EnvironmentsError,
    environments_path,
    load_environments,
    parse_environments,
    select,
)

SECRET = "sk-live-do-not-print-0123456789"


def _doc(*entries: dict) -> dict:
    return {"environments": list(entries)}


def _env(name: str = "prod", **extra: object) -> dict:
    return {"name": name, "base_url": "https://api.example.com", "api_key_env": "K", **extra}


def test_a_file_with_two_environments_and_options(tmp_path: Path) -> None:
    path = tmp_path / "envs.yml"
    path.write_text(
        "environments:\n"
        "  - name: prod\n"
        "    base_url: https://api.example.com/\n"
        "    api_key_env: ANALYTICS_PROD_API_KEY\n"
        "    start_date: 2024-01-31\n"
        "    page_size: 100\n"
        "    backoff_factor: 1\n"
        "    deletes: soft\n"
        "  - name: staging\n"
        "    base_url: http://127.0.0.1:8080\n"
        "    api_key_env: ANALYTICS_STAGING_API_KEY\n"
        "    start_date: 2024-02-01T10:00:00Z\n",
        encoding="utf-8",
    )
    prod, staging = load_environments(path)
    assert prod.name == "prod" and prod.base_url == "https://api.example.com"
    assert prod.start_date == "2024-01-31T00:00:00+00:00"
    assert (prod.page_size, prod.backoff_factor, prod.deletes) == (100, 1.0, "soft")
    assert staging.start_date == "2024-02-01T10:00:00+00:00"
    assert staging.deletes == "off" and staging.page_size == 250
    assert prod.duckdb_file == "analytics_prod.duckdb"
    assert prod.server_dataset == "analytics_prod" and prod.pipeline_name == "analytics_prod"
    assert prod.source_options()["base_url"] == "https://api.example.com"
    assert "api_key" not in prod.source_options()


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ((_env(), _env()), "environment 'prod', field 'name': duplicate"),
        ((_env("Prod"),), "environment #1, field 'name'"),
        ((_env("eu-west"),), "field 'name'"),
        ((_env(base_url="api.example.com"),), "environment 'prod': setting 'base_url'"),
        ((_env(base_url="https://x.example.com/v1"),), "setting 'base_url': ends in the API"),
        ((_env(base_url=7),), "environment 'prod', field 'base_url': missing or not a string"),
        ((_env(api_key_env="sk live"),), "environment 'prod', field 'api_key_env'"),
        (({"name": "prod", "base_url": "https://a.example.com"},), "field 'api_key_env': missing"),
        ((_env(page_size=999),), "environment 'prod': setting 'page_size': must be >= 1"),
        ((_env(page_size="10"),), "setting 'page_size': must be an integer, got string"),
        ((_env(page_size=True),), "setting 'page_size': must be an integer, got boolean"),
        ((_env(backoff_factor=1000),), "setting 'backoff_factor': must be >= 0 and <= 300"),
        ((_env(request_timeout=0),), "setting 'request_timeout': must be > 0"),
        ((_env(deletes="purge"),), "setting 'deletes': must be one of off, soft, hard"),
        ((_env(start_date="yesterday"),), "setting 'start_date': not an ISO 8601"),
        ((_env(start_date=20240131),), "setting 'start_date': must be a string"),
        ((_env(pagesize=10),), "field 'pagesize': unknown"),
        (("prod",), "environment #1: must be a mapping"),
    ],
)
def test_each_problem_names_the_environment_and_the_field(entries: tuple, expected: str) -> None:
    with pytest.raises(EnvironmentsError) as caught:
        parse_environments(_doc(*entries))
    assert expected in str(caught.value)


def test_a_key_written_in_the_file_is_refused_and_never_quoted() -> None:
    with pytest.raises(EnvironmentsError) as caught:
        parse_environments(_doc(_env(api_key=SECRET)))
    assert "field 'api_key'" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(EnvironmentsError) as caught:
        parse_environments(_doc(_env("a", page_size=0), _env("b", deletes="x")))
    assert "environment 'a'" in str(caught.value) and "environment 'b'" in str(caught.value)


@pytest.mark.parametrize("document", [None, {}, {"environments": []}, {"environments": "prod"}])
def test_a_file_without_a_list_of_environments_is_refused(document: object) -> None:
    with pytest.raises(EnvironmentsError, match="environments"):
        parse_environments(document)


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "envs.yml"
    path.write_text("environments:\n  - name: [prod\n", encoding="utf-8")
    with pytest.raises(EnvironmentsError, match="not valid YAML near line"):
        load_environments(path)


def test_the_key_is_read_when_its_environment_runs() -> None:
    env = Environment(name="prod", base_url="https://a.example.com", api_key_env="PROD_KEY")
    assert env.api_key({"PROD_KEY": SECRET}) == SECRET
    with pytest.raises(EnvironmentsError, match="environment 'prod', field 'api_key_env'"):
        env.api_key({})
    with pytest.raises(EnvironmentsError) as caught:
        env.api_key({"PROD_KEY": SECRET + "\n"})
    assert "environment 'prod'" in str(caught.value) and SECRET not in str(caught.value)


def test_the_file_comes_from_analytics_environments(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentsError, match="ANALYTICS_ENVIRONMENTS is not set"):
        environments_path({})
    with pytest.raises(EnvironmentsError, match="no file"):
        environments_path({"ANALYTICS_ENVIRONMENTS": str(tmp_path / "missing.yml")})
    path = tmp_path / "envs.yml"
    path.write_text("environments: []\n", encoding="utf-8")
    assert environments_path({"ANALYTICS_ENVIRONMENTS": str(path)}) == path


def test_select_keeps_file_order_and_refuses_unknown_names() -> None:
    envs = parse_environments(_doc(_env("a"), _env("b"), _env("c")))
    assert [e.name for e in select(envs, [])] == ["a", "b", "c"]
    assert [e.name for e in select(envs, ["all"])] == ["a", "b", "c"]
    assert [e.name for e in select(envs, ["c", "a"])] == ["a", "c"]
    with pytest.raises(EnvironmentsError, match="unknown environment"):
        select(envs, ["z"])


def test_the_shipped_example_file_is_valid() -> None:
    """environments.example.yml, which the docs tell users to copy, passes every check."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "environments.example.yml"
    assert [env.name for env in load_environments(example)] == ["prod", "staging"]
