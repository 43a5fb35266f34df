"""tap-analytics: a Singer tap for the analytics API."""
