"""The events action-tracker publishes: the contract's types on ti.actions, and their committed schemas."""

from __future__ import annotations

from action_tracker.domain import Change
from action_tracker.events import EVENT_OF_CHANGE, EVENTS
from action_tracker.main import SPEC
from ti_shared.events import EVENT_TOPICS, TOPIC_ACTIONS, stale_event_schemas


def test_committed_event_schemas_match_the_code() -> None:
    assert SPEC.schemas_dir is not None
    assert stale_event_schemas(SPEC.schemas_dir, list(SPEC.events)) == []


def test_events_are_the_contract_ones_on_ti_actions() -> None:
    assert sorted(e.type for e in EVENTS) == [
        "fr.anct.ti.action.created.v1",
        "fr.anct.ti.action.deleted.v1",
        "fr.anct.ti.action.status_changed.v1",
        "fr.anct.ti.action.updated.v1",
    ]
    assert all(EVENT_TOPICS[e.type] == e.topic == TOPIC_ACTIONS for e in EVENTS)
    assert set(EVENT_OF_CHANGE) == set(Change) and set(EVENT_OF_CHANGE.values()) == set(EVENTS)
    assert all(spec.type == f"fr.anct.ti.action.{change.value}.v1" for change, spec in EVENT_OF_CHANGE.items())
