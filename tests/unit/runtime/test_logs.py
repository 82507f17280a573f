"""JSON log lines: one object per line, alert fields as keys."""

from __future__ import annotations

import logging
import sys

import orjson

from sla_stream.runtime.logs import JsonFormatter, logging_config


def test_a_json_line_carries_the_alert_fields_and_the_exception():
    record = logging.LogRecord("sla_stream.alerts", logging.INFO, __file__, 1, "breach %s", ("acme",), None)
    record.contract, record.objective, record.kind = "acme", "first_response", "breach"
    line = orjson.loads(JsonFormatter().format(record))
    assert (
        line["message"] == "breach acme" and line["level"] == "info" and line["logger"] == "sla_stream.alerts"
    )
    assert (line["contract"], line["objective"], line["kind"]) == ("acme", "first_response", "breach")
    assert line["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("sla_stream", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in orjson.loads(JsonFormatter().format(failed))["exception"]


def test_text_keeps_fausts_format_and_json_configures_the_root_logger():
    assert logging_config("text", "info") is None
    config = logging_config("json", "warning")
    assert config is not None and config["root"]["level"] == "WARNING"


def test_a_kafka_line_repeated_while_the_broker_is_gone_is_shown_once_per_window_with_a_count():
    from sla_stream.runtime.logs import Repeats

    now = [0.0]
    repeats = Repeats(window=10, clock=lambda: now[0])
    shown: list[str] = []

    def log(msg: str, *args: object, name: str = "aiokafka") -> None:
        record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
        if repeats.filter(record):
            shown.append(record.getMessage())

    for step in range(300):  # 30 s of attempts, ten a second, to two nodes
        now[0] = step / 10
        log("Unable connect to node with id %s: %s", step % 2, "refused")
    log("Unable to update metadata from %s", [1])
    log("Unable connect to node with id %s: %s", 1, "refused", name="aiokafka.conn")
    assert shown == [
        "Unable connect to node with id 0: refused",
        "Unable connect to node with id 0: refused (and 99 more like it in the last 10s)",
        "Unable connect to node with id 0: refused (and 99 more like it in the last 10s)",
        "Unable to update metadata from [1]",
        "Unable connect to node with id 1: refused",
    ]
