"""`dlt-bridge show`: what a pipeline's destination holds, with nothing but this package installed.

Without `--sql`: per table the rows, the live rows (not marked deleted) and the rows of the last
load, then the last loads. With `--sql QUERY`: the query's rows, tab-separated, run in the
pipeline's dataset (table names need no schema prefix).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from analytics_dlt.deletions import DELETED_AT_COLUMN
from analytics_dlt.pipeline import LoadOptions, create_pipeline
from dlt_bridge.exit_codes import EXIT_LOAD_FAILED, EXIT_OK, EXIT_USAGE

log = logging.getLogger("dlt_bridge")

LAST_LOADS = 5


def add_show_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "show", help="print the tables, row counts and last loads (or a query's rows)"
    )
    parser.add_argument("--sql", metavar="QUERY", help="run this query in the dataset instead")
    return parser


def show(options: LoadOptions, sql: str | None) -> int:
    try:
        pipeline = create_pipeline(options)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    try:
        with pipeline.sql_client() as client:
            if sql:
                _print_rows(client.execute_sql(sql) or [])
                return EXIT_OK
            _overview(pipeline, client)
    except Exception as exc:
        log.error("cannot read %s: %s", options.duckdb_file or pipeline.dataset_name, exc)
        return EXIT_LOAD_FAILED
    return EXIT_OK


def _overview(pipeline: Any, client: Any) -> None:
    schema = pipeline.default_schema if pipeline.default_schema_name else None
    if schema is None:
        print("nothing loaded yet")
        return
    loads = client.execute_sql(
        "select load_id, inserted_at from _dlt_loads where status = 0"
        f" order by load_id desc limit {LAST_LOADS}"
    )
    last = loads[0][0] if loads else None
    out = [("table", "rows", "live rows", "in last load")]
    for table in sorted(schema.data_tables(), key=lambda t: t["name"]):
        name = table["name"]
        qualified = client.make_qualified_table_name(name)
        deleted = DELETED_AT_COLUMN in table["columns"]
        live = f" where {DELETED_AT_COLUMN} is null" if deleted else ""
        total = client.execute_sql(f"select count(*) from {qualified}")
        alive = client.execute_sql(f"select count(*) from {qualified}{live}")
        recent = client.execute_sql(
            f"select count(*) from {qualified} where _dlt_load_id = %s", last
        )
        out.append((name, f"{total[0][0]:,}", f"{alive[0][0]:,}", f"{recent[0][0]:,}"))
    width = [max(len(row[i]) for row in out) for i in range(4)]
    for row in out:
        print(
            "  ".join(c.ljust(width[0]) if i == 0 else c.rjust(width[i]) for i, c in enumerate(row))
        )
    print("\nlast loads:")
    for load_id, inserted_at in loads:
        print(f"  {load_id}  {inserted_at}")


def _print_rows(rows: Any) -> None:
    for row in rows:
        sys.stdout.write("\t".join("" if v is None else str(v) for v in row) + "\n")
