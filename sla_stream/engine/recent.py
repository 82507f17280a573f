"""The ids of the ticket and item events applied within the allowed lateness, per contract: a
repeat of one, whichever ticket or item it names, is a duplicate (docs/reference/events.md#duplicates)."""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Per contract: when each event applied lately occurred, by id, and the ids in the order
    applied, to forget them once behind the lateness (an id that came late waits for those
    before it: :meth:`seen` callers check the time)."""

    def __init__(self) -> None:
        self._contracts: dict[str, tuple[dict[str, int], deque[str]]] = {}

    def seen(self, contract_id: str, event_id: str) -> int | None:
        """When the event with this id occurred, if one was applied lately."""
        found = self._contracts.get(contract_id)
        return None if found is None else found[0].get(event_id)

    def remember(self, contract_id: str, event_id: str, at: int) -> None:
        """Note an event applied."""
        found = self._contracts.get(contract_id)
        if found is None:
            found = self._contracts[contract_id] = ({}, deque())
        times, order = found
        if times.get(event_id, at - 1) < at:
            if event_id not in times:
                order.append(event_id)
            times[event_id] = at

    def forget_before(self, horizon: int, contract_id: str | None = None) -> None:
        """Forget the ids of events before ``horizon`` (the lateness rejects them anyway): of one
        contract, or of all."""
        for cid in list(self._contracts) if contract_id is None else [contract_id]:
            found = self._contracts.get(cid)
            if found is None:
                continue
            times, order = found
            while order and times[order[0]] < horizon:
                del times[order.popleft()]
