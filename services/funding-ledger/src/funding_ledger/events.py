"""The events the funding ledger publishes on ``ti.grants``; ``data`` is the whole grant."""

from __future__ import annotations

from ti_shared.events import TOPIC_GRANTS, EventSpec, event_type

from funding_ledger.domain import Change
from funding_ledger.schemas import Grant

EVENT_OF_CHANGE: dict[Change, EventSpec] = {
    "committed": EventSpec(event_type("grant", "committed"), TOPIC_GRANTS, Grant, "A grant was created (committed)."),
    "amended": EventSpec(
        event_type("grant", "amended"),
        TOPIC_GRANTS,
        Grant,
        "A grant changed while committed (amount, investment, any field) or was re-activated after a cancellation.",
    ),
    "cancelled": EventSpec(
        event_type("grant", "cancelled"),
        TOPIC_GRANTS,
        Grant,
        "A grant was cancelled: its remaining commitment is released.",
    ),
    "disbursed": EventSpec(
        event_type("grant", "disbursed"), TOPIC_GRANTS, Grant, "A payment was recorded on a grant (disbursed_eur grew)."
    ),
}

EVENTS: tuple[EventSpec, ...] = tuple(EVENT_OF_CHANGE.values())
