"""The rules of action plans: what an action is, what a write changes, which event a change is (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import ti_shared.service
from ti_shared.events import format_instant

#: path segments under /v1/actions that name endpoints, not actions
RESERVED_ACTION_IDS = frozenset({"vocabulary", "plan-imports"})

#: the fields a client writes (CONTRACT §4), in their representation order
BODY_FIELDS: tuple[str, ...] = (
    "territory_id",
    "title",
    "description",
    "axis",
    "themes",
    "status",
    "planned_start",
    "planned_end",
    "budget_eur",
    "partners",
)
#: the list fields, which a merge patch's ``null`` empties (it clears the other nullable fields)
LIST_FIELDS = ("themes", "partners")


class Change(StrEnum):
    """The kinds of change of an action, each published as ``fr.anct.ti.action.<change>.v1``."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    DELETED = "deleted"


@dataclass(frozen=True)
class Action:
    """An action's state: its canonical body (JSON form) and its bookkeeping (deleted ones included)."""

    action_id: str
    body: dict[str, Any]
    version: int
    deleted: bool
    created_at: datetime
    updated_at: datetime

    @property
    def territory_id(self) -> str:
        return str(self.body["territory_id"])

    def resource(self) -> dict[str, Any]:
        """The representation of GET and of the events' ``data``."""
        return {
            "id": self.action_id,
            **self.body,
            "version": self.version,
            "updated_at": format_instant(self.updated_at),
            "deleted": self.deleted,
        }

    def next_version(self, body: dict[str, Any], *, deleted: bool, at: datetime) -> Action:
        return replace(self, body=body, version=self.version + 1, deleted=deleted, updated_at=at)


@dataclass(frozen=True)
class ActionVersion:
    """One version of an action in its history: when, who, what changed, the comment and the state."""

    version: int
    change: Change
    recorded_at: datetime
    actor: str
    changed_fields: list[str]
    comment: str | None
    state: dict[str, Any]


class Decision(ti_shared.service.Decision[Change, Action]):
    """What a write does to an action: nothing (``change is None``, ``entity`` the current action) or
    one new version (``entity``)."""


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[str, ...]:
    """The body fields whose value differs (all of them when there is no previous state)."""
    if before is None:
        return BODY_FIELDS
    return tuple(f for f in BODY_FIELDS if before.get(f) != after.get(f))


def decide_write(current: Action | None, body: dict[str, Any], *, action_id: str, at: datetime) -> Decision:
    """The effect of writing ``body`` (a canonical body) as the action ``action_id`` at ``at``.

    A first write, or a write over a deleted action, (re-)creates it. Otherwise a write that changes
    the status is a status change (whatever else changed with it), any other difference an update,
    and an identical body changes nothing.
    """
    if current is None:
        return Decision(Change.CREATED, Action(action_id, body, 1, False, at, at), BODY_FIELDS)
    fields = changed_fields(current.body, body)
    if current.deleted:
        return Decision(Change.CREATED, current.next_version(body, deleted=False, at=at), (*fields, "deleted"))
    if not fields:
        return Decision(None, current)
    change = Change.STATUS_CHANGED if "status" in fields else Change.UPDATED
    return Decision(change, current.next_version(body, deleted=False, at=at), fields)


def decide_delete(current: Action, *, at: datetime) -> Decision:
    """Deleting a live action makes a new version; an already deleted one is not there to delete."""
    if current.deleted:
        return Decision(None, current)
    return Decision(Change.DELETED, current.next_version(current.body, deleted=True, at=at), ("deleted",))


def merge_patch(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The body a JSON merge patch makes of ``current``: the given fields replace the current ones,
    ``null`` clears a nullable field and empties a list (:data:`LIST_FIELDS`)."""
    return {**current, **{k: ([] if v is None and k in LIST_FIELDS else v) for k, v in changes.items()}}


def territories_touched(current: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str]:
    """The territories whose plan a write touches (the old and the new one when an action moves)."""
    out: set[str] = set()
    for state in (current, new):
        if state is not None and isinstance(state.get("territory_id"), str):
            out.add(state["territory_id"])
    return out
