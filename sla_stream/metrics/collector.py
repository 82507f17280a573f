"""A scrape-time collector over the pipeline's running counts, on an injected registry."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from sla_stream.runtime.pipeline import Counts

EVENTS_TOTAL = "sla_events"
ALERTS_TOTAL = "sla_alerts"


class CountsCollector(Collector):
    """``sla_events_total`` and ``sla_alerts_total`` read from :class:`Counts` when scraped."""

    def __init__(self, counts: Counts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        events = CounterMetricFamily(
            EVENTS_TOTAL, "Input events by topic and outcome.", labels=["topic", "outcome"]
        )
        for (topic, outcome), value in sorted(self._counts.events.items()):
            events.add_metric([topic, outcome], value)
        yield events
        alerts = CounterMetricFamily(
            ALERTS_TOTAL, "Alerts emitted.", labels=["contract", "objective", "kind"]
        )
        for labels, value in sorted(self._counts.alerts.items()):
            alerts.add_metric(list(labels), value)
        yield alerts


def registry_for(counts: Counts) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(CountsCollector(counts))
    return registry
