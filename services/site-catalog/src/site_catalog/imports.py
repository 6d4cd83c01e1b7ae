"""Reading a CNIG « sites économiques » v1.0.1 file into site bodies (no I/O).

The CNIG columns (``site_id``, ``site_nom``, ``site_comm_insee``, ``site_surf_brute``, ``site_moa_type``,
``site_evol_urba``) are read as the standard defines them, every value of its enumerations mapped
(a value that does not say, ``inconnu``, ``mixte``…, gives an unknown field: null, with a warning);
every CNIG value the site's fields do not hold is kept as written in its ``cnig`` object
(docs/imports.md). The programme's own facts come in extra columns (``site_maturite``,
``site_friche``, ``site_date_label``, ``site_atelier``, ``site_feuille_route``, ``site_proprietaire``,
``site_statut``, ``territory_id``) or, for a file that has none of them (a plain CNIG inventory), as
defaults given in the query (:class:`SiteDefaults`). The header is matched by ``ti_shared.imports`` (case, accents
and separators aside); every value read other than as written is a warning of its row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from pydantic import ValidationError
from ti_shared.cells import Cell, Vocabulary, fold, read_date, read_flag, read_number, shown
from ti_shared.geo import DEPARTEMENTS, commune_code_problem, departement_of_commune
from ti_shared.imports import ImportTable, Layout, Message, header_problem, repeated
from ti_shared.types import format_decimal

from site_catalog.schemas import (
    CNIG_COLUMNS,
    CNIG_KEPT,
    CNIG_VALUE_MAX,
    MATURITIES,
    OWNER_KINDS,
    RESERVED_SITE_IDS,
    SITE_ID_PATTERN,
    STATUSES,
    ImportRowError,
    SiteBody,
    SiteDefaults,
)

T = TypeVar("T")

#: the enumerations of the CNIG columns that are checked, their values kept as written in ``cnig`` (a value
#: outside is a warning)
CNIG_CHECKED: dict[str, tuple[str, ...]] = {
    "site_type": (
        "zone d'activité économique", "site économique historique hors ZAE", "établissement économique isolé",
        "zone AU à vocation économique", "inconnu", "autre", "sans objet",
    ),
    "site_vocadomi": (
        "industrielle", "commerciale", "tertiaire", "artisanale", "touristique", "portuaire",
        "aéroportuaire, aéronautique", "entrepôts, logistique", "logistique agricole", "mixte", "inconnu", "autre",
        "sans objet",
    ),
    "site_etat": (
        "en projet", "création", "existant et actif", "projet de déclassement", "déclassé", "inconnu", "autre",
        "sans objet",
    ),
    **{
        column: ("oui", "non")
        for column in CNIG_COLUMNS
        if column.startswith(("site_voca_", "reseau_")) or column == "desserte_tc"
    },
}

#: the CNIG columns' types other than text (those of the official schema: a test compares them), checked
#: on the values a site keeps as written — a value not in the standard's form is a warning, never refused
CNIG_NUMBERS: tuple[str, ...] = (
    "site_surf_utile", "site_uf_nbre", "site_uf_vacant_nbre", "site_taux_vacance", "site_uf_bati_nbre", "site_nb_etab",
    "site_nb_emploi", "site_surf_comm_dispo", "site_surf_projet", "autoroute_echang_dist", "gare_dist", "gare_fret_dist",
    "aeroport_dist", "port_dist",
)
CNIG_DATES: dict[str, str] = {"site_creation_date": "%Y", "site_identif_date": "%Y-%m-%d", "site_actu_date": "%Y-%m-%d"}
CNIG_URLS: tuple[str, ...] = ("site_url", "site_media")
#: the columns the standard requires (those the site's fields hold are checked by their own readers)
CNIG_REQUIRED: tuple[str, ...] = (
    "pole_id", "site_type", "site_vocadomi", "site_etat", "site_surf_utile", "site_identif_date", "site_actu_date",
    "site_epci_nom", "site_epci_siren", "site_comm_nom", "site_moa_type", "site_geomsurf",
)
#: what the standard reads as no value
CNIG_MISSING = ("", "NA", "NaN", "N/A")
_CNIG_URL = re.compile(r"^(https?)://[^\s/$.?#].[^\s]*$")
_CNIG_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_CNIG_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CNIG_YEAR = re.compile(r"^[0-9]{4}$")

#: the programme's own columns → the site field each gives
PROGRAMME_COLUMNS: dict[str, str] = {
    "site_maturite": "maturity",
    "site_friche": "land_recycling",
    "site_date_label": "labelled_on",
    "site_atelier": "workshop_held",
    "site_feuille_route": "roadmap_delivered",
    "site_proprietaire": "owner_kind",
    "site_statut": "status",
    "territory_id": "territory_id",
}

LAYOUT = Layout(
    name="CNIG sites économiques 1.0.1",
    columns={
        **{c: () for c in CNIG_COLUMNS},
        **{c: () for c in PROGRAMME_COLUMNS if c != "territory_id"},
        "territory_id": ("id_ti",),
    },
    required=("site_id", "site_nom", "site_comm_insee", "site_surf_brute"),
    delimiter=None,
)

#: the field each default of the query gives, and the columns that give it instead (the first present wins)
SOURCES: dict[str, tuple[str, ...]] = {
    "maturity": ("site_maturite",),
    "land_recycling": ("site_friche", "site_evol_urba"),
    "labelled_on": ("site_date_label",),
    "workshop_held": ("site_atelier",),
    "roadmap_delivered": ("site_feuille_route",),
    "owner_kind": ("site_proprietaire", "site_moa_type"),
    "status": ("site_statut",),
    "territory_id": ("territory_id",),
}
#: fields a row may leave without a value: status → labelled, territory_id → none
OPTIONAL = {"status": "labelled", "territory_id": None}

MATURITY = Vocabulary.of(
    "maturity",
    MATURITIES,
    aliases={
        "disponible": "ready", "immédiat": "ready", "prêt": "ready", "disponible immédiatement": "ready",
        "court terme": "short_term", "à court terme": "short_term",
        "avant 2030": "before_2030", "d'ici 2030": "before_2030", "moyen terme": "before_2030",
    },
)
#: site_proprietaire: our codes and the words people write
OWNER = Vocabulary.of(
    "owner kind",
    OWNER_KINDS,
    aliases={
        "privé": "entreprise", "société": "entreprise", "collectivité": "collectivite", "commune": "collectivite",
        "EPCI": "collectivite", "département": "collectivite", "région": "collectivite",
        "collectivité territoriale": "collectivite", "établissement public": "etablissement_public",
        "EPF": "etablissement_public", "établissement public foncier": "etablissement_public", "CCI": "etablissement_public",
    },
)
#: CNIG site_moa_type, every value of its enumeration (None: the value does not name the owner)
MOA_TYPE: dict[str, str | None] = {
    "commune": "collectivite",
    "epci": "collectivite",
    "société d'économie mixte": "entreprise",
    "chambre de commerce et industrie": "etablissement_public",
    "Etat": "autre",
    "privé": "entreprise",
    "autre": "autre",
    "inconnu": None,
    "sans objet": None,
}
#: CNIG site_evol_urba → land recycling (None: the value does not say)
EVOL_URBA: dict[str, bool | None] = {
    "extension urbaine": False,
    "renouvellement urbain": True,
    "mixte": None,
    "inconnu": None,
    "autre": None,
    "sans objet": None,
}
STATUS = Vocabulary.of(
    "status", STATUSES, aliases={"labellisé": "labelled", "actif": "labelled", "retiré": "withdrawn", "sorti": "withdrawn"}
)
_TWO = Decimal("0.01")
_LOST_ZERO = re.compile(r"^[0-9]{4}$")


@dataclass
class ParsedRow:
    row: int
    site_id: str | None
    body: SiteBody | None
    errors: list[ImportRowError] = field(default_factory=list)
    warnings: list[ImportRowError] = field(default_factory=list)


def sources(table: ImportTable, defaults: SiteDefaults) -> dict[str, str | None]:
    """The column read for each field (None: the query's default); 422 naming the fields that have neither."""
    chosen: dict[str, str | None] = {}
    missing: list[Message] = []
    given = defaults.model_dump(exclude_none=True)
    for name, columns in SOURCES.items():
        column = next((c for c in columns if table.has(c)), None)
        if column is None and name not in given and name not in OPTIONAL:
            param = "?" + name + "="
            missing.append(Message(loc=["header", columns[0]], msg=f"column {' or '.join(columns)} is missing: add it or give {param}"))
        chosen[name] = column
    if missing:
        raise header_problem(missing, table.table.header)
    return chosen


def parse_rows(table: ImportTable, defaults: SiteDefaults | None = None) -> list[ParsedRow]:
    """Each data row as a site body, or the reasons it cannot be one."""
    defaults = defaults or SiteDefaults()
    columns = sources(table, defaults)
    parsed = [_parse_row(table, r.line, r.cells, columns, defaults) for r in table.rows]
    others = repeated(p.site_id for p in parsed)
    for index, p in enumerate(parsed):
        earlier = [parsed[j].row for j in others.get(index, []) if j < index]
        if earlier:
            p.errors.append(ImportRowError(column=table.written("site_id"), field="id", msg=f"repeats the site of row {earlier[0]}"))
            p.body = None
    return parsed


class _Row:
    """The notes of one row, located by the column as the file writes it."""

    def __init__(self, table: ImportTable, cells: Mapping[str, str]) -> None:
        self.table, self.cells = table, cells
        self.errors: list[ImportRowError] = []
        self.warnings: list[ImportRowError] = []

    def error(self, column: str | None, name: str | None, msg: str) -> None:
        self.errors.append(ImportRowError(column=self.table.written(column) if column else None, field=name, msg=msg))

    def warn(self, column: str | None, name: str | None, msg: str) -> None:
        self.warnings.append(ImportRowError(column=self.table.written(column) if column else None, field=name, msg=msg))

    def read(self, column: str, name: str, reader: Callable[[str], Cell[T]]) -> T | None:
        try:
            cell = reader(self.cells[column])
        except ValueError as exc:
            self.error(column, name, str(exc))
            return None
        if cell.note:
            self.warn(column, name, cell.note)
        return cell.value


def _parse_row(
    table: ImportTable, line: int, cells: dict[str, str], columns: Mapping[str, str | None], defaults: SiteDefaults
) -> ParsedRow:
    row = _Row(table, {k: v.strip() for k, v in cells.items()})
    site_id = row.cells.get("site_id") or None
    if site_id is None:
        row.error("site_id", "id", "is required")
    elif not re.fullmatch(SITE_ID_PATTERN, site_id):
        row.error("site_id", "id", "must match " + SITE_ID_PATTERN)
    elif site_id in RESERVED_SITE_IDS:
        row.error("site_id", "id", f"'{site_id}' is reserved")
    values: dict[str, Any] = {"name": row.cells.get("site_nom", ""), "commune_insee": _commune(row)}
    if not values["name"]:
        row.error("site_nom", "name", "is required")
    if row.cells.get("site_surf_brute"):
        values["area_ha"] = row.read("site_surf_brute", "area_ha", _hectares)
    for column, allowed in CNIG_CHECKED.items():
        _check(row, column, allowed)
    _check_forms(row)
    values["cnig"] = _cnig_values(row)
    given = defaults.model_dump(exclude_none=True)
    for name, source in columns.items():
        text = row.cells.get(source, "") if source else ""
        if not text:
            if name in given:
                values[name] = given[name]
            elif name in OPTIONAL:
                values[name] = OPTIONAL[name]
            else:
                row.error(source, name, f"is required (or give ?{name}= for the rows without it)")
            continue
        assert source is not None
        values[name] = _READERS[source](row, source, name, given.get(name))
    body: SiteBody | None = None
    if not row.errors:
        try:
            body = SiteBody.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors():
                at = str(err["loc"][0]) if err["loc"] else None
                where = {"name": "site_nom", "commune_insee": "site_comm_insee", "area_ha": "site_surf_brute"}.get(
                    at or "", columns.get(at or "")
                )
                row.error(where, at, str(err["msg"]).removeprefix("Value error, "))
    id_first = sorted(row.errors, key=lambda e: e.field != "id")
    return ParsedRow(line, site_id, None if row.errors else body, id_first, row.warnings)


def _cnig_values(row: _Row) -> dict[str, str]:
    """The row's CNIG values the site's other fields do not hold, as written (empty cells left out)."""
    kept: dict[str, str] = {}
    for column in CNIG_KEPT:
        text = row.cells.get(column, "")
        if len(text) > CNIG_VALUE_MAX:
            row.warn(column, "cnig", f"{shown(text)} is longer than {CNIG_VALUE_MAX} characters: not kept")
        elif text:
            kept[column] = text
    return kept


def with_current_cnig(body: SiteBody, current: Mapping[str, str] | None, table: ImportTable) -> SiteBody:
    """``body`` with the current site's CNIG values of the columns the file lacks (a file of fewer
    columns does not clear what an earlier inventory gave; a present but empty cell does)."""
    kept = {column: value for column, value in (current or {}).items() if not table.has(column)}
    if not kept:
        return body
    return body.model_copy(update={"cnig": {**kept, **(body.cnig or {})}})


def _commune(row: _Row) -> str:
    written = row.cells.get("site_comm_insee", "")
    code = written.upper()
    if _LOST_ZERO.fullmatch(code):
        code = "0" + code
    problem = commune_code_problem(code) if code else "is required"
    if problem is not None:
        row.error("site_comm_insee", "commune_insee", problem)
    elif code != written:
        note = " (a leading zero lost by a spreadsheet?)" if len(written) == 4 else ""
        row.warn("site_comm_insee", "commune_insee", f"{shown(written)} read as {code}{note}")
    return code


def _hectares(text: str) -> Cell[str]:
    """Hectares: a decimal > 0 (French forms read), kept to two decimals (more is rounded, with a note)."""
    cell = read_number(text)
    if cell.value <= 0:
        raise ValueError(f"{shown(text)} must be greater than 0")
    rounded = cell.value.quantize(_TWO, rounding=ROUND_HALF_UP)
    if rounded != cell.value:
        return Cell(format_decimal(rounded), f"{shown(text)} read as {format_decimal(rounded)} (hectares, two decimals)")
    return Cell(format_decimal(rounded), cell.note)


def _check(row: _Row, column: str, allowed: tuple[str, ...]) -> None:
    text = row.cells.get(column, "")
    if text and fold(text) not in {fold(a) for a in allowed}:
        row.warn(
            column,
            None,
            f"{shown(text)} is not a value of {column} in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
        )


def _check_forms(row: _Row) -> None:
    """The standard's required values, numbers, dates, URLs and geometry: a departure is a warning (the
    value is kept as written)."""
    cells = row.cells
    for column in CNIG_REQUIRED:
        if row.table.has(column) and cells.get(column, "") in CNIG_MISSING:
            row.warn(column, None, f"{column} is required by CNIG 1.0.1: empty")
    for column in CNIG_NUMBERS:
        text = cells.get(column, "")
        if text in CNIG_MISSING or _CNIG_NUMBER.fullmatch(text):
            continue
        try:
            value = str(read_number(text).value)
        except ValueError:
            row.warn(column, None, f"{shown(text)} is not a number (kept as written)")
        else:
            row.warn(column, None, f"{shown(text)} is not a number as CNIG 1.0.1 writes it ({value}): kept as written")
    for column, form in CNIG_DATES.items():
        text = cells.get(column, "")
        if text in CNIG_MISSING or _cnig_date_ok(text, form):
            continue
        expected = "YYYY" if form == "%Y" else "YYYY-MM-DD"
        row.warn(column, None, f"{shown(text)} is not a date as CNIG 1.0.1 writes it ({expected}): kept as written")
    for column in CNIG_URLS:
        text = cells.get(column, "")
        if text not in CNIG_MISSING and not _CNIG_URL.fullmatch(text):
            row.warn(column, None, f"{shown(text)} is not a web address (http:// or https://): kept as written")
    geometry = cells.get("site_geomsurf", "")
    if geometry not in CNIG_MISSING and not _geojson(geometry):
        row.warn("site_geomsurf", None, f"{shown(geometry)} is not a GeoJSON geometry: kept as written")


def _cnig_date_ok(text: str, form: str) -> bool:
    if form == "%Y":
        return bool(_CNIG_YEAR.fullmatch(text))
    if not _CNIG_DAY.fullmatch(text):
        return False
    try:
        read_date(text)
    except ValueError:
        return False
    return True


_GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection")


def _geojson(text: str) -> bool:
    """A GeoJSON geometry (its type and coordinates, or geometries), as far as its shape goes."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if not isinstance(value, dict) or value.get("type") not in _GEOMETRIES:
        return False
    key = "geometries" if value["type"] == "GeometryCollection" else "coordinates"
    return isinstance(value.get(key), list)


def _vocabulary(vocabulary: Vocabulary) -> Callable[[_Row, str, str, Any], Any]:
    def read(row: _Row, column: str, name: str, default: Any) -> Any:
        return row.read(column, name, vocabulary.read)

    return read


def _flag(row: _Row, column: str, name: str, default: Any) -> Any:
    return row.read(column, name, read_flag)


def _date(row: _Row, column: str, name: str, default: Any) -> date | None:
    return row.read(column, name, read_date)


def _text(row: _Row, column: str, name: str, default: Any) -> str:
    return row.cells[column]


def _unknown(row: _Row, column: str, name: str, default: Any, why: str, advice: str) -> Any:
    """The query's default, else null (unknown), for a value that does not say: with a warning
    naming it (the value itself is kept in the site's ``cnig``)."""
    text = row.cells[column]
    if default is None:
        stored = f"unknown (null; {advice})"
    else:
        stored = str(default).lower() if isinstance(default, bool) else str(default)
    row.warn(column, name, f"{shown(text)} {why}: stored as {stored}")
    return default


def _moa_type(row: _Row, column: str, name: str, default: Any) -> str | None:
    """CNIG site_moa_type: every value of the enumeration mapped; ``inconnu``/``sans objet`` and values
    outside it give the query's default, else unknown (null) — with a warning."""
    text = row.cells[column]
    by_fold = {fold(k): v for k, v in MOA_TYPE.items()}
    folded = fold(text)
    if by_fold.get(folded) is not None:
        return by_fold[folded]
    why = "does not name the owner" if folded in by_fold else f"is not a value of {column} in CNIG 1.0.1"
    value: str | None = _unknown(row, column, name, default, why, "give site_proprietaire or ?owner_kind= to say")
    return value


def _evol_urba(row: _Row, column: str, name: str, default: Any) -> bool | None:
    """CNIG site_evol_urba → land recycling; ``mixte``, ``inconnu``, ``autre``, ``sans objet`` (and values
    outside the enumeration) do not say: the query's default, else unknown (null) — with a warning."""
    text = row.cells[column]
    folded = fold(text)
    by_fold = {fold(k): v for k, v in EVOL_URBA.items()}
    if folded in by_fold and by_fold[folded] is not None:
        return bool(by_fold[folded])
    for word, value in (("renouvellement", True), ("extension", False)):
        if folded.startswith(word):
            row.warn(column, name, f"{shown(text)} read as {'renouvellement urbain' if value else 'extension urbaine'}")
            return value
    why = "does not say whether the site recycles land" if folded in by_fold else f"is not a value of {column} in CNIG 1.0.1"
    flag: bool | None = _unknown(row, column, name, default, why, "give site_friche or ?land_recycling= to say")
    return flag


_READERS: dict[str, Callable[[_Row, str, str, Any], Any]] = {
    "site_maturite": _vocabulary(MATURITY),
    "site_friche": _flag,
    "site_evol_urba": _evol_urba,
    "site_date_label": _date,
    "site_atelier": _flag,
    "site_feuille_route": _flag,
    "site_proprietaire": _vocabulary(OWNER),
    "site_moa_type": _moa_type,
    "site_statut": _vocabulary(STATUS),
    "territory_id": _text,
}


def perimeter_warning(body: SiteBody, territory: Mapping[str, Any]) -> str | None:
    """Why the site's commune lies outside its territory (its perimeter when known, else its
    départements), or None."""
    commune = body.commune_insee
    communes = territory.get("communes") or []
    departements = territory.get("departement_codes") or []
    tid = body.territory_id
    if communes:
        return None if commune in communes else f"commune {commune} is not in the perimeter of {tid} ({len(communes)} communes)"
    dep = departement_of_commune(commune)
    if not departements or dep in departements:
        return None
    name, region = DEPARTEMENTS[dep] if dep else ("?", "?")
    return f"commune {commune} ({name}, region {region}) is outside the départements of {tid} ({', '.join(departements)})"
