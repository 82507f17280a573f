"""The floor of the framework the worker is built on: a Faust agent that reads every event of the
input topics and ``orjson.loads`` it, nothing else (no tables, no outputs, no transactions).

``python bench/faust_floor.py [--tuned] BOOTSTRAP APP_ID DATADIR TOPIC...``: run by ``run.py`` like the
worker, on the same preloaded topics, and timed the same way (by its committed offsets). Its rate
against the plain consumer's shows what Faust's per-message path costs before sla-stream does
anything. ``--tuned``: with Faust's settings for bulk reading raised as far as they help (up to
5,000 records a poll, 20,000 buffered per stream), the strongest plain Faust agent to compare with.
"""

from __future__ import annotations

import sys

import faust
import orjson

_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def main(argv: list[str]) -> None:
    tuned = argv[:1] == ["--tuned"]
    bootstrap, app_id, datadir, *topics = argv[1:] if tuned else argv
    bulk: dict[str, int] = (
        {"broker_max_poll_records": 5_000, "stream_buffer_maxsize": 20_000} if tuned else {}
    )
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=datadir,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.1,  # the worker's commit interval, so both are timed alike
        topic_disable_leader=True,
        web_enabled=False,
        autodiscover=False,
        loghandlers=[],
        **bulk,
    )
    source = app.topic(*topics, **_RAW)

    @app.agent(source, name="read")
    async def read(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            orjson.loads(event.message.value)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # Faust's spinner turns on debug logging (see sla_stream/runtime/worker.py)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
