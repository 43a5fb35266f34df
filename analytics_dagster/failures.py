"""What a failed run of one environment says, and whether trying it again can help.

Every message starts with `environment '<name>'`, so a failure in Dagster's UI, logs or alerts
says which account broke, and has the key masked even if something upstream quoted it. A retry
is asked for only when waiting can help: the API or the destination was unavailable, or another
run created the same schema at the same moment. A wrong key, a bad setting or a malformed
response fails at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from dlt.common.destination.exceptions import SchemaUpdateError
from dlt.common.exceptions import TerminalException

from analytics_api.errors import (
    AnalyticsAPIError,
    AuthenticationError,
    RetryBudgetExhaustedError,
    find_error,
    wrapped_errors,
)
from analytics_api.redact import redact
from analytics_dlt.environments import Environment

MAX_MESSAGE_CHARS = 2000
ALREADY_EXISTS = ("23505", "42P06", "42P07", "42710")
"""PostgreSQL's unique_violation (two `CREATE SCHEMA IF NOT EXISTS` at once collide on
`pg_namespace_nspname_index`), duplicate_schema, duplicate_table and duplicate_object."""


def contract_error(exc: BaseException) -> AnalyticsAPIError | None:
    """The API contract's own error inside dlt's wrappers, if the failure came from the API."""
    return find_error(exc, AnalyticsAPIError)


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt later may succeed.

    The contract's errors are final except an exhausted retry budget (the API was down or
    rate-limiting through every HTTP retry). Outside the API, dlt marks final errors as
    `TerminalException` (missing credentials, a schema the destination refuses); anything else
    (a connection refused by the destination, a locked DuckDB file) is worth another attempt,
    and so is dlt's terminal `SchemaUpdateTerminalError` when it is a schema-creation race.
    """
    error = contract_error(exc)
    if error is not None:
        return isinstance(error, RetryBudgetExhaustedError)
    if is_schema_race(exc):
        return True
    return not any(isinstance(e, TerminalException) for e in wrapped_errors(exc))


def is_schema_race(exc: BaseException) -> bool:
    """dlt could not create or update the schema because the same objects appeared at that
    moment: another run (on another machine, with its own dlt folder) created them. dlt says a
    retry is then safe: it reads the destination again and applies only what is missing."""
    errors = list(_all_errors(exc))
    if not any(isinstance(e, SchemaUpdateError) for e in errors):
        return False
    try:
        from psycopg2 import errors as pg
    except ImportError:  # no PostgreSQL driver: not a PostgreSQL failure
        return False
    races = tuple(pg.lookup(code) for code in ALREADY_EXISTS)
    return any(isinstance(e, races) for e in errors)


def _all_errors(exc: BaseException) -> Iterator[BaseException]:
    """`wrapped_errors`, and what dlt's destination errors hold (`cause`, `dbapi_exception`)."""
    return wrapped_errors(exc, through=("exception", "cause", "dbapi_exception"))


def failure_message(environment: Environment, exc: BaseException, secret: str | None) -> str:
    """One line naming the environment and what went wrong; the key masked, never quoted."""
    error = contract_error(exc)
    text = str(error if error is not None else exc).strip() or type(exc).__name__
    text = redact(text, secret)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + " ..."
    if isinstance(error, AuthenticationError):
        text += f" This environment's key is read from the variable {environment.api_key_env}."
    prefix = f"environment '{environment.name}'"
    return text if text.startswith(prefix) else f"{prefix}: {text}"
