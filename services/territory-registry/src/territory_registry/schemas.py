"""Pydantic models of the registry: request bodies, resources (= event data), history and import reports."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.networks import validate_email
from ti_shared.events import format_instant
from ti_shared.imports import ImportCounts as ImportCounts
from ti_shared.imports import RowOutcome as RowOutcome
from ti_shared.problems import ProblemDetails
from ti_shared.types import TERRITORY_ID_PATTERN, CommuneCode, DepartementCode, RegionCode, Siren
from ti_shared.types import IsoDate as AnyIsoDate
from ti_shared.vocabulary import TerritoryStatus as TerritoryStatus

#: an instant, returned in RFC 3339 (UTC, ``Z``)
Instant = Annotated[
    AwareDatetime,
    PlainSerializer(format_instant, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2024-11-30T10:00:00Z"]}),
]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TerritoryId = Annotated[str, StringConstraints(pattern=TERRITORY_ID_PATTERN)]
Change = Literal["registered", "updated", "withdrawn"]
#: communes of one territory's perimeter (the largest territories have a few hundred)
MAX_COMMUNES = 3000

TERRITORY_EXAMPLE: dict[str, Any] = {
    "name": "Bassin de Bourg-en-Bresse",
    "region_code": "84",
    "departement_codes": ["01"],
    "epcis": [{"siren": "200071751", "name": "CA du Bassin de Bourg-en-Bresse"}],
    "phase": "temps-2",
    "labelled_on": "2023-11-09",
    "project_lead": {
        "in_post": True,
        "cofinanced": True,
        "name": "Camille Martin",
        "email": "camille.martin@example.org",
    },
    "launch_copil_held_on": "2024-03-01",
    "status": "active",
}

IsoDate = Annotated[AnyIsoDate, WithJsonSchema({"type": "string", "format": "date", "examples": ["2023-11-09"]})]


class Region(BaseModel):
    code: str = Field(examples=["84"])
    name: str = Field(examples=["Auvergne-Rhône-Alpes"])


class Departement(BaseModel):
    code: str = Field(examples=["01"])
    name: str = Field(examples=["Ain"])
    region_code: str = Field(examples=["84"])


class Epci(BaseModel):
    """An EPCI (groupement de communes) of the territory, by its SIREN."""

    model_config = ConfigDict(extra="forbid")

    siren: Siren
    name: Name


@lru_cache(maxsize=4096)
def _email(value: str) -> str:
    """pydantic's ``EmailStr`` check (the normalised address, or its error), each address checked once:
    a territory's lead is validated in its body, its stored state and its new version on every write
    (≈ 0.1 ms each in ``email_validator``); a refused address is not cached."""
    return validate_email(value)[1]


#: an e-mail address, as pydantic's ``EmailStr`` checks it and documents it (``format: email``)
Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})]


class ProjectLead(BaseModel):
    """The territory's project lead (chef de projet)."""

    model_config = ConfigDict(extra="forbid")

    in_post: StrictBool = Field(default=False, description="A project lead is in post")
    cofinanced: StrictBool = Field(default=False, description="The post is co-financed by the programme")
    name: Name | None = None
    email: Email | None = None


class TerritoryFields(BaseModel):
    """The body of ``PUT /v1/territories/{territory_id}``: the whole state of a territory."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TERRITORY_EXAMPLE]})

    name: Name
    region_code: RegionCode = Field(description="The piloting region (INSEE code)")
    departement_codes: list[DepartementCode] = Field(
        default_factory=list, max_length=101, description="The départements the territory spans (INSEE codes)"
    )
    epcis: list[Epci] = Field(default_factory=list, max_length=500, description="Its EPCIs, each SIREN once")
    phase: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] | None = Field(
        default=None, description="The programme phase, e.g. temps-1, temps-2", examples=["temps-2"]
    )
    labelled_on: IsoDate | None = None
    project_lead: ProjectLead | None = None
    launch_copil_held_on: IsoDate | None = None
    status: TerritoryStatus = "active"
    communes: list[CommuneCode] | None = Field(
        default=None,
        max_length=MAX_COMMUNES,
        description=(
            "The perimeter: the INSEE codes of its communes, each once (kept sorted), as ANCT's commune-level list "
            "gives it. Absent or null: the current perimeter is kept; [] clears it"
        ),
        examples=[["01053", "01245"]],
    )

    @field_validator("communes")
    @classmethod
    def _sorted_once(cls, communes: list[str] | None) -> list[str] | None:
        """Each commune once; kept sorted (their order says nothing)."""
        if communes is None:
            return None
        repeated = sorted(c for c, n in Counter(communes).items() if n > 1)
        if repeated:
            raise ValueError("communes listed more than once: " + ", ".join(repeated))
        return sorted(communes)


class Territory(TerritoryFields):
    """A territory as GET returns it and as its events carry it in ``data``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{**TERRITORY_EXAMPLE, "id": "ti-8402", "version": 1, "updated_at": "2024-03-01T09:00:00Z"}]
    })

    id: TerritoryId = Field(examples=["ti-8402"])
    communes: list[CommuneCode] = Field(  # type: ignore[assignment]
        default_factory=list, description="The perimeter: the sorted INSEE codes of its communes ([] when not known)"
    )
    version: int = Field(ge=1, description="1 on creation, +1 on each real change")
    updated_at: Instant


class TerritoryVersion(BaseModel):
    """One version of a territory in its history."""

    version: int
    change: Change
    event_type: str = Field(examples=["fr.anct.ti.territory.registered.v1"])
    time: Instant = Field(description="When the change took effect (the event's time)")
    recorded_at: Instant = Field(description="When the registry recorded it")
    actor: str = Field(description="The token's subject that made the change")
    changed_fields: list[str] = Field(description="The fields whose value changed (all of them on creation)")
    state: Territory


class RowError(BaseModel):
    loc: list[str | int] = Field(examples=[["row", 3, "siren_groupement"]])
    msg: str = Field(examples=["is not a valid SIREN (Luhn checksum)"])


ImportKind = Literal["territories", "groupements"]
ImportMode = Literal["atomic", "partial"]
ImportLayout = Literal["territories", "communes", "groupements"]


class ImportRowReport(BaseModel):
    """What happened to one territory of the file (its row, or its rows in a groupements file)."""

    row: int = Field(description="The first row concerned; the header is row 1")
    rows: list[int] = Field(description="Every row concerned")
    territory_id: str | None
    outcome: RowOutcome
    version: int | None = Field(default=None, description="The territory's version after the import")
    changed_fields: list[str] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)
    warnings: list[RowError] = Field(
        default_factory=list, description="What was read other than as written (the territory is imported)"
    )


class ImportReport(BaseModel):
    """The per-row report of an import of ANCT's files."""

    kind: ImportKind
    layout: ImportLayout = Field(
        default="territories",
        description=(
            "How the file was read: territories (one row per territory), communes (ANCT's commune-level list, "
            "told by its insee_com column) or groupements (one row per EPCI)"
        ),
    )
    mode: ImportMode
    dry_run: bool = Field(
        default=False, description="True (?dry_run=true): nothing was written; the report says what the import would do"
    )
    imported: bool = Field(description="False when nothing was written (atomic mode with a rejected row)")
    counts: ImportCounts
    warnings: list[RowError] = Field(
        default_factory=list, description="What the file as a whole departs from (encoding, unknown or missing columns)"
    )
    rows: list[ImportRowReport]


class ImportRejection(ProblemDetails):
    """The 422 of an atomic import with rejected rows: a problem document carrying the report."""

    report: ImportReport | None = Field(default=None, description="What each row would have given; nothing was written")
