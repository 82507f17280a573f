"""Dead-letter records: rejected input with the reason, so nothing bad is dropped silently."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def deadletter_record(
    reason: str,
    detail: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
) -> dict[str, Any]:
    """The SPEC's dead-letter record; bytes that are not UTF-8 are carried as base64."""
    key_text, key_encoding = _text(key)
    value_text, value_encoding = _text(value)
    return {
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key_text,
        "value": value_text,
        "key_encoding": key_encoding,
        "value_encoding": value_encoding,
    }


def encode_deadletter(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def _text(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
