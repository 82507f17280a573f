"""What the engine books in the period ledgers, each outcome once.

The sources decide outcomes (a ticket's clock met or breached, a call answered in time, a
minute's requests); :class:`Books` moves them to the contract's
:class:`~sla_stream.engine.ledger.Ledger`, where penalty statements are counted from, and
makes sure that processing the same messages again (the worker after a stop, under
at-least-once) never counts anything twice.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from sla_stream.engine.ledger import Ledger
from sla_stream.engine.model import Contract
from sla_stream.engine.tracked import Tracked


class Books:
    """The period ledgers of one engine's contracts, by contract id (a dict in replay, a
    changelog table in the worker)."""

    def __init__(self, ledgers: MutableMapping[str, Ledger] | None = None) -> None:
        self.ledgers: MutableMapping[str, Ledger] = {} if ledgers is None else ledgers
        #: How many times a ledger got a period it did not have (the closer watches it).
        self.opened = 0
        #: Count each booking once however often messages are processed again (the worker under
        #: at-least-once; see ``counting``); ``source`` is the input message being applied.
        self.once = False
        self.source: tuple[str, int] = ("", -1)
        #: With ``once``: how far the stored state is (the input position and clock it was last
        #: written at in full); set by the worker after each write.
        self.epoch: tuple[int, int] = (-1, -1)

    def ledger(self, contract_id: str) -> Ledger:
        return self.ledgers.get(contract_id) or Ledger()

    def counting(self, ledger: Ledger, due: tuple[int, str, str] | None = None) -> bool:
        """Whether what is being booked is still to be counted in ``ledger`` (and note that it is).

        Under at-least-once a worker stopped after writing a ledger but before the tickets,
        calls or services it counted processes messages again. What a message books itself
        is recognised by the message's offset. A breach that fell due (``due``: when, ticket,
        objective) can fall due again only if it fell due since the state was last written in
        full (``epoch``), so the ledger keeps those. Not a watermark: a late event can make a
        breach fall due at a time before one already counted.
        """
        if not self.once:
            return True
        if ledger.since != self.epoch:
            ledger.since, ledger.recent = self.epoch, set()
        if due is not None:
            if due in ledger.recent:
                return False
            ledger.recent.add(due)
            return True
        topic, offset = self.source
        if ledger.counted.get(topic, -1) > offset:
            return False
        ledger.counted[topic] = offset + 1
        return True

    def keep(self, contract_id: str, ledger: Ledger, periods: int) -> None:
        """Store a ledger just counted in, which had ``periods`` periods before."""
        self.ledgers[contract_id] = ledger
        if len(ledger.periods) != periods:
            self.opened += 1

    def book(self, contract: Contract, thing: Tracked, due: tuple[int, str, str] | None = None) -> None:
        """Move the outcomes a ticket or item decided or took back to the period ledger; ``due``
        when a breach fell due, rather than a message deciding them."""
        if not thing.booked:
            return
        ledger = self.ledger(contract.id)
        if not self.counting(ledger, due):
            thing.booked.clear()
            return
        periods = len(ledger.periods)
        net: dict[tuple[str, str], list[int]] = {}
        for name, met, at, sign in thing.booked:
            counts = net.setdefault((ledger.period(contract.zone, at), name), [0, 0])
            counts[0] += sign * met
            counts[1] += sign
        thing.booked.clear()
        changed = [(where, counts) for where, counts in net.items() if counts != [0, 0]]
        for (period, name), counts in changed:
            ledger.add(period, name, counts)
        if changed:
            self.keep(contract.id, ledger, periods)
