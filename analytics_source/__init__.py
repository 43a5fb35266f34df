"""The analytics API as a native dlt source (being moved here from dlt_bridge.native)."""
