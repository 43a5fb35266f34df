"""The analytics API on Dagster: the native source's tables, one partition per environment.

    pip install -e '.[dagster]'
    export ANALYTICS_ENVIRONMENTS=environments.yml      # see analytics_dlt.environments
    dagster dev -m analytics_dagster
    dagster asset materialize -m analytics_dagster --select '*' --partition prod

Loading reads `ANALYTICS_ENVIRONMENTS` and the settings in `analytics_dagster.settings`, and
fails with a message naming the file, environment or variable to fix. API keys are only read
when an environment runs. See docs/orchestration.md.
"""

from __future__ import annotations

from analytics_dagster.definitions import build_definitions

defs = build_definitions()
