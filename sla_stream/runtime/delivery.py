"""Knowing when what a message produced is on Kafka, and committing only then.

Faust hands table writes to a producer buffer that a background task drains,
and its ``flush`` gives up after a tenth of a second without progress, so a
write can still be on its way when offsets are committed. With exactly-once
that puts a state change in the transaction after the alerts it belongs to;
a crash in between sends those alerts twice. With at-least-once it can put
the state that says "alert sent" on Kafka before the alert itself; a crash in
between loses the alert. So every send is tracked here until the broker
has acknowledged it, and offsets are committed only after that.

Commits also wait for the message being handled to finish (``handling``):
Faust commits by itself when partitions are revoked and when it stops, and
a commit in the middle of a message would take its alerts without its state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import FutureMessage


class Deliveries:
    """Sends handed to the producer and not yet acknowledged."""

    def __init__(self) -> None:
        self._waiting: list[Awaitable[Any]] = []
        #: Held while messages are handled; commits wait for it.
        self.handling = asyncio.Lock()
        self._failed: BaseException | None = None

    def add(self, delivery: Awaitable[Any]) -> None:
        self._waiting.append(delivery)

    def fail(self, reason: BaseException) -> None:
        """Handling failed part-way: nothing may be committed any more (the worker restarts)."""
        self._failed = reason

    async def acknowledged(self) -> None:
        """Wait for every send so far; raises if one failed, or handling did (nothing may then
        be committed)."""
        if self._failed is not None:
            raise RuntimeError("a batch of messages failed part-way; not committing") from self._failed
        waiting, self._waiting = self._waiting, []
        if waiting:
            await asyncio.gather(*waiting)


class Table(faust.Table[Any, Any]):
    """A Faust table whose changelog writes are tracked in the app's ``deliveries``."""

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sent = super().send_changelog(*args, **kwargs)
        deliveries: Deliveries = self.app.deliveries  # type: ignore[attr-defined]
        deliveries.add(sent)
        return sent
