"""Pydantic models: what clients write, the action resource (also the ``data`` of every event), reports."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from ti_shared.types import TERRITORY_ID_PATTERN, Decimal2
from ti_shared.types import IsoDate as AnyIsoDate
from ti_shared.vocabulary import ActionStatus as Status
from ti_shared.vocabulary import Axis, Theme

ACTION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"

ActionId = Annotated[str, StringConstraints(pattern=ACTION_ID_PATTERN)]
TerritoryId = Annotated[str, StringConstraints(pattern=TERRITORY_ID_PATTERN)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]
Partner = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]

EXAMPLE_BODY: dict[str, Any] = {
    "territory_id": "ti-8402",
    "title": "Campagne de découverte des métiers de l'industrie",
    "description": "Visites d'entreprises pour les collégiens du bassin",
    "axis": "competences_attractivite",
    "themes": ["nouvelles_formations", "rh_marque_employeur"],
    "status": "en_cours",
    "planned_start": "2024-01-15",
    "planned_end": None,
    "budget_eur": "120000.00",
    "partners": ["BPI"],
}

IsoDate = Annotated[AnyIsoDate, WithJsonSchema({"type": "string", "format": "date", "examples": ["2024-01-15"]})]


def _unique_themes(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("must not repeat a theme")
    return value


Themes = Annotated[list[Theme], AfterValidator(_unique_themes)]


class ActionBody(BaseModel):
    """The fields of an action a client writes (CONTRACT §4)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_BODY]})

    territory_id: TerritoryId = Field(description="The territory whose plan holds the action (ti-XXXX)")
    title: Title
    description: Description | None = None
    axis: Axis = Field(description="One of the programme's four axes, or autre")
    themes: Themes = Field(default_factory=list, description="0..n themes, each at most once, any axis")
    status: Status = Field(default="non_renseigne", description="Progress status")
    planned_start: IsoDate | None = None
    planned_end: IsoDate | None = Field(default=None, description="Not before planned_start")
    budget_eur: Decimal2 | None = Field(default=None, description='Two-decimal string, e.g. "120000.00"')
    partners: list[Partner] = Field(default_factory=list, max_length=100)

    @field_validator("planned_end")
    @classmethod
    def _end_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("planned_start")
        if value is not None and isinstance(start, date) and value < start:
            raise ValueError("must not be before planned_start")
        return value

    def canonical(self) -> dict[str, Any]:
        """The JSON form every comparison, history row and event uses."""
        return self.model_dump(mode="json")


class ActionWrite(ActionBody):
    """A PUT or POST body: the action's fields, an optional comment for its history.

    A representation read with GET may be sent back as is: ``id`` (equal to the path's),
    ``version``, ``updated_at`` and ``deleted: false`` are accepted and ignored.
    """

    comment: Comment | None = Field(default=None, description="Kept in the action's history (not in its state)")
    id: ActionId | None = Field(default=None, description="Read-only; if given, must equal the action's id")
    version: int | None = Field(default=None, description="Read-only; ignored (use If-Match)")
    updated_at: str | None = Field(default=None, description="Read-only; ignored")
    deleted: Literal[False] | None = Field(default=None, description="Read-only; use DELETE to delete")

    def body(self) -> ActionBody:
        return ActionBody.model_validate(self.model_dump(include=set(ActionBody.model_fields)))


class ActionPatch(BaseModel):
    """A partial change (JSON merge patch): only the given fields change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "realise", "comment": "Inauguration le 12 septembre"}]},
    )

    territory_id: TerritoryId | None = None
    title: Title | None = None
    description: Description | None = None
    axis: Axis | None = None
    themes: Themes | None = None
    status: Status | None = None
    planned_start: IsoDate | None = None
    planned_end: IsoDate | None = None
    budget_eur: Decimal2 | None = None
    partners: list[Partner] | None = Field(default=None, max_length=100)
    comment: Comment | None = Field(default=None, description="Kept in the action's history (not in its state)")

    def changes(self) -> dict[str, Any]:
        """The given fields (``null`` included) except the comment, in JSON form."""
        given = self.model_fields_set - {"comment"}
        return self.model_dump(mode="json", include=given)


class ActionResource(BaseModel):
    """An action as GET returns it and as every ``action.*`` event carries it in ``data``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "grist-ti-8402-17",
                    **EXAMPLE_BODY,
                    "version": 3,
                    "updated_at": "2024-11-30T10:00:00Z",
                    "deleted": False,
                }
            ]
        }
    )

    id: str
    territory_id: str
    title: str
    description: str | None
    axis: Axis
    themes: list[Theme]
    status: Status
    planned_start: IsoDate | None
    planned_end: IsoDate | None
    budget_eur: Decimal2 | None
    partners: list[str]
    version: int = Field(ge=1)
    updated_at: AwareDatetime
    deleted: bool = Field(default=False, description="True once the action was removed from its plan")


class ActionPage(BaseModel):
    items: list[ActionResource]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= to get the next page")


class HistoryEntry(BaseModel):
    """One version of an action."""

    version: int
    time: AwareDatetime = Field(description="When the change took effect (the event's time)")
    actor: str = Field(description="The token subject who made the change")
    change: Literal["created", "updated", "status_changed", "deleted"]
    event_type: str
    changed_fields: list[str]
    comment: str | None
    state: ActionResource


class HistoryPage(BaseModel):
    action_id: str
    items: list[HistoryEntry]
    next_cursor: str | None = None


class VocabularyTerm(BaseModel):
    code: str
    label: str


class ThemeTerm(VocabularyTerm):
    axis: Axis = Field(description="The axis under which the national report groups this theme")


class Vocabulary(BaseModel):
    axes: list[VocabularyTerm]
    themes: list[ThemeTerm]
    statuses: list[VocabularyTerm]


# --- plan imports --------------------------------------------------------------------------------


class RowError(BaseModel):
    loc: list[str | int]
    msg: str


ImportOutcome = Literal["created", "updated", "unchanged", "rejected"]


class PlanImportRow(BaseModel):
    row: int = Field(description="The row number in the file (the header is row 1)")
    action_id: str | None
    outcome: ImportOutcome
    change: Literal["created", "updated", "status_changed"] | None = None
    version: int | None = None
    errors: list[RowError] = Field(default_factory=list)
    warnings: list[RowError] = Field(
        default_factory=list, description="What was read other than as written (the row is taken)"
    )


class PlanImportMissing(BaseModel):
    action_id: str
    outcome: Literal["missing", "deleted"]
    version: int


class PlanImportSummary(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    missing: int
    deleted: int


class PlanImportReport(BaseModel):
    """What a plan import did (or, for a refused atomic import, would have done) row by row."""

    territory_id: str
    mode: Literal["atomic", "partial"]
    delete_missing: bool
    applied: bool = Field(description="False when an atomic import was refused: nothing changed")
    dry_run: bool = Field(default=False, description="True (?dry_run=true): nothing was written")
    warnings: list[RowError] = Field(
        default_factory=list, description="What the file as a whole departs from (encoding, unknown or renamed columns)"
    )
    summary: PlanImportSummary
    rows: list[PlanImportRow]
    missing: list[PlanImportMissing]
