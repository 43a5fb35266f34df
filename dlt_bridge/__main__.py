"""`python -m dlt_bridge` is the `dlt-bridge` command."""

from dlt_bridge.cli import console_main

console_main()
