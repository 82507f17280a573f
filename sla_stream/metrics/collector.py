"""Prometheus metrics on an injected registry: counters and state gauges read at scrape time
from the pipeline, and the two histograms observed as events and alerts pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from sla_stream.engine import gauges
from sla_stream.engine.alerts import Alert
from sla_stream.metrics import conventions as m
from sla_stream.runtime.pipeline import Pipeline, wall_ms
from sla_stream.runtime.reload import ContractSource


class PipelineCollector(Collector):
    """Everything read from the pipeline when scraped: running counts and engine state."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self._pipeline.counts
        events = CounterMetricFamily(
            m.EVENTS, "Input events by topic and outcome.", labels=[m.TOPIC, m.OUTCOME]
        )
        for (topic, outcome), value in sorted(counts.events.items()):
            events.add_metric([topic, outcome], value)
        yield events
        alerts = CounterMetricFamily(m.ALERTS, "Alerts emitted.", labels=[m.CONTRACT, m.OBJECTIVE, m.KIND])
        for triple, value in sorted(counts.alerts.items()):
            alerts.add_metric(list(triple), value)
        yield alerts
        statements = CounterMetricFamily(m.STATEMENTS, "Penalty statements sent.", labels=[m.CONTRACT])
        for contract, value in sorted(counts.statements.items()):
            statements.add_metric([contract], value)
        yield statements
        yield from state_families(gauges.read(list(self._pipeline.engines.values())))
        lag = GaugeMetricFamily(
            m.CONSUMER_LAG, "Input messages in Kafka not yet applied.", labels=[m.TOPIC, m.PARTITION]
        )
        highwater = self._pipeline.highwater
        if highwater is not None:
            for (topic, partition), done in sorted(self._pipeline.processed.items()):
                mark = highwater(topic, partition)
                if mark is not None:
                    lag.add_metric([topic, str(partition)], max(0, mark - done))
        yield lag


def state_families(state: gauges.Gauges) -> Iterator[GaugeMetricFamily]:
    """The state gauges, one family each (empty families included, so they are known)."""
    by_objective = [m.CONTRACT, m.OBJECTIVE]
    for name, doc, values in (
        (
            m.COMPLIANCE,
            "Attained so far: clocks met and calls answered in time this month; good requests in the window.",
            state.compliance,
        ),
        (m.ERROR_BUDGET, "Share of the error budget left (below 0 when overspent).", state.budget),
        (
            m.NEXT_DEADLINE,
            "Seconds until the nearest deadline of a running ticket or item clock.",
            state.next_deadline,
        ),
    ):
        family = GaugeMetricFamily(name, doc, labels=by_objective)
        for labels, value in sorted(values.items()):
            family.add_metric(list(labels), value)
        yield family
    credit = GaugeMetricFamily(
        m.PENALTY_CREDIT,
        "Share of the monthly fee the current month would credit if it closed now.",
        labels=[m.CONTRACT],
    )
    for contract, value in sorted(state.credit.items()):
        credit.add_metric([contract], value)
    yield credit
    burn = GaugeMetricFamily(
        m.BURN_RATE, "Error-budget burn rate over a window.", labels=[*by_objective, m.WINDOW]
    )
    for triple, value in sorted(state.burn.items()):
        burn.add_metric(list(triple), value)
    yield burn
    clocks = GaugeMetricFamily(
        m.OPEN_CLOCKS, "Open ticket and item clocks by state.", labels=[*by_objective, m.STATE]
    )
    for (contract, objective, clock_state), count in sorted(state.open_clocks.items()):
        clocks.add_metric([contract, objective, clock_state], count)
    yield clocks
    level = GaugeMetricFamily(
        m.CALL_SERVICE_LEVEL,
        "Service level of the current call interval, waiting calls past answer_within counted as missed.",
        labels=[m.CONTRACT, m.QUEUE],
    )
    kept: dict[str, int] = {}
    dropped = 0
    for (contract, queue), value in sorted(state.call_level.items()):
        kept[contract] = kept.get(contract, 0) + 1
        if kept[contract] > m.MAX_QUEUES_PER_CONTRACT:
            dropped += 1
            continue
        level.add_metric([contract, queue], value)
    yield level
    yield GaugeMetricFamily(
        m.SERIES_DROPPED, "Label sets left out of this scrape by the per-contract queue limit.", value=dropped
    )


class ContractsCollector(Collector):
    """The contracts in use and how their reloads went."""

    def __init__(self, source: ContractSource, clock: Callable[[], int] = wall_ms) -> None:
        self._source = source
        self._clock = clock

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        source = self._source
        yield GaugeMetricFamily(m.CONTRACTS, "Contracts in use.", value=len(source.contracts))
        info = GaugeMetricFamily(
            m.CONTRACT_INFO,
            "1 for each contract in use, with a digest of its file (and of the files it extends)"
            " and the version of its terms in force now.",
            labels=[m.CONTRACT, m.DIGEST, m.VERSION],
        )
        now = self._clock()
        for contract_id, digest in sorted(source.digests.items()):
            contract = source.contracts.get(contract_id)
            if contract is not None:
                info.add_metric([contract_id, digest, contract.at(now).version], 1)
        yield info
        reloads = CounterMetricFamily(m.RELOADS, "Contract reloads by outcome.", labels=[m.OUTCOME])
        for outcome, count in sorted(source.reloads.items()):
            reloads.add_metric([outcome], count)
        yield reloads
        yield GaugeMetricFamily(
            m.RELOAD_FAILING,
            "1 while the contract files do not load (the last contracts that loaded stay in use).",
            value=int(source.error is not None),
        )


class Observations:
    """The histograms, fed by the pipeline's hooks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            m.EVENT_LAG,
            "Processing time minus event time.",
            labelnames=[m.TOPIC],
            buckets=m.LAG_BUCKETS,
            registry=registry,
        )
        self.delay = Histogram(
            m.ALERT_DELAY,
            "Emission time minus the deadline the alert reports.",
            labelnames=[m.KIND],
            buckets=m.DELAY_BUCKETS,
            registry=registry,
        )
        self._lag_of: dict[str, Histogram] = {}
        """The lag histogram's child per topic (``labels`` costs more than the observation)."""

    def event(self, topic: str, event_ms: int, now_ms: int) -> None:
        lag = self._lag_of.get(topic)
        if lag is None:
            lag = self._lag_of[topic] = self.lag.labels(topic)
        lag.observe(max(0, now_ms - event_ms) / 1000)

    def alert(self, alert: Alert, now_ms: int) -> None:
        if alert.deadline_ms is not None and alert.kind in ("near_breach", "breach"):
            reported = alert.deadline_ms if alert.kind == "breach" else alert.observed_at_ms
            self.delay.labels(alert.kind).observe(max(0, now_ms - reported) / 1000)


def registry_for(pipeline: Pipeline, source: ContractSource | None = None) -> CollectorRegistry:
    """A fresh registry with every metric of ``pipeline`` (and of its contracts' ``source``), its
    hooks connected."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(pipeline))
    if source is not None:
        registry.register(ContractsCollector(source, pipeline.clock))
    observations = Observations(registry)
    pipeline.on_alert = observations.alert
    pipeline.on_event_time = observations.event
    return registry
