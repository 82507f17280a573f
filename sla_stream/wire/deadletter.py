"""Dead-letter records: rejected input with the reason, so nothing bad is dropped silently."""

from __future__ import annotations

import base64
from typing import Any

import orjson

#: Bytes of a rejected message's key and of its value copied into its dead-letter record.
#: Even escaped six-fold (control characters), a record stays under the producer's
#: 1 MB request limit: a record too large to send would stop the worker.
COPY_BYTES = 65_536
#: Characters of the reason's detail kept (it can quote the message).
DETAIL_CHARS = 2_048


def deadletter_record(
    reason: str,
    detail: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
) -> dict[str, Any]:
    """The dead-letter record (docs/reference/dead-letters.md); bytes not UTF-8 are carried as base64.

    A key or value longer than :data:`COPY_BYTES` is cut to that length, and the record
    says so: ``key_truncated`` / ``value_truncated`` true, with the original length in
    ``key_bytes`` / ``value_bytes`` (the message itself is still on its input topic, at
    ``offset``).
    """
    key_text, key_encoding = _text(key)
    value_text, value_encoding = _text(value)
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1] + "…"
    record: dict[str, Any] = {
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
    for name, data in (("key", key), ("value", value)):
        if data is not None and len(data) > COPY_BYTES:
            record[f"{name}_truncated"] = True
            record[f"{name}_bytes"] = len(data)
    return record


def encode_deadletter(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def _text(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, "utf-8"
    cut = len(data) > COPY_BYTES
    data = data[:COPY_BYTES]
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            # The cut split a character: text up to it.
            return data[: exc.start].decode("utf-8"), "utf-8"
        return base64.b64encode(data).decode("ascii"), "base64"
