"""`dlt-bridge state --environment NAME|all`: the Singer state stored for each environment.

Reads, for each selected environment of the environments file, the state stored with the last
completed load of its `run` pipeline, in the place `run --environment` loads it (see
`dlt_bridge.environments`), and prints one JSON line per environment on stdout:
`{"environment", "pipeline", "destination", "dataset", "location", "state"}` (`state` null: no
load yet). No key is needed: only the destination is read. An environment whose destination
cannot be read gets one error line; the others are still printed, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from analytics_dlt.environments import (
    EnvironmentsError,
    environments_path,
    load_environments,
    select,
)
from dlt_bridge.environments import EXIT_USAGE, destination_for, flag_conflicts, selected_names

log = logging.getLogger("dlt_bridge")


def show_environment_states(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, out: IO[str] | None = None
) -> int:
    from analytics_dlt.pipeline import LoadOptions, source_name_for
    from dlt_bridge.state import destination_singer_state

    environ = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    try:
        if problems := flag_conflicts(args):
            raise EnvironmentsError("\n".join(problems))
        chosen = selected_names(args.environment)
        environments = select(load_environments(environments_path(environ)), chosen)
    except EnvironmentsError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    code = 0
    for env in environments:
        try:
            destination, dataset, location, pipeline = destination_for(args, env)
            source = source_name_for(LoadOptions(pipeline_name=env.pipeline_name))
            state = destination_singer_state(pipeline, source)
        except Exception as exc:  # this environment's destination: the others are still read
            text = (str(exc).strip() or type(exc).__name__)[:2000]
            log.error("environment '%s': could not read its stored state: %s", env.name, text)
            code = 1
            continue
        line: dict[str, Any] = {
            "environment": env.name,
            "pipeline": env.pipeline_name,
            "destination": destination,
            "dataset": dataset,
            "location": location,
            "state": state,
        }
        out.write(json.dumps(line) + "\n")
        out.flush()
    return code
