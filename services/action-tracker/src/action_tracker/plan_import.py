"""Reading a territory's plan file (a GRIST export, CSV or XLSX): one action per row, and the report of
its import (no I/O)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError
from ti_shared.problems import clean_pydantic_errors
from ti_shared.tabular import parse_french_decimal
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, AXIS_LABELS, STATUS_LABELS, THEME_LABELS, THEMES

from action_tracker.domain import RESERVED_ACTION_IDS, Action, Change, Decision
from action_tracker.schemas import (
    ACTION_ID_PATTERN,
    ActionBody,
    PlanImportMissing,
    PlanImportReport,
    PlanImportRow,
    PlanImportSummary,
)

#: data rows of one territory's plan file (the largest plans have a few hundred actions)
MAX_PLAN_ROWS = 10_000

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


# --- cells: codes or French labels, lists, dates -------------------------------------------------


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


# --- rows ----------------------------------------------------------------------------------------


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


# --- the report ----------------------------------------------------------------------------------


def plan_report(
    territory_id: str,
    mode: Literal["atomic", "partial"],
    delete_missing: bool,
    rows: list[PlanRow],
    decisions: Mapping[int, Decision],
    missing: list[Action],
    *,
    applied: bool,
    deleted: Mapping[str, int] | None = None,
) -> PlanImportReport:
    """What an import did (or would do: ``applied=False``) row by row: ``decisions`` by row number for
    the rows taken, ``missing`` the territory's live actions absent from the file, ``deleted`` the
    version each deleted one reached."""
    deleted = deleted or {}
    lines: list[PlanImportRow] = []
    for row in rows:
        if row.errors:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="rejected", errors=row.errors))  # type: ignore[arg-type]
            continue
        decision = decisions[row.row]
        version = decision.entity.version
        if decision.change is None:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="unchanged", version=version))
        else:
            outcome = "created" if decision.change is Change.CREATED else "updated"
            lines.append(
                PlanImportRow(
                    row=row.row, action_id=row.action_id, outcome=outcome, change=decision.change.value, version=version
                )
            )  # type: ignore[arg-type]
    gone = [
        PlanImportMissing(
            action_id=a.action_id,
            outcome="deleted" if a.action_id in deleted else "missing",
            version=deleted.get(a.action_id, a.version),
        )
        for a in missing
    ]
    count = {o: sum(1 for line in lines if line.outcome == o) for o in ("created", "updated", "unchanged", "rejected")}
    return PlanImportReport(
        territory_id=territory_id,
        mode=mode,
        delete_missing=delete_missing,
        applied=applied,
        summary=PlanImportSummary(rows=len(rows), missing=len(gone), deleted=len(deleted), **count),
        rows=lines,
        missing=gone,
    )
