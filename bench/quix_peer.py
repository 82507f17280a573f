"""A peer for the worker: a Quix Streams application that reads every event of the input topics,
``orjson.loads`` it and makes one stateful update (RocksDB, with Quix's changelog topics), nothing
else: no deadlines, no alerts, no statements.

``python bench/quix_peer.py BOOTSTRAP GROUP STATE_DIR TOPIC...``, run by ``run.py`` with the
interpreter of its own environment (``make bench`` makes it: Quix pins versions of pydantic and the
Kafka client that sla-stream does not use), on the same preloaded topics as the worker, and timed
the same way (by its committed offsets). It commits as often as the worker does (every 100 ms).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
from quixstreams import Application, State


def remember(value: bytes, state: State) -> None:
    """One dict update's worth of state, per message key (the contract id)."""
    event = orjson.loads(value)
    state.set("last", event["occurred_at"])


def main(argv: list[str]) -> None:
    bootstrap, group, state_dir, *topics = argv
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=0.1,  # the worker's commit interval, so both are timed alike
        state_dir=state_dir,
        loglevel=logging.WARNING,
    )
    for name in topics:
        topic: Any = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        app.dataframe(topic).update(remember, stateful=True)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1:])
