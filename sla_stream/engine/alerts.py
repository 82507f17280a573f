"""Alerts the engine decides, and their deterministic ids."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

NEAR_BREACH = "near_breach"
BREACH = "breach"
RETRACTED = "retracted"
RECOVERED = "recovered"

SEVERITY = {NEAR_BREACH: "warning", BREACH: "critical", RETRACTED: "info", RECOVERED: "info"}

# Fixed namespace: changing it changes every alert id users have stored.
_NAMESPACE = uuid.UUID("6f1c2a54-3b8e-4d6f-9c1a-5e7b2d9f0a11")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def alert_id(
    contract_id: str,
    objective: str,
    subject_kind: str,
    subject_id: str,
    cycle: int | str,
    kind: str,
    fraction: float | None,
    revision: int = 0,
) -> str:
    """The id of an alert: the same history always yields the same id.

    ``revision`` counts earlier retractions of the same alert, so an alert that
    comes back after a retraction is not mistaken for the retracted one.
    """
    parts: tuple[str, ...] = (
        contract_id,
        objective,
        subject_kind,
        subject_id,
        str(cycle),
        kind,
        _fraction(fraction),
    )
    if revision:
        parts += (str(revision),)
    # uuid.uuid5, spelled out: the same ids, without building UUID objects on the hot path.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _fraction(fraction: float | None) -> str:
    return "" if fraction is None else repr(float(fraction))


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, in engine terms (epoch milliseconds); the wire layer renders it.

    Immutable once decided: what the engine adds later (the contract version it was measured
    against) makes a new alert, so an alert handed out is never changed behind its holder.
    """

    kind: str
    """``near_breach``, ``breach``, ``retracted`` or ``recovered``."""
    contract_id: str
    """The contract whose objective is at risk."""
    objective: str
    """The objective, e.g. ``first_response``."""
    subject_kind: str
    """``ticket``, ``queue`` or ``service``."""
    subject_id: str
    """The ticket id, queue or service name."""
    cycle: int | str
    """The clock cycle or window the alert belongs to (part of the id)."""
    target_ms: int
    """The objective's target, in open milliseconds."""
    elapsed_ms: int
    """Open milliseconds elapsed when the alert was observed."""
    deadline_ms: int | None
    """The instant elapsed time reached (or is projected to reach) the target."""
    observed_at_ms: int
    """The instant the threshold was passed."""
    zone: ZoneInfo
    """The contract's zone, in which timestamps are rendered."""
    fraction: float | None = None
    """The near-breach fraction (``None`` for other kinds)."""
    severity: str = ""
    """``warning``, ``critical``, ``info``, or a burn-rate row's severity."""
    details: dict[str, Any] = field(default_factory=dict)
    """Kind-specific details (``fraction``, ``priority``, ``retracts``, ...)."""
    revision: int = 0
    """Retractions of this alert before it (part of the id when not zero)."""
    interval_start_ms: int | None = None
    """The call interval a queue alert is about."""
    alert_id: str = ""
    """Deterministic id; computed from the fields above when left empty."""

    def __post_init__(self) -> None:
        # Derived fields, set once while the alert is built (the dataclass is frozen).
        if not self.severity:
            object.__setattr__(self, "severity", SEVERITY[self.kind])
        if not self.alert_id:
            object.__setattr__(
                self,
                "alert_id",
                alert_id(
                    self.contract_id,
                    self.objective,
                    self.subject_kind,
                    self.subject_id,
                    self.cycle,
                    self.kind,
                    self.fraction,
                    self.revision,
                ),
            )
