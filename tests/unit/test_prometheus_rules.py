"""The Prometheus configuration and rules in deploy/prometheus, checked and unit-tested by promtool
(Debian's ``prometheus`` package; the test fails, never skips, without it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from helpers import REPO

DEPLOY = REPO / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_rules_are_valid():
    assert "SUCCESS" in promtool("check", "rules", *map(str, sorted((DEPLOY / "rules").glob("*.yml"))))


def test_the_rule_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", *map(str, sorted((DEPLOY / "tests").glob("*.yml"))))


def test_the_scrape_configuration_is_valid(tmp_path: Path):
    # The compose file mounts the rules at /etc/prometheus/rules; point at the repository's instead.
    text = (DEPLOY / "prometheus.yml").read_text()
    assert "/etc/prometheus/rules/*.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/*.yml", str(DEPLOY / "rules" / "*.yml")))
    assert "SUCCESS" in promtool("check", "config", str(config))


def test_every_alert_has_a_severity_and_a_summary():
    groups = yaml.safe_load((DEPLOY / "rules" / "sla-stream.yml").read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert alerts
    for rule in alerts:
        assert rule["labels"]["severity"] in {"page", "critical", "warning", "ticket", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
