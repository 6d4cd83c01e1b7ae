"""Reading a territory's plan file (a GRIST export, CSV or XLSX): one action per row (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from ti_shared.problems import clean_pydantic_errors
from ti_shared.tabular import parse_french_decimal
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, THEMES

from action_tracker.domain import (
    ACTION_ID_PATTERN,
    RESERVED_ACTION_IDS,
    axis_code,
    fold,
    iso_date_text,
    split_list,
    status_code,
    theme_code,
)
from action_tracker.schemas import ActionBody

#: the columns a plan file may have, by their folded name (French headers accepted too)
COLUMN_ALIASES: dict[str, str] = {
    "action_id": "action_id",
    "id": "action_id",
    "territory_id": "territory_id",
    "id_ti": "territory_id",
    "title": "title",
    "titre": "title",
    "intitule": "title",
    "description": "description",
    "axis": "axis",
    "axe": "axis",
    "themes": "themes",
    "thematiques": "themes",
    "status": "status",
    "statut": "status",
    "etat_d_avancement": "status",
    "planned_start": "planned_start",
    "date_debut": "planned_start",
    "planned_end": "planned_end",
    "date_fin": "planned_end",
    "budget_eur": "budget_eur",
    "budget": "budget_eur",
    "partners": "partners",
    "partenaires": "partners",
}
REQUIRED_COLUMNS = ("action_id", "title", "axis")
FIRST_DATA_ROW = 2  # the header is row 1

_ACTION_ID = re.compile(ACTION_ID_PATTERN)


def plan_columns(header: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """``({column: header as written}, [required columns missing])``; unknown headers are ignored."""
    found: dict[str, str] = {}
    for name in header:
        column = COLUMN_ALIASES.get(fold(name))
        if column is not None and column not in found:
            found[column] = name
    return found, [c for c in REQUIRED_COLUMNS if c not in found]


@dataclass
class PlanRow:
    """One data row: the action it describes, or why it cannot be taken."""

    row: int
    action_id: str | None
    body: ActionBody | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.body is not None and not self.errors


def _error(loc: str, msg: str) -> dict[str, Any]:
    return {"loc": [loc], "msg": msg}


def read_plan_row(number: int, cells: Mapping[str, str], columns: Mapping[str, str], territory_id: str) -> PlanRow:
    """Turn one row into a validated action body (codes or French labels, French decimals and dates)."""

    def cell(column: str) -> str:
        name = columns.get(column)
        return (cells.get(name) or "").strip() if name is not None else ""

    action_id = cell("action_id") or None
    errors: list[dict[str, Any]] = []
    if action_id is None:
        errors.append(_error("action_id", "is required"))
    elif not _ACTION_ID.fullmatch(action_id):
        errors.append(_error("action_id", "must match " + ACTION_ID_PATTERN))
    elif action_id in RESERVED_ACTION_IDS:
        errors.append(_error("action_id", "is reserved"))
    own_territory = cell("territory_id")
    if own_territory and own_territory != territory_id:
        errors.append(_error("territory_id", f"must be {territory_id} (the territory of this import) or empty"))

    axis = axis_code(cell("axis")) if cell("axis") else ""
    status = status_code(cell("status")) if cell("status") else "non_renseigne"
    themes = [theme_code(t) for t in split_list(cell("themes"))]
    checked: set[str] = set()
    if axis and axis not in AXES:
        errors.append(_error("axis", f"'{cell('axis')}' is not an axis (a code or its French label)"))
        checked.add("axis")
    if status not in STATUSES:
        errors.append(_error("status", f"'{cell('status')}' is not a status (a code or its French label)"))
        checked.add("status")
    unknown = [t for t in themes if t not in THEMES]
    if unknown:
        errors.append(_error("themes", "unknown theme(s): " + ", ".join(f"'{t}'" for t in unknown)))
        checked.add("themes")

    budget: Decimal | None = None
    if cell("budget_eur"):
        try:
            budget = parse_french_decimal(cell("budget_eur"))
        except ValueError as exc:
            errors.append(_error("budget_eur", str(exc)))
            checked.add("budget_eur")
        else:
            if budget < 0:
                errors.append(_error("budget_eur", "must not be negative"))
                checked.add("budget_eur")

    candidate: dict[str, Any] = {
        "territory_id": territory_id,
        "title": cell("title"),
        "description": cell("description") or None,
        "axis": axis,
        "themes": themes,
        "status": status,
        "planned_start": iso_date_text(cell("planned_start")) or None,
        "planned_end": iso_date_text(cell("planned_end")) or None,
        "budget_eur": budget,
        "partners": split_list(cell("partners")),
    }
    body: ActionBody | None = None
    try:
        body = ActionBody.model_validate(candidate)
    except ValidationError as exc:
        for err in clean_pydantic_errors(exc.errors()):
            column = str(err["loc"][0]) if err["loc"] else "row"
            if column not in checked:
                checked.add(column)
                errors.append(_error(column, "is required" if column == "axis" and not axis else err["msg"]))
    return PlanRow(row=number, action_id=action_id, body=body, errors=errors)


def read_plan(rows: list[dict[str, str]], columns: Mapping[str, str], territory_id: str) -> list[PlanRow]:
    """Every row of the file, a repeated action_id rejected after its first occurrence."""
    out: list[PlanRow] = []
    first_row: dict[str, int] = {}
    for index, cells in enumerate(rows):
        plan_row = read_plan_row(FIRST_DATA_ROW + index, cells, columns, territory_id)
        if plan_row.action_id is not None:
            if plan_row.action_id in first_row:
                plan_row.errors.append(
                    _error("action_id", f"repeats the action_id of row {first_row[plan_row.action_id]}")
                )
            else:
                first_row[plan_row.action_id] = plan_row.row
        out.append(plan_row)
    return out
