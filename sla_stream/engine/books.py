"""What the engine books in the period ledgers, each outcome once.

The sources decide outcomes (a ticket's clock met or breached, a call answered in time, a
minute's requests); :class:`Books` moves them to the contract's
:class:`~sla_stream.engine.ledger.Ledger`, where penalty statements are counted from, and
makes sure that processing the same messages again (the worker after a stop, under
at-least-once) never counts anything twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping

from sla_stream.engine.ledger import Ledger, copied
from sla_stream.engine.model import Contract
from sla_stream.engine.tracked import Tracked, bookings


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
        #: With ``once``: how many times the worker has written the state (see ``wrote``).
        self.writes = 0

    def ledger(self, contract_id: str) -> Ledger:
        return self.ledgers.get(contract_id) or Ledger()

    def wrote(self) -> None:
        """The worker has written every change so far to the state (ledgers first, then the
        tickets, items, call centres and services they count)."""
        self.writes += 1

    def counting(self, ledger: Ledger) -> bool:
        """Whether what the message being applied (``source``) books is still to be counted in
        ``ledger`` (and note that it is): under at-least-once a worker stopped after writing a
        ledger but before the call centres or services it counted processes messages again,
        recognised by their offsets."""
        if not self.once:
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

    def book(self, contract: Contract, thing_id: str, thing: Tracked) -> None:
        """Move the outcomes a ticket or item decided or took back to the period ledger.

        A thing books the difference between its outcomes before and after a change. Under
        at-least-once (``once``) that is not enough: a worker stopped after writing a ledger
        but before the tickets it counted starts again from older tickets, and one of them,
        decided again (by the messages processed again, a breach falling due again, or a late
        event never seen before), would book against outcomes the ledger has already moved
        past. So the ledger keeps a view of each thing it booked, as the thing had its outcomes,
        and a thing with a view books the difference to the view instead. A view goes once the
        thing itself has been written after it (the worker writes ledgers first, and a stop
        keeps a prefix of the writes); one read back from the state stays only if the thing as
        stored is older than it (``confirm``).
        """
        if not thing.booked:
            return
        ledger = self.ledger(contract.id)
        periods = len(ledger.periods)
        net: dict[tuple[str, str], list[int]] = {}
        view = self._view(ledger, thing_id) if self.once else None
        if view is None:
            changes: list[tuple[str, int, int, int]] = thing.booked
        else:
            changes = [*bookings(view, -1), *bookings(thing.outcomes, 1)]
        for name, met, at, sign in changes:
            counts = net.setdefault((ledger.period(contract.zone, at), name), [0, 0])
            counts[0] += sign * met
            counts[1] += sign
        thing.booked.clear()
        if self.once:
            ledger.views[thing_id] = copied(thing.outcomes)
            ledger.made[thing_id] = self.writes
        changed = [(where, counts) for where, counts in net.items() if counts != [0, 0]]
        for (period, name), counts in changed:
            ledger.add(period, name, counts)
        if changed or self.once:
            self.keep(contract.id, ledger, periods)

    def confirm(self, counted: Callable[[str, str, Mapping[str, list[list[int]]]], bool]) -> None:
        """Drop the views read back from the state whose thing was stored after them
        (``counted(contract_id, thing_id, view)``: it has the outcomes the view holds, or it has
        left the state since): only a thing stored older than its ledger needs its view. Called
        when the state is read back (a restart, a rebalance, a contract reload), so views do not
        pile up across them."""
        for contract_id, ledger in list(self.ledgers.items()):
            for thing_id, view in list(ledger.views.items()):
                if thing_id not in ledger.made and counted(contract_id, thing_id, view):
                    del ledger.views[thing_id]

    def _view(self, ledger: Ledger, thing_id: str) -> dict[str, list[list[int]]] | None:
        """The view the ledger keeps of a thing, after forgetting the views of things written since."""
        if ledger.pruned != self.writes:
            views, made = ledger.views, ledger.made
            for thing in [t for t, n in made.items() if n < self.writes]:
                del views[thing], made[thing]
            ledger.pruned = self.writes
        return ledger.views.get(thing_id)
