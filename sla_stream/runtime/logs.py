"""Worker log output: Faust's text lines, or one JSON object per line (``log_format: json``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

#: ``extra`` fields carried into JSON lines when a log call gives them.
FIELDS = (
    "contract",
    "objective",
    "kind",
    "subject",
    "alert_id",
    "statement_id",
    "topic",
    "partition",
    "offset",
    "reason",
)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...}``, plus any of :data:`FIELDS` the record has."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """A ``dictConfig`` for ``log_format`` (``None``: Faust's own text format)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


#: The Kafka client's loggers that repeat one line per connection attempt while a broker is gone
#: (a hundred and more a second).
KAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
    "aiokafka.producer.producer",
)


class Repeats(logging.Filter):
    """Lets a line through once per ``window`` seconds per logger and message template (the text
    before its arguments are filled in); the next one through says how many were held back."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        shown = self._seen.get(key)
        if shown is not None and now - shown[0] < self.window:
            self._seen[key] = (shown[0], shown[1] + 1)
            return False
        held = shown[1] if shown is not None else 0
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held and isinstance(record.args, tuple):
            record.msg = f"{record.msg} (and {held} more like it in the last %ds)"
            record.args = (*record.args, round(now - shown[0]) if shown else 0)
        return True


def quiet_repeats(window: float = 10.0) -> Repeats:
    """Install one :class:`Repeats` on each of :data:`KAFKA_LOGGERS`."""
    repeats = Repeats(window)
    for name in KAFKA_LOGGERS:
        logging.getLogger(name).addFilter(repeats)
    return repeats
