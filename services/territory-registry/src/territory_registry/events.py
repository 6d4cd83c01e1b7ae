"""The events the registry publishes on ``ti.territories``; ``data`` is the whole territory."""

from __future__ import annotations

from ti_shared.events import TOPIC_TERRITORIES, EventSpec, event_type

from territory_registry.schemas import Change, Territory

TERRITORY_REGISTERED = EventSpec(
    type=event_type("territory", "registered"),
    topic=TOPIC_TERRITORIES,
    data_model=Territory,
    description="A territory was registered (version 1); data is the territory as GET returns it.",
)
TERRITORY_UPDATED = EventSpec(
    type=event_type("territory", "updated"),
    topic=TOPIC_TERRITORIES,
    data_model=Territory,
    description="A territory changed (a re-activation included); data is its whole state after the change.",
)
TERRITORY_WITHDRAWN = EventSpec(
    type=event_type("territory", "withdrawn"),
    topic=TOPIC_TERRITORIES,
    data_model=Territory,
    description="A territory's status became withdrawn; data is its whole state after the change.",
)

EVENTS: tuple[EventSpec, ...] = (TERRITORY_REGISTERED, TERRITORY_UPDATED, TERRITORY_WITHDRAWN)

#: the event each kind of change publishes
EVENT_OF_CHANGE: dict[Change, EventSpec] = {
    "registered": TERRITORY_REGISTERED,
    "updated": TERRITORY_UPDATED,
    "withdrawn": TERRITORY_WITHDRAWN,
}
