"""Worker log output: Faust's text lines, or one JSON object per line (``log_format: json``)."""

from __future__ import annotations

import logging
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
