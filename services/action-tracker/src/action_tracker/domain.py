"""The rules of action plans: vocabularies, what changed, which event a change is (no I/O)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import (
    AXES,
    AXIS_LABELS,
    STATUS_LABELS,
    THEME_LABELS,
    THEMES,
)

ACTION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
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


class Change(StrEnum):
    """The kinds of change of an action, each published as ``fr.anct.ti.action.<change>.v1``."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    DELETED = "deleted"


@dataclass(frozen=True)
class Decision:
    """What a write does to an action: no change (``change is None``) or one new version."""

    change: Change | None
    changed_fields: tuple[str, ...]

    @property
    def is_noop(self) -> bool:
        return self.change is None


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[str, ...]:
    """The body fields whose value differs (all of them when there is no previous state)."""
    if before is None:
        return BODY_FIELDS
    return tuple(f for f in BODY_FIELDS if before.get(f) != after.get(f))


def decide_write(current: Mapping[str, Any] | None, current_deleted: bool, new: Mapping[str, Any]) -> Decision:
    """The effect of writing ``new`` (a canonical body) over the current state.

    A first write, or a write over a deleted action, (re-)creates it. Otherwise a write that changes
    the status is a status change (whatever else changed with it), any other difference an update,
    and an identical body changes nothing.
    """
    if current is None:
        return Decision(Change.CREATED, BODY_FIELDS)
    if current_deleted:
        return Decision(Change.CREATED, (*changed_fields(current, new), "deleted"))
    fields = changed_fields(current, new)
    if not fields:
        return Decision(None, ())
    if "status" in fields:
        return Decision(Change.STATUS_CHANGED, fields)
    return Decision(Change.UPDATED, fields)


def decide_delete(current_deleted: bool) -> Decision:
    """Deleting a live action makes a new version; an already deleted one is not there to delete."""
    if current_deleted:
        return Decision(None, ())
    return Decision(Change.DELETED, ("deleted",))


def territories_touched(current: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str]:
    """The territories whose plan a write touches (the old and the new one when an action moves)."""
    out: set[str] = set()
    for state in (current, new):
        if state is not None and isinstance(state.get("territory_id"), str):
            out.add(state["territory_id"])
    return out


# --- reading plan files ------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case, no accents, words joined by ``_``: ``"À initier (amont)"`` → ``"a_initier_amont"``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def _lookup(
    codes: tuple[str, ...], labels: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    table = {fold(code): code for code in codes}
    table.update({fold(label): code for code, label in labels.items()})
    table.update(extra or {})
    return table


_AXIS_LOOKUP = _lookup(AXES, AXIS_LABELS, {"hors_axes": "autre"})
_THEME_LOOKUP = _lookup(THEMES, THEME_LABELS)
_STATUS_LOOKUP = _lookup(
    STATUSES,
    STATUS_LABELS,
    {"a_initier": "amont", "a_debloquer": "en_pause", "termine": "realise", "realisee": "realise"},
)


def axis_code(text: str) -> str:
    """An axis given by its code or its French label; unknown values come back unchanged."""
    return _AXIS_LOOKUP.get(fold(text), text)


def theme_code(text: str) -> str:
    return _THEME_LOOKUP.get(fold(text), text)


def status_code(text: str) -> str:
    return _STATUS_LOOKUP.get(fold(text), text)


def split_list(text: str) -> list[str]:
    """A list cell: values separated by ``|`` or ``,``, blanks dropped."""
    return [part.strip() for part in re.split(r"[|,]", text) if part.strip()]


_FRENCH_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")


def iso_date_text(text: str) -> str:
    """``31/01/2024`` → ``2024-01-31``; other text is left for the date validator to judge."""
    match = _FRENCH_DATE.fullmatch(text.strip())
    if match:
        day, month, year = match.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return text.strip()
