"""`python -m tap_analytics` and the `tap-analytics` script: the tap's command line."""

from tap_analytics.tap import TapAnalytics


def main() -> None:
    """Run the tap's command line (singer-sdk's)."""
    TapAnalytics.cli()


if __name__ == "__main__":
    main()
