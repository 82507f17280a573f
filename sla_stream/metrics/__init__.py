"""Prometheus metrics: names in one place, collected at scrape time from the worker's state."""
