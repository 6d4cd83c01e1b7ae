"""The rules: which change a write is, what changed, what a version of an action is (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from action_tracker.domain import (
    BODY_FIELDS,
    Action,
    Change,
    changed_fields,
    decide_delete,
    decide_write,
    merge_patch,
    territories_touched,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, THEMES

STATE: dict[str, Any] = {
    "territory_id": "ti-8402",
    "title": "Campus",
    "description": None,
    "axis": "foncier",
    "themes": ["gestion_eau"],
    "status": "en_cours",
    "planned_start": "2024-01-15",
    "planned_end": None,
    "budget_eur": "10.00",
    "partners": [],
}
T0 = datetime(2024, 1, 1, 8, tzinfo=UTC)
T1 = T0 + timedelta(days=30)


def action(body: dict[str, Any] = STATE, *, version: int = 3, deleted: bool = False) -> Action:
    return Action("a-1", dict(body), version, deleted, created_at=T0 - timedelta(days=1), updated_at=T0)


def test_first_write_creates_with_every_field() -> None:
    decision = decide_write(None, STATE, action_id="a-1", at=T1)
    assert decision.change is Change.CREATED
    assert decision.changed_fields == BODY_FIELDS
    assert decision.entity == Action("a-1", STATE, 1, False, created_at=T1, updated_at=T1)


def test_identical_write_changes_nothing() -> None:
    current = action()
    decision = decide_write(current, dict(STATE), action_id="a-1", at=T1)
    assert not decision.changed and decision.changed_fields == ()
    assert decision.entity is current


def test_status_change_wins_over_other_changes() -> None:
    decision = decide_write(action(), {**STATE, "status": "realise", "title": "Autre"}, action_id="a-1", at=T1)
    assert decision.change is Change.STATUS_CHANGED
    assert decision.changed_fields == ("title", "status")
    entity = decision.entity
    assert (entity.version, entity.updated_at, entity.created_at, entity.body["status"]) == (4, T1, action().created_at, "realise")


def test_other_changes_are_updates() -> None:
    decision = decide_write(
        action(), {**STATE, "themes": ["gestion_eau", "tiers_lieux"], "budget_eur": None}, action_id="a-1", at=T1
    )
    assert decision.change is Change.UPDATED
    assert decision.changed_fields == ("themes", "budget_eur")


def test_theme_order_is_a_change() -> None:
    before = action({**STATE, "themes": ["a", "b"]})
    assert decide_write(before, {**STATE, "themes": ["b", "a"]}, action_id="a-1", at=T1).change is Change.UPDATED


def test_write_over_a_deleted_action_recreates_it() -> None:
    gone = action(deleted=True)
    decision = decide_write(gone, dict(STATE), action_id="a-1", at=T1)
    assert decision.change is Change.CREATED
    assert decision.changed_fields == ("deleted",)
    assert (decision.entity.version, decision.entity.deleted) == (4, False)
    assert decide_write(gone, {**STATE, "status": "amont"}, action_id="a-1", at=T1).changed_fields == ("status", "deleted")


def test_delete() -> None:
    decision = decide_delete(action(), at=T1)
    assert decision.change is Change.DELETED and decision.changed_fields == ("deleted",)
    assert (decision.entity.version, decision.entity.deleted, decision.entity.body) == (4, True, STATE)
    gone = action(deleted=True)
    assert not decide_delete(gone, at=T1).changed and decide_delete(gone, at=T1).entity is gone


def test_the_resource_is_the_body_and_the_bookkeeping() -> None:
    assert action(version=2).resource() == {
        "id": "a-1",
        **STATE,
        "version": 2,
        "updated_at": "2024-01-01T08:00:00Z",
        "deleted": False,
    }


def test_a_merge_patch_replaces_given_fields_and_null_empties_lists() -> None:
    patched = merge_patch(STATE, {"status": "realise", "budget_eur": None, "themes": None, "partners": None})
    assert patched == {**STATE, "status": "realise", "budget_eur": None, "themes": [], "partners": []}
    assert merge_patch(STATE, {}) == STATE


def test_territories_touched_by_a_move() -> None:
    assert territories_touched(STATE, {**STATE, "territory_id": "ti-1101"}) == {"ti-8402", "ti-1101"}
    assert territories_touched(None, STATE) == {"ti-8402"}
    assert territories_touched(STATE, None) == {"ti-8402"}


body_values = st.fixed_dictionaries(
    {
        "territory_id": st.sampled_from(["ti-8402", "ti-1101"]),
        "title": st.text(min_size=1, max_size=20),
        "description": st.none() | st.text(max_size=20),
        "axis": st.sampled_from(AXES),
        "themes": st.lists(st.sampled_from(THEMES), unique=True, max_size=4),
        "status": st.sampled_from(STATUSES),
        "planned_start": st.none() | st.dates().map(lambda d: d.isoformat()),
        "planned_end": st.none() | st.dates().map(lambda d: d.isoformat()),
        "budget_eur": st.none() | st.decimals(min_value=0, max_value=10**6, places=2).map(lambda d: f"{d:.2f}"),
        "partners": st.lists(st.text(min_size=1, max_size=8), max_size=3),
    }
)


@settings(max_examples=60, deadline=None)
@given(body_values, body_values)
def test_decision_agrees_with_the_diff(before: dict[str, Any], after: dict[str, Any]) -> None:
    decision = decide_write(action(before), after, action_id="a-1", at=T1)
    fields = changed_fields(before, after)
    assert decision.changed_fields == fields
    assert decision.changed == (before != after)
    assert decision.entity.version == (4 if decision.changed else 3)
    assert (decision.change is Change.STATUS_CHANGED) == (before["status"] != after["status"])
    assert not decide_write(action(after), after, action_id="a-1", at=T1).changed
