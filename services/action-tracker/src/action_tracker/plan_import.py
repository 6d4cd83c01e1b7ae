"""Reading a territory's plan file (a GRIST export, CSV or XLSX): one action per row, and the report of
its import (no I/O).

GRIST writes its columns' labels (``Date de début``, ``Thématiques``), multi-choice cells as ``a, b``
in CSV and ``a; b`` in XLSX, money as ``120 000,00 €``: the header is matched by ``ti_shared.imports``
(an unknown column is a warning of the report, never silently dropped) and the cells read by
``ti_shared.cells`` (every value read other than as written is a warning of its row)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError
from ti_shared.cells import Vocabulary, read_choices, read_date, read_money
from ti_shared.imports import ImportRow, ImportTable, Layout, Message, RowNotes
from ti_shared.problems import clean_pydantic_errors
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
    RowError,
)

#: data rows of one territory's plan file (the largest plans have a few hundred actions)
MAX_PLAN_ROWS = 10_000

#: a plan file as the platform writes it and as GRIST exports it (column labels, with or without accents)
PLAN = Layout(
    name="a territory's plan",
    columns={
        "action_id": ("id", "ID", "Identifiant", "Référence"),
        "territory_id": ("id_ti", "Territoire"),
        "title": ("titre", "Titre", "intitulé", "Intitulé", "Intitulé de l'action", "Nom de l'action"),
        "description": ("Description",),
        "axis": ("axe", "Axe"),
        "themes": ("thématiques", "Thématiques", "Thématique", "thèmes", "Thèmes"),
        "status": ("statut", "Statut", "état d'avancement", "État d'avancement", "Etat d'avancement"),
        "planned_start": ("date_debut", "Date de début", "Date de debut", "Début"),
        "planned_end": ("date_fin", "Date de fin", "Fin"),
        "budget_eur": ("budget", "Budget", "Budget (€)", "Montant"),
        "partners": ("partenaires", "Partenaires"),
    },
    required=("action_id", "title", "axis"),
)
REQUIRED_COLUMNS = PLAN.required

_ACTION_ID = re.compile(ACTION_ID_PATTERN)

AXIS = Vocabulary.of("axis", AXES, AXIS_LABELS, {"hors axes": "autre", "Hors axes": "autre"})
THEME = Vocabulary.of("theme", THEMES, THEME_LABELS)
STATUS = Vocabulary.of(
    "status",
    STATUSES,
    STATUS_LABELS,
    {"À initier": "amont", "À débloquer": "en_pause", "Terminé": "realise", "Réalisée": "realise"},
)


# --- rows ----------------------------------------------------------------------------------------


@dataclass
class PlanRow:
    """One data row: the action it describes, or why it cannot be taken, and what was read other than as written."""

    row: int
    action_id: str | None
    body: ActionBody | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.body is not None and not self.errors


def _error(loc: str, msg: str) -> dict[str, Any]:
    return {"loc": [loc], "msg": msg}


def read_plan_row(row: ImportRow, table: ImportTable, territory_id: str) -> PlanRow:
    """Turn one row into a validated action body (codes or French labels, GRIST's multi-choice cells,
    French money and dates), each value read other than as written a warning."""
    notes = RowNotes()

    def cell(column: str) -> str:
        return row.get(column).strip()

    action_id = cell("action_id") or None
    if action_id is None:
        notes.error("action_id", "is required")
    elif not _ACTION_ID.fullmatch(action_id):
        notes.error("action_id", "must match " + ACTION_ID_PATTERN)
    elif action_id in RESERVED_ACTION_IDS:
        notes.error("action_id", "is reserved")
    own_territory = cell("territory_id")
    if own_territory and own_territory != territory_id:
        notes.error("territory_id", f"must be {territory_id} (the territory of this import) or empty")

    axis = notes.read("axis", cell("axis"), AXIS.read)
    status = notes.read("status", cell("status"), STATUS.read)
    themes = notes.read("themes", cell("themes"), lambda t: read_choices(t, THEME))
    partners = notes.read("partners", cell("partners"), read_choices)
    budget = notes.read("budget_eur", cell("budget_eur"), read_money)
    start = notes.read("planned_start", cell("planned_start"), read_date)
    end = notes.read("planned_end", cell("planned_end"), read_date)
    checked = {str(e.loc[0]) for e in notes.errors}
    candidate: dict[str, Any] = {
        "territory_id": territory_id,
        "title": cell("title"),
        "description": cell("description") or None,
        "axis": axis or "",
        "themes": themes or [],
        "status": status or "non_renseigne",
        "planned_start": start,
        "planned_end": end,
        "budget_eur": budget,
        "partners": partners or [],
    }
    errors = [e.model_dump() for e in notes.errors]
    body: ActionBody | None = None
    try:
        body = ActionBody.model_validate(candidate)
    except ValidationError as exc:
        for err in clean_pydantic_errors(exc.errors()):
            column = str(err["loc"][0]) if err["loc"] else "row"
            if column not in checked:
                checked.add(column)
                errors.append(_error(column, "is required" if column == "axis" and not axis else err["msg"]))
    return PlanRow(row=row.line, action_id=action_id, body=body, errors=errors, warnings=[w.model_dump() for w in notes.warnings])


def read_plan(table: ImportTable, territory_id: str) -> list[PlanRow]:
    """Every row of the file, a repeated action_id rejected after its first occurrence."""
    out: list[PlanRow] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        plan_row = read_plan_row(row, table, territory_id)
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
    warnings: list[Message] | None = None,
    dry_run: bool = False,
) -> PlanImportReport:
    """What an import did (or would do: ``applied=False``) row by row: ``decisions`` by row number for
    the rows taken, ``missing`` the territory's live actions absent from the file, ``deleted`` the
    version each deleted one reached."""
    deleted = deleted or {}
    lines: list[PlanImportRow] = []
    for row in rows:
        warned = [RowError.model_validate(w) for w in row.warnings]
        if row.errors:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="rejected", errors=row.errors, warnings=warned))  # type: ignore[arg-type]
            continue
        decision = decisions[row.row]
        version = decision.entity.version
        if decision.change is None:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="unchanged", version=version, warnings=warned))
        else:
            outcome = "created" if decision.change is Change.CREATED else "updated"
            lines.append(
                PlanImportRow(
                    row=row.row, action_id=row.action_id, outcome=outcome, change=decision.change.value, version=version,
                    warnings=warned,
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
        dry_run=dry_run,
        warnings=[RowError(loc=list(w.loc), msg=w.msg) for w in warnings or []],
        summary=PlanImportSummary(rows=len(rows), missing=len(gone), deleted=len(deleted), **count),
        rows=lines,
        missing=gone,
    )
