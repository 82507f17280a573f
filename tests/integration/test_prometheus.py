"""A real Prometheus (Debian's ``prometheus``) scraping a real worker: the metrics match what the
events imply, the rules load, and every expression of the rules and the dashboard returns data."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import yaml
from broker_io import input_records, produce_all, read_topic
from helpers import REPO

from sla_stream.contracts import load_dir
from sla_stream.local_kafka import free_port
from sla_stream.local_prometheus import LocalPrometheus
from sla_stream.simulate import Traffic, generate

sys.path.insert(0, str(REPO / "deploy" / "grafana"))
import build_dashboard

pytestmark = pytest.mark.integration

CONTRACTS = REPO / "examples" / "contracts"
RULES = REPO / "deploy" / "prometheus" / "rules" / "sla-stream.yml"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Starts ``prometheus`` scraping a target every second, with the repository's rules."""
    started: list[LocalPrometheus] = []

    def start(target: str) -> str:
        server = LocalPrometheus(tmp_path, [target], port=free_port(), interval="1s", rule_files=[str(RULES)])
        started.append(server)
        return server.start().url

    yield start
    for server in started:
        server.stop()


def query(url: str, expr: str) -> list[dict]:
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(address, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def scrape(text: str, name: str, **labels: str) -> float | None:
    """A sample's value from the worker's exposition text."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_a_real_prometheus_scrapes_the_worker_its_logs_are_json_and_every_rule_and_panel_has_data(
    worker, prometheus
) -> None:
    contracts = load_dir(CONTRACTS)
    now = int(time.time() * 1000)
    traffic = Traffic(rate=0.5, call_rate=1, request_rate=5, incident_rate=0.5, seed=3)
    events = []
    for at, event in generate(contracts, now - 4 * 60_000, traffic):
        if at > now:
            break
        events.append(event)

    # Bound to another loopback address (SLA_STREAM_WEB_HOST), which Prometheus scrapes.
    live = worker(CONTRACTS, partitions=2, log_format="json", web_host="127.0.0.2").start()
    other = live.web.replace("127.0.0.2", "127.0.0.1")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(other + "/metrics", timeout=5)
    records = input_records(live.topics, events)
    per_topic = Counter(topic for topic, _, _ in records)
    produce_all(live.bootstrap, records)
    url = prometheus(live.web.removeprefix("http://"))

    # The worker's own /metrics: every event counted under its topic, every alert under its labels.
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = live.get("/metrics")[1].decode()
        counted = {topic: scrape(text, "sla_events_total", topic=topic, outcome="ok") for topic in per_topic}
        if all(counted[topic] == per_topic[topic] for topic in per_topic):
            break
        time.sleep(1)
    assert counted == {topic: float(n) for topic, n in per_topic.items()}, text
    alerts = read_topic(live.bootstrap, live.topics["alerts"], until=lambda found: False, timeout=3, settle=0)
    text = live.get("/metrics")[1].decode()
    emitted = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("sla_alerts_total{")
    )
    assert emitted >= len(alerts) > 0
    assert scrape(text, "sla_open_clocks", contract="demo-fast", objective="resolution") is not None

    # JSON logs: every line one object; alert lines carry contract, objective and kind as fields.
    lines = [orjson.loads(line) for line in live.this_run().splitlines() if line.strip()]
    alert_lines = [line for line in lines if line["logger"] == "sla_stream.alerts"]
    assert alert_lines and all(
        {"contract", "objective", "kind", "alert_id"} <= set(line) for line in alert_lines
    )
    assert {line["alert_id"] for line in alert_lines} >= {a["alert_id"] for a in alerts}

    # Prometheus: scraped, rules evaluated; every recording rule and every series an alert rule
    # reads has data, and so does every panel of the dashboard.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not query(url, 'up{job="sla-stream"} == 1'):
        time.sleep(1)
    time.sleep(6)  # a few scrapes and rule evaluations, so rates have two samples
    groups = yaml.safe_load(RULES.read_text())["groups"]
    missing = []
    for rule in (rule for group in groups for rule in group["rules"]):
        if "record" in rule:
            if not query(url, rule["record"]):
                missing.append(rule["record"])
            continue
        for name in sorted(set(re.findall(r"\b(sla[_:][a-z0-9_:]+|up)\b", rule["expr"]))):
            if not query(url, name):
                missing.append(f"{rule['alert']}: {name}")
    for expr in build_dashboard.expressions():
        if not query(url, expr):
            missing.append(f"dashboard: {expr}")
    assert not missing, missing
