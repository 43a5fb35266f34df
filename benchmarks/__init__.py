"""Benchmarks for tap-analytics, the dlt bridge and the native dlt source (issue 6).

`make bench` runs `python -m benchmarks.run`: it starts the local fake API in its own process,
runs the baselines and our tools interleaved, checks every output against the fake's dump and
prints a table with a PASS/FAIL line per target. See BENCHMARKS.md for the latest numbers.

Modules:

* `benchmarks.measure`: runs a command (or a pipeline) in a small launcher process that
  reports wall time and each child's own peak RSS (`os.wait4`); output checks; statistics.
* `benchmarks.baselines`: the bare `requests` + `json` loop (sequential and threaded) and a
  plain dlt `rest_api_source` baseline, each runnable as its own process.
* `benchmarks.run`: the scenarios, the table and the targets.
"""
