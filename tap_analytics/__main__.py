"""`python -m tap_analytics` runs the tap's CLI."""

from tap_analytics.tap import TapAnalytics

TapAnalytics.cli()
