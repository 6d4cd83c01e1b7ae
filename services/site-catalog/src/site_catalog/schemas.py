"""Pydantic models: the site body of a PUT, the site resource (= the data of every event), reports."""

from __future__ import annotations

from datetime import date
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
    field_validator,
)
from ti_shared.events import format_instant
from ti_shared.imports import ImportCounts as ImportCounts
from ti_shared.imports import RowOutcome as RowOutcome
from ti_shared.types import TERRITORY_ID_PATTERN, CommuneCode, DepartementCode, IsoDate, PositiveDecimal2, RegionCode
from ti_shared.vocabulary import Maturity as Maturity
from ti_shared.vocabulary import SiteStatus as SiteStatus

SITE_ID_PATTERN = r"^[A-Za-z0-9_-]{3,64}$"
#: path segments under /v1/sites that name endpoints, not sites
RESERVED_SITE_IDS = frozenset({"imports"})

OwnerKind = Literal["entreprise", "collectivite", "etablissement_public", "association", "autre"]
Change = Literal["labelled", "updated", "withdrawn"]
ImportMode = Literal["atomic", "partial"]

MATURITIES: tuple[str, ...] = ("ready", "short_term", "before_2030")
STATUSES: tuple[str, ...] = ("labelled", "withdrawn")
OWNER_KINDS: tuple[str, ...] = ("entreprise", "collectivite", "etablissement_public", "association", "autre")

#: the columns of CNIG « sites économiques » v1.0.1 (class SITE-ECO), in the standard's order
CNIG_COLUMNS: tuple[str, ...] = (
    "site_id", "pole_id", "site_nom", "site_type", "site_vocadomi", "site_etat", "site_surf_brute",
    "site_surf_utile", "site_creation_date", "site_identif_date", "site_actu_date", "source_producteur",
    "site_description", "site_quali_territoire", "site_evol_urba", "site_url", "site_epci_nom",
    "site_epci_siren", "site_comm_nom", "site_comm_insee", "site_moa_type", "site_moa_nom", "site_moa_amngt",
    "site_moa_comm", "site_uf_nbre", "site_uf_vacant_nbre", "site_taux_vacance", "site_uf_bati_nbre",
    "site_nb_etab", "site_nb_emploi", "site_geomsurf", "site_geompoint", "site_media", "site_surf_comm_dispo",
    "site_surf_projet", "site_voca_industrielle", "site_voca_commerciale", "site_voca_tertiaire",
    "site_voca_artisanale", "site_voca_touristique", "site_voca_portuaire", "site_voca_aeroportuaire",
    "reseau_eau_pluviale", "reseau_eau_potable", "reseau_assainissement", "reseau_gaz", "reseau_electrique",
    "reseau_fibre_optique", "reseau_fret_ferroviaire", "reseau_fluvial", "desserte_tc", "desserte_route_nom",
    "autoroute_nom", "autoroute_echang_dist", "gare_nom", "gare_dist", "gare_fret_nom", "gare_fret_dist",
    "aeroport_nom", "aeroport_dist", "port_nom", "port_dist",
)
#: the CNIG columns the site's other fields hold (``id``, ``name``, ``commune_insee``, ``area_ha``)
CNIG_HELD: tuple[str, ...] = ("site_id", "site_nom", "site_comm_insee", "site_surf_brute")
#: the CNIG columns a site keeps as written (its ``cnig`` object)
CNIG_KEPT: tuple[str, ...] = tuple(c for c in CNIG_COLUMNS if c not in CNIG_HELD)
#: the longest CNIG value a site keeps (a longer one, a geometry of many points, is a warning of the import)
CNIG_VALUE_MAX = 10_000


def _cnig_columns(values: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(values) - set(CNIG_KEPT))
    if unknown:
        raise ValueError(f"not a CNIG 1.0.1 column the site keeps: {', '.join(unknown)}")
    return values


CnigValue = Annotated[str, StringConstraints(min_length=1, max_length=CNIG_VALUE_MAX)]
CnigValues = Annotated[
    dict[str, CnigValue],
    AfterValidator(_cnig_columns),
    Field(json_schema_extra={"propertyNames": {"enum": list(CNIG_KEPT)}}),
]

Instant = Annotated[AwareDatetime, PlainSerializer(format_instant, return_type=str, when_used="json")]
SiteName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TerritoryId = Annotated[str, Field(pattern=TERRITORY_ID_PATTERN, examples=["ti-9303"])]

SITE_EXAMPLE: dict[str, Any] = {
    "name": "Port fluvial d'Arles",
    "commune_insee": "13004",
    "territory_id": "ti-9303",
    "area_ha": "25.00",
    "maturity": "ready",
    "land_recycling": True,
    "labelled_on": "2024-04-15",
    "workshop_held": True,
    "roadmap_delivered": False,
    "owner_kind": "entreprise",
    "status": "labelled",
}


class SiteBody(BaseModel):
    """The body of ``PUT /v1/sites/{site_id}`` (CONTRACT §4); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SITE_EXAMPLE]})

    name: SiteName = Field(description="The site's name (1 to 200 characters)")
    commune_insee: CommuneCode = Field(description="INSEE code of the commune the site lies in")
    territory_id: TerritoryId | None = Field(
        default=None, description="The Territoire d'industrie the site belongs to (must be known), or null"
    )
    area_ha: PositiveDecimal2 = Field(description="Surface in hectares, a decimal string > 0 with two decimals")
    maturity: Maturity = Field(description="ready (available now) | short_term | before_2030")
    land_recycling: StrictBool | None = Field(
        description="The site recycles already artificialised land (friche); null: unknown (a CNIG site_evol_urba that does not say)"
    )
    labelled_on: IsoDate = Field(description="The day the site was labelled")
    workshop_held: StrictBool = Field(description="The site workshop (atelier) has been held")
    roadmap_delivered: StrictBool = Field(description="The site's roadmap (feuille de route) has been delivered")
    owner_kind: OwnerKind | None = Field(
        description="Who owns the land: entreprise | collectivite | etablissement_public | association | autre; "
        "null: unknown (a CNIG site_moa_type inconnu, sans objet or outside the standard)"
    )
    status: SiteStatus = Field(description="labelled | withdrawn")
    cnig: CnigValues | None = Field(
        default=None,
        description="The CNIG « sites économiques » 1.0.1 values of the site as its inventory writes them, by "
        "column (those the other fields do not hold; empty cells left out); null: none",
        examples=[{"site_moa_type": "inconnu", "site_evol_urba": "mixte", "pole_id": "13004_POLE-ECO_00001"}],
    )

    @field_validator("cnig")
    @classmethod
    def _empty_cnig_is_none(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return value or None


class SiteResource(BaseModel):
    """A site as ``GET`` returns it and as every ``site.*`` event carries it in ``data``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "13004_SITE-ECO_00001",
                    **SITE_EXAMPLE,
                    "departement_code": "13",
                    "region_code": "93",
                    "version": 1,
                    "updated_at": "2024-04-15T09:00:00Z",
                }
            ]
        }
    )

    id: str = Field(pattern=SITE_ID_PATTERN)
    name: str
    commune_insee: CommuneCode
    territory_id: TerritoryId | None
    area_ha: PositiveDecimal2
    maturity: Maturity
    land_recycling: bool | None = Field(description="null: unknown")
    labelled_on: date
    workshop_held: bool
    roadmap_delivered: bool
    owner_kind: OwnerKind | None = Field(description="null: unknown")
    status: SiteStatus
    cnig: CnigValues | None = Field(default=None, description="The site's CNIG 1.0.1 values as written, by column")
    departement_code: DepartementCode = Field(description="Derived from commune_insee (read-only)")
    region_code: RegionCode = Field(description="Region of the département (read-only)")
    version: int = Field(ge=1, description="1 on creation, +1 on each real change")
    updated_at: Instant = Field(description="When the current version took effect")


class SiteVersionEntry(BaseModel):
    """One version of a site: what changed, when, by whom, and the whole state after it."""

    version: int = Field(ge=1)
    change: Change = Field(description="The event published for this version (site.<change>)")
    changed_at: Instant
    actor: str = Field(description="The token's sub that made the change")
    site: SiteResource


class SiteHistory(BaseModel):
    items: list[SiteVersionEntry]
    next_cursor: str | None = None


class SiteDefaults(BaseModel):
    """The programme's values for the rows of an import that do not give them (the query of
    ``POST /v1/sites/imports``: a plain CNIG inventory has none of the programme's columns)."""

    model_config = ConfigDict(extra="forbid")

    territory_id: TerritoryId | None = None
    maturity: Maturity | None = None
    land_recycling: bool | None = None
    labelled_on: IsoDate | None = None
    workshop_held: bool | None = None
    roadmap_delivered: bool | None = None
    owner_kind: OwnerKind | None = None
    status: SiteStatus | None = None


class ImportRowError(BaseModel):
    column: str | None = Field(description="The CSV column at fault (null for the row as a whole)")
    field: str | None = Field(description="The site field it maps to")
    msg: str


class ImportRow(BaseModel):
    row: int = Field(description="Line number in the file (the header is line 1)")
    site_id: str | None
    outcome: RowOutcome
    version: int | None = Field(description="The site's version after the import (null when rejected)")
    errors: list[ImportRowError] = Field(default_factory=list)
    warnings: list[ImportRowError] = Field(
        default_factory=list, description="What was read other than as written, or looks wrong (the row is imported)"
    )


class SiteImportReport(BaseModel):
    """The per-row report of an import of a CNIG « sites économiques » CSV."""

    id: str | None = Field(description="The import's id (null when an atomic import was refused)")
    mode: ImportMode
    status: Literal["applied", "refused"] = Field(
        description="applied: valid rows were written; refused: atomic import with a rejected row, nothing written"
    )
    imported_at: Instant
    actor: str
    dry_run: bool = Field(default=False, description="True (?dry_run=true): nothing was written")
    row_count: int
    counts: ImportCounts
    warnings: list[ImportRowError] = Field(
        default_factory=list, description="What the file as a whole departs from (encoding, unknown or missing columns)"
    )
    rows: list[ImportRow]
