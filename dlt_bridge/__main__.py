"""`python -m dlt_bridge` is the `dlt-bridge` command."""

from dlt_bridge.cli import main

raise SystemExit(main())
