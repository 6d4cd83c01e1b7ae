"""The events action-tracker publishes on ``ti.actions`` (``data`` = the whole action)."""

from __future__ import annotations

from ti_shared.events import TOPIC_ACTIONS, EventSpec, event_type

from action_tracker.domain import Change
from action_tracker.schemas import ActionResource

ACTION_CREATED = EventSpec(
    type=event_type("action", Change.CREATED),
    topic=TOPIC_ACTIONS,
    data_model=ActionResource,
    description="An action was added to a territory's plan (or re-created after its deletion)",
)
ACTION_UPDATED = EventSpec(
    type=event_type("action", Change.UPDATED),
    topic=TOPIC_ACTIONS,
    data_model=ActionResource,
    description="Fields of an action other than its status changed",
)
ACTION_STATUS_CHANGED = EventSpec(
    type=event_type("action", Change.STATUS_CHANGED),
    topic=TOPIC_ACTIONS,
    data_model=ActionResource,
    description="The progress status of an action changed (other fields may have changed with it)",
)
ACTION_DELETED = EventSpec(
    type=event_type("action", Change.DELETED),
    topic=TOPIC_ACTIONS,
    data_model=ActionResource,
    description="An action was removed from its plan; data is its last state with deleted: true",
)

EVENTS: tuple[EventSpec, ...] = (ACTION_CREATED, ACTION_UPDATED, ACTION_STATUS_CHANGED, ACTION_DELETED)

#: the event each kind of change publishes
EVENT_OF_CHANGE: dict[Change, EventSpec] = {
    Change.CREATED: ACTION_CREATED,
    Change.UPDATED: ACTION_UPDATED,
    Change.STATUS_CHANGED: ACTION_STATUS_CHANGED,
    Change.DELETED: ACTION_DELETED,
}
