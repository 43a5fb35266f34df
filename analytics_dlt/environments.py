"""The environments file: several accounts of the API, each loaded into a place of its own.

`ANALYTICS_ENVIRONMENTS=<path>` names a YAML file:

    environments:
      - name: prod
        base_url: https://api.example.com
        api_key_env: ANALYTICS_PROD_API_KEY   # the variable holding this environment's key
        deletes: soft                          # optional: start_date, page_size, ...
        history: true                          # optional: <stream>_history tables

The file holds no secret: each environment names the variable its key is read from. The file is
checked as a whole before anything runs (`load_environments`); a key is read, and checked, when
its environment runs (`Environment.api_key`), so a missing key fails that environment alone.
Errors name the environment and the field, never a value. Both the `dlt-bridge` CLI and the
Dagster code location read environments through this module.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analytics_api.config import api_key_problem
from analytics_api.settings import (
    DEFAULTS,
    SETTINGS_BY_NAME,
    SOURCE,
    setting_problems,
    settings_for,
)

ENVIRONMENTS_VARIABLE = "ANALYTICS_ENVIRONMENTS"
"""The variable naming the environments file."""

DATASET_NAME = "analytics"
"""Dataset inside each environment's own DuckDB file."""

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
"""Environment names become file, dataset, pipeline and partition names: lowercase letters,
digits and `_` only, so no two names collide once a destination folds case or dashes."""

_ENV_VAR_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_REQUIRED = ("name", "base_url", "api_key_env")
OPTIONAL_FIELDS: tuple[str, ...] = tuple(
    s.name for s in settings_for(SOURCE) if s.name not in ("api_key", "base_url")
)
"""Optional settings per environment: the source's settings of the contract's table (the key
excepted: the file names its variable), with the table's types, defaults and bounds."""


class EnvironmentsError(ValueError):
    """The environments file, or one environment in it, cannot be used. Never quotes a value."""


@dataclass(frozen=True)
class Environment:
    """One account of the API: where it is, where its key is, and its optional settings."""

    name: str
    base_url: str
    api_key_env: str
    start_date: str | None = DEFAULTS["start_date"]
    page_size: int = DEFAULTS["page_size"]
    max_retries: int = DEFAULTS["max_retries"]
    backoff_factor: float = DEFAULTS["backoff_factor"]
    request_timeout: float = DEFAULTS["request_timeout"]
    max_concurrency: int = DEFAULTS["max_concurrency"]
    deletes: str = DEFAULTS["deletes"]
    history: bool = DEFAULTS["history"]

    @property
    def pipeline_name(self) -> str:
        """dlt pipeline name: its local state folder and DuckDB file are this environment's."""
        return f"analytics_{self.name}"

    @property
    def duckdb_file(self) -> str:
        """The DuckDB file of this environment, in the working directory (one writer per file)."""
        return f"analytics_{self.name}.duckdb"

    @property
    def server_dataset(self) -> str:
        """Dataset (schema) of this environment on a server destination such as PostgreSQL."""
        return f"analytics_{self.name}"

    def api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """This environment's key, from its variable; errors name the variable, never a value."""
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env)
        if value is None:
            raise EnvironmentsError(
                f"environment '{self.name}', field 'api_key_env': variable {self.api_key_env} is "
                "not set; export it with this environment's API key."
            )
        problem = api_key_problem(value, setting="api_key_env", env_hint=f"env {self.api_key_env}")
        if problem:
            raise EnvironmentsError(f"environment '{self.name}', field 'api_key_env': {problem}")
        return value

    def source_options(self) -> dict[str, Any]:
        """Keyword arguments of `analytics_source()` for this environment, the key excepted."""
        return {"base_url": self.base_url, **{n: getattr(self, n) for n in OPTIONAL_FIELDS}}


def environments_path(environ: Mapping[str, str] | None = None) -> Path:
    """The file `ANALYTICS_ENVIRONMENTS` names; raises when it is unset or not a file."""
    env = os.environ if environ is None else environ
    value = env.get(ENVIRONMENTS_VARIABLE, "").strip()
    if not value:
        raise EnvironmentsError(
            f"{ENVIRONMENTS_VARIABLE} is not set: point it at the environments file "
            "(YAML, a list under `environments:`)."
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise EnvironmentsError(f"{ENVIRONMENTS_VARIABLE}: no file at {path}.")
    return path


def load_environments(path: str | Path | None = None) -> list[Environment]:
    """Read and check the whole file (`ANALYTICS_ENVIRONMENTS` when no path is given).

    Every problem found is reported at once, one per line, each naming its environment and
    field, so a user fixes the file in one go.
    """
    file = Path(path) if path is not None else environments_path()
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvironmentsError(f"environments file {file}: cannot read it ({exc}).") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" near line {where.line + 1}" if where is not None else ""
        raise EnvironmentsError(f"environments file {file}: not valid YAML{line}.") from None
    return parse_environments(document, source=str(file))


def parse_environments(document: Any, source: str = "environments file") -> list[Environment]:
    """Check a parsed document and build its environments; raises with every problem found."""
    if not isinstance(document, dict) or not isinstance(document.get("environments"), list):
        raise EnvironmentsError(f"{source}: needs a top-level `environments:` list.")
    entries = document["environments"]
    if not entries:
        raise EnvironmentsError(f"{source}: `environments:` is empty; add at least one.")
    problems: list[str] = []
    environments: list[Environment] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        label = _label(entry, index)
        entry_problems = _entry_problems(entry, label)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in seen:
            entry_problems.append(f"{label}, field 'name': duplicate; each name must be unique.")
        if isinstance(name, str):
            seen.add(name)
        if entry_problems:
            problems.extend(entry_problems)
            continue
        environments.append(_build(entry))
    if problems:
        raise EnvironmentsError(f"{source}:\n  " + "\n  ".join(problems))
    return environments


def select(environments: list[Environment], names: list[str]) -> list[Environment]:
    """The environments named (all when `names` is empty or `all`), in file order."""
    if not names or names == ["all"]:
        return list(environments)
    known = {env.name for env in environments}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise EnvironmentsError(
            f"unknown environment(s) {', '.join(unknown)}; the file defines "
            f"{', '.join(sorted(known))}."
        )
    return [env for env in environments if env.name in names]


def _label(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and NAME_PATTERN.match(name):
        return f"environment '{name}'"
    return f"environment #{index}"


def _entry_problems(entry: Any, label: str) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{label}: must be a mapping with name, base_url and api_key_env."]
    problems: list[str] = []
    for key in _REQUIRED:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            problems.append(f"{label}, field '{key}': missing or not a string.")
    if "api_key" in entry:
        problems.append(
            f"{label}, field 'api_key': keys do not go in this file; name the variable that "
            "holds it with 'api_key_env'."
        )
    name = entry.get("name")
    if isinstance(name, str) and name and not NAME_PATTERN.match(name):
        problems.append(
            f"{label}, field 'name': use 1-40 lowercase letters, digits or '_', starting with "
            "a letter (it names files, datasets and partitions)."
        )
    variable = entry.get("api_key_env")
    if isinstance(variable, str) and variable and not _ENV_VAR_PATTERN.match(variable):
        problems.append(
            f"{label}, field 'api_key_env': not a variable name (letters, digits, '_'); it "
            "names the variable holding the key, not the key."
        )
    problems.extend(_option_problems(entry, label))
    return problems


def _option_problems(entry: dict[str, Any], label: str) -> list[str]:
    """Unknown fields, then the contract's rules for `base_url` and every optional setting."""
    known = {*_REQUIRED, "api_key", *OPTIONAL_FIELDS}
    allowed = ", ".join([*_REQUIRED, *OPTIONAL_FIELDS])
    problems = [
        f"{label}, field '{key}': unknown; known fields: {allowed}."
        for key in entry
        if key not in known
    ]
    values = {key: entry[key] for key in OPTIONAL_FIELDS if key in entry}
    if "start_date" in values:
        values["start_date"] = _iso(values["start_date"])
    url = entry.get("base_url")
    if isinstance(url, str) and url.strip():  # otherwise reported as a missing field
        values["base_url"] = url
    found = setting_problems(values, SOURCE, require=False)
    return problems + [f"{label}: {problem}" for problem in found]


def _build(entry: dict[str, Any]) -> Environment:
    options = {key: entry[key] for key in OPTIONAL_FIELDS if key in entry}
    if "start_date" in options:
        options["start_date"] = _iso(options["start_date"])
    for key, value in options.items():
        if SETTINGS_BY_NAME[key].kind == "number":
            options[key] = float(value)  # YAML reads `backoff_factor: 1` as an integer
    return Environment(
        name=entry["name"],
        base_url=entry["base_url"].strip().rstrip("/"),
        api_key_env=entry["api_key_env"],
        **options,
    )


def _iso(value: str | dt.date) -> str:
    """A start date as ISO 8601 text; a bare YAML date or naive timestamp is taken as UTC."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return aware.isoformat()
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00+00:00"
    return value
