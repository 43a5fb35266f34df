"""What both dlt engines share: JSON schema -> dlt columns (`hints`), deletion tracking
(`deletions`), the pipeline and its defaults (`pipeline`, `defaults`), the environments file
(`environments`) and every private dlt use (`compat`, each with a test that fails loudly).

Imported by the native source (`analytics_source`), the Singer bridge (`dlt_bridge`) and the
Dagster code location; it imports neither of them, nor singer-sdk.
"""
