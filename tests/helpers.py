"""Test helpers: contracts from YAML text, instants, and ticket events in a few words."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sla_stream.contracts import load_dir
from sla_stream.engine.events import TicketEvent
from sla_stream.engine.model import Contract
from sla_stream.engine.time import format_ts, to_ms

REPO = Path(__file__).resolve().parent.parent

#: A contract with only a P1 first response target: ``ONE_TARGET.format(id="a", target="20s")``.
ONE_TARGET = """
version: 1
id: {id}
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {{targets: {{P1: {target}}}}}
"""


def contracts_from(tmp_path: Path, **files: str) -> dict[str, Contract]:
    """Write ``name=yaml`` pairs as contract files and load the directory."""
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return load_dir(tmp_path)


def ms(text: str) -> int:
    """Epoch ms of an RFC 3339 time."""
    return to_ms(datetime.fromisoformat(text))


class Events:
    """Makes ticket events with fresh ids: ``ev.created("T-1", "P1", at="...")``."""

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        self.count = 0

    def make(self, type_: str, ticket_id: str, at: str, **fields: Any) -> TicketEvent:
        self.count += 1
        return TicketEvent(
            event_id=f"e{self.count}",
            type=type_,
            contract_id=self.contract_id,
            at=ms(at),
            ticket_id=ticket_id,
            **fields,
        )

    def created(self, ticket_id: str, priority: str, at: str, status: str | None = None) -> TicketEvent:
        return self.make("ticket.created", ticket_id, at, priority=priority, status=status)

    def agent(self, ticket_id: str, at: str) -> TicketEvent:
        return self.make("ticket.agent_replied", ticket_id, at)

    def customer(self, ticket_id: str, at: str) -> TicketEvent:
        return self.make("ticket.customer_replied", ticket_id, at)

    def status(self, ticket_id: str, status: str, at: str) -> TicketEvent:
        return self.make("ticket.status_changed", ticket_id, at, status=status)

    def priority(self, ticket_id: str, priority: str, at: str) -> TicketEvent:
        return self.make("ticket.priority_changed", ticket_id, at, priority=priority)


def closing_events(contracts: dict[str, Contract], at: int) -> list[dict[str, Any]]:
    """One event per contract and input topic at ``at``, so every clock (one per topic
    partition) moves to the same end time."""
    occurred = format_ts(at, UTC)
    events: list[dict[str, Any]] = []
    for contract_id in sorted(contracts):
        contract = contracts[contract_id]
        base = {"contract_id": contract_id, "occurred_at": occurred}
        if contract.tickets:
            ticket = {
                "type": "ticket.created",
                "ticket_id": "END",
                "priority": contract.tickets.priorities[-1],
            }
            events.append({**base, "event_id": f"end-t-{contract_id}", **ticket})
        if contract.calls:
            call = {"type": "call.queued", "call_id": "END", "queue": "end"}
            events.append({**base, "event_id": f"end-c-{contract_id}", **call})
        if contract.requests:
            batch = {"type": "request.batch", "service": "end", "total": 0, "good": 0}
            events.append({**base, "event_id": f"end-r-{contract_id}", **batch})
        if contract.items:
            item = {"type": f"{contract.items.kind}.end", contract.items.key: "END"}
            events.append({**base, "event_id": f"end-i-{contract_id}", **item})
    return events
