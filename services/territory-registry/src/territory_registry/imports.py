"""Reading ANCT's published files into territory states (pure: no I/O).

Three layouts of file (see docs/territory-registry.md and docs/imports.md):

- ``territories``, one row per territory: ``id_ti;lib_ti;code_reg;codes_dep;phase;…``
- ``territories``, ANCT's commune-level list as published on data.gouv (told by its ``insee_com``
  column): ``insee_com;lib_com;id_ti;lib_ti``, one row per commune of a territory's perimeter
  (:func:`commune_list_candidates`).
- ``groupements``: ``id_ti;lib_groupement;siren_groupement`` — the EPCIs listed for a territory
  replace its EPCI list.

Rows are numbered as in a spreadsheet: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from pydantic import ValidationError
from ti_shared.cells import Cell, Vocabulary, read_date, read_flag, shown
from ti_shared.geo import DEPARTEMENTS, REGIONS, commune_code_problem, departement_of_commune
from ti_shared.imports import ImportTable, Layout, fold_header
from ti_shared.problems import clean_pydantic_errors

from territory_registry.domain import state_problems
from territory_registry.schemas import TerritoryFields

T = TypeVar("T")
_ID = re.compile(r"^ti-[0-9]{4}$")
FIRST_DATA_ROW = 2

#: canonical column → accepted header spellings (compared without case or accents)
TERRITORY_COLUMNS: dict[str, tuple[str, ...]] = {
    "id_ti": ("id_ti",),
    "lib_ti": ("lib_ti", "nom_ti"),
    "code_reg": ("code_reg", "insee_reg", "reg"),
    "codes_dep": ("codes_dep", "code_dep", "insee_dep", "deps"),
    "phase": ("phase",),
    "date_labellisation": ("date_labellisation", "date_label"),
    "statut": ("statut", "status"),
    "chef_projet_en_poste": ("chef_projet_en_poste", "cp_en_poste"),
    "chef_projet_cofinance": ("chef_projet_cofinance", "cp_cofinance"),
    "chef_projet_nom": ("chef_projet_nom", "cp_nom"),
    "chef_projet_email": ("chef_projet_email", "cp_email"),
    "date_copil_lancement": ("date_copil_lancement", "date_copil"),
}
TERRITORY_REQUIRED = ("id_ti", "lib_ti", "code_reg")

GROUPEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id_ti": ("id_ti",),
    "lib_groupement": ("lib_groupement", "nom_groupement", "lib_epci"),
    "siren_groupement": ("siren_groupement", "siren_epci", "siren"),
}
GROUPEMENT_REQUIRED = ("id_ti", "lib_groupement", "siren_groupement")

#: body field → column of the territories file, for error locations
_FIELD_COLUMN = {
    "name": "lib_ti",
    "region_code": "code_reg",
    "departement_codes": "codes_dep",
    "phase": "phase",
    "labelled_on": "date_labellisation",
    "status": "statut",
    "launch_copil_held_on": "date_copil_lancement",
}
_LEAD_COLUMN = {
    "in_post": "chef_projet_en_poste",
    "cofinanced": "chef_projet_cofinance",
    "name": "chef_projet_nom",
    "email": "chef_projet_email",
}
_LEAD_COLUMNS = tuple(_LEAD_COLUMN.values())

#: the column statut: our codes and ANCT's words
STATUS = Vocabulary.of("status", ("active", "withdrawn"), aliases={"actif": "active", "retiré": "withdrawn", "sorti": "withdrawn"})
#: ANCT writes its dates day first: ``09/11/2023`` is this file's plain form (read without a warning)
_FR_DATE = re.compile(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$")


@dataclass
class Candidate:
    """One territory of the file: its new state, or why it is rejected."""

    rows: list[int]
    territory_id: str | None
    fields: TerritoryFields | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def row_number(index: int) -> int:
    return index + FIRST_DATA_ROW


def file_territory_ids(rows: Sequence[Mapping[str, str]], id_column: str) -> set[str]:
    return {r.get(id_column, "").strip() for r in rows if _ID.fullmatch(r.get(id_column, "").strip())}


class _Cells:
    """The notes of one row of a territories file: every value read through ``ti_shared.cells``, a
    value read other than as written a warning naming it, one that cannot be read an error."""

    def __init__(self, row: int, columns: Mapping[str, str], errors: list[dict[str, Any]], warnings: list[dict[str, Any]]) -> None:
        self.row, self.columns, self.errors, self.warnings = row, columns, errors, warnings

    def read(self, canonical: str, text: str, reader: Callable[[str], Cell[T]]) -> T | None:
        loc = ["row", self.row, self.columns.get(canonical, canonical)]
        try:
            cell = reader(text)
        except ValueError as exc:
            self.errors.append({"loc": loc, "msg": str(exc)})
            return None
        if cell.note:
            self.warnings.append({"loc": loc, "msg": cell.note})
        return cell.value

    def date(self, canonical: str, text: str) -> str | None:
        """A date in any form of ``read_date`` (empty: none); an unreadable one is an error of its cell."""
        if not text:
            return None
        day = self.read(canonical, text, _plain_fr_date if _FR_DATE.fullmatch(text) else read_date)
        return day.isoformat() if day is not None else None

    def flag(self, canonical: str, text: str) -> bool:
        """A yes/no cell (empty: no)."""
        if not text:
            return False
        value: bool | None = self.read(canonical, text, read_flag)
        return bool(value)


def _plain_fr_date(text: str) -> Cell[date]:
    """``dd/mm/yyyy``, as ANCT writes its dates: this file's plain form, read without a note."""
    return Cell(read_date(text).value)


def _codes(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[|,;/ ]+", text) if c.strip()]


def _field_errors(exc: ValidationError, locate: Any) -> list[dict[str, Any]]:
    return [{"loc": ["row", *locate(e["loc"])], "msg": e["msg"]} for e in clean_pydantic_errors(exc.errors())]


def _territory_loc(row: int, columns: Mapping[str, str]) -> Any:
    def locate(loc: list[str | int]) -> list[str | int]:
        head = str(loc[0]) if loc else ""
        if head == "project_lead" and len(loc) > 1:
            canonical = _LEAD_COLUMN.get(str(loc[1]), "project_lead")
        else:
            canonical = _FIELD_COLUMN.get(head, head)
        return [row, columns.get(canonical, canonical)]

    return locate


def territory_candidates(
    rows: Sequence[Mapping[str, str]],
    columns: Mapping[str, str],
    current: Mapping[str, dict[str, Any]],
    lines: Sequence[int] | None = None,
) -> list[Candidate]:
    """One candidate per row of a territories file.

    A column absent from the file keeps the territory's current value (or the default for a new
    territory); a present but empty cell clears an optional value.
    """
    out: list[Candidate] = []
    first_row_of: dict[str, int] = {}
    for index, raw in enumerate(rows):
        row = lines[index] if lines is not None else row_number(index)

        def cell(canonical: str, raw: Mapping[str, str] = raw) -> str:
            return raw.get(columns[canonical], "").strip()

        territory_id = cell("id_ti")
        if not _ID.fullmatch(territory_id):
            msg = f"'{territory_id}' is not a territory id (ti- then 4 digits, e.g. ti-8402)"
            out.append(Candidate([row], territory_id or None, errors=[{"loc": ["row", row, columns["id_ti"]], "msg": msg}]))
            continue
        if territory_id in first_row_of:
            msg = f"{territory_id} already appears at row {first_row_of[territory_id]}"
            out.append(Candidate([row], territory_id, errors=[{"loc": ["row", row, columns["id_ti"]], "msg": msg}]))
            continue
        first_row_of[territory_id] = row
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        read = _Cells(row, columns, errors, warnings)
        state: dict[str, Any] = dict(current.get(territory_id) or {"epcis": []})
        state["name"] = cell("lib_ti")
        state["region_code"] = cell("code_reg")
        if "codes_dep" in columns:
            state["departement_codes"] = _codes(cell("codes_dep"))
        if "phase" in columns:
            state["phase"] = cell("phase") or None
        if "date_labellisation" in columns:
            state["labelled_on"] = read.date("date_labellisation", cell("date_labellisation"))
        if "date_copil_lancement" in columns:
            state["launch_copil_held_on"] = read.date("date_copil_lancement", cell("date_copil_lancement"))
        if "statut" in columns:
            status = cell("statut")
            code = read.read("statut", status, STATUS.read) if status else "active"
            if code is not None:  # else the row is rejected, the error naming the value
                state["status"] = code
        if any(c in columns for c in _LEAD_COLUMNS):
            lead = {key: cell(column) if column in columns else "" for key, column in _LEAD_COLUMN.items()}
            if any(lead.values()):
                state["project_lead"] = {
                    "in_post": read.flag("chef_projet_en_poste", lead["in_post"]),
                    "cofinanced": read.flag("chef_projet_cofinance", lead["cofinanced"]),
                    "name": lead["name"] or None,
                    "email": lead["email"] or None,
                }
            else:
                state["project_lead"] = None
        state.pop("id", None)
        state.pop("version", None)
        state.pop("updated_at", None)
        candidate = _validated([row], territory_id, state, errors, _territory_loc(row, columns))
        candidate.warnings = warnings
        out.append(candidate)
    return out


def groupement_candidates(
    rows: Sequence[Mapping[str, str]],
    columns: Mapping[str, str],
    current: Mapping[str, dict[str, Any]],
    lines: Sequence[int] | None = None,
) -> list[Candidate]:
    """One candidate per territory of a groupements file: its EPCI list replaced by the file's rows."""
    bad_rows: list[Candidate] = []
    groups: dict[str, list[tuple[int, str, str]]] = {}
    notes: dict[str, list[dict[str, Any]]] = {}
    for index, raw in enumerate(rows):
        row = lines[index] if lines is not None else row_number(index)
        territory_id = raw.get(columns["id_ti"], "").strip()
        if not _ID.fullmatch(territory_id):
            msg = f"'{territory_id}' is not a territory id (ti- then 4 digits, e.g. ti-8402)"
            bad_rows.append(Candidate([row], territory_id or None, errors=[{"loc": ["row", row, columns["id_ti"]], "msg": msg}]))
            continue
        written = raw.get(columns["siren_groupement"], "").strip()
        siren = re.sub(r"[\s\u00a0\u202f.]", "", written)
        if siren != written:
            notes.setdefault(territory_id, []).append(
                {"loc": ["row", row, columns["siren_groupement"]], "msg": f"{shown(written)} read as {siren}"}
            )
        name = raw.get(columns["lib_groupement"], "").strip()
        groups.setdefault(territory_id, []).append((row, siren, name))
    out: list[Candidate] = []
    for territory_id, members in groups.items():
        row_numbers = [m[0] for m in members]
        existing = current.get(territory_id)
        if existing is None:
            msg = f"territory {territory_id} is not registered: import the territories file first"
            out.append(Candidate(row_numbers, territory_id, errors=[{"loc": ["row", row_numbers[0], columns["id_ti"]], "msg": msg}]))
            continue
        state = {k: v for k, v in existing.items() if k not in ("id", "version", "updated_at")}
        state["epcis"] = [{"siren": siren, "name": name} for _, siren, name in members]

        def locate(loc: list[str | int], members: list[tuple[int, str, str]] = members) -> list[str | int]:
            if len(loc) >= 2 and loc[0] == "epcis" and isinstance(loc[1], int) and loc[1] < len(members):
                column = columns["siren_groupement"] if len(loc) < 3 or loc[2] == "siren" else columns["lib_groupement"]
                return [members[loc[1]][0], column]
            return [members[0][0], str(loc[0]) if loc else "row"]

        candidate = _validated(row_numbers, territory_id, state, [], locate)
        candidate.warnings = notes.get(territory_id, [])
        out.append(candidate)
    return sorted(bad_rows + out, key=lambda c: c.rows[0])


def _validated(
    rows: list[int], territory_id: str, state: dict[str, Any], errors: list[dict[str, Any]], locate: Any
) -> Candidate:
    problems = [{"loc": ["row", *locate(p["loc"])], "msg": p["msg"]} for p in state_problems(state)]
    try:
        fields = TerritoryFields.model_validate(state)
    except ValidationError as exc:
        return Candidate(rows, territory_id, errors=errors + _field_errors(exc, locate) + problems)
    errors = errors + problems
    if errors:
        return Candidate(rows, territory_id, errors=errors)
    return Candidate(rows, territory_id, fields=fields)


# --- the layouts of the files ----------------------------------------------------------------


def _layout(name: str, columns: Mapping[str, tuple[str, ...]], required: tuple[str, ...]) -> Layout:
    return Layout(name=name, columns={c: tuple(s for s in spellings if s != c) for c, spellings in columns.items()}, required=required)


#: ANCT's list with one row per territory
TERRITORY_LIST = _layout("ANCT's territories list", TERRITORY_COLUMNS, TERRITORY_REQUIRED)
#: ANCT's groupements file (one row per EPCI)
GROUPEMENT_LIST = _layout("ANCT's groupements file", GROUPEMENT_COLUMNS, GROUPEMENT_REQUIRED)


# --- ANCT's commune-level list ---------------------------------------------------------------

#: ANCT's list of the communes of each territory (``liste-ti-com…csv`` on data.gouv)
COMMUNE_LIST = Layout(
    name="ANCT's commune-level list",
    columns={"insee_com": ("code_insee", "codgeo"), "id_ti": (), "lib_ti": ("nom_ti",)},
    required=("insee_com", "id_ti", "lib_ti"),
    standard=("insee_com", "id_ti", "lib_ti"),
    #: the commune's name: the INSEE code identifies it (not stored)
    ignored=("lib_com", "nom_com"),
)
_ANY_CASE_ID = re.compile(r"^ti-[0-9]{4}$", re.IGNORECASE)
_LOST_ZERO = re.compile(r"^[0-9]{4}$")


def is_commune_list(header: Sequence[str]) -> bool:
    """A territories file is ANCT's commune-level list when one of its columns is the commune's code."""
    spellings = {fold_header(s) for s in ("insee_com", *COMMUNE_LIST.columns["insee_com"])}
    return any(fold_header(h) in spellings for h in header)


@dataclass
class _Perimeter:
    """What the rows of one ``id_ti`` say: its names (with their first row) and its communes."""

    rows: list[int] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    communes: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def commune_list_candidates(table: ImportTable, current: Mapping[str, dict[str, Any]]) -> list[Candidate]:
    """One candidate per ``id_ti`` of ANCT's commune-level list.

    The territory's ``name`` is its ``lib_ti`` (every row of it must give the same one); its
    ``region_code`` the first two digits of its id (ANCT numbers territories by region), refused
    when they are no region; its ``communes`` the sorted INSEE codes of its rows and its
    ``departement_codes`` their départements. Its other fields are kept (a new territory gets the
    defaults). A row that cannot be read rejects its territory (its perimeter would be incomplete).
    """
    id_col, com_col, name_col = (table.written(c) for c in ("id_ti", "insee_com", "lib_ti"))
    bad_rows: list[Candidate] = []
    perimeters: dict[str, _Perimeter] = {}
    territory_of_commune: dict[str, tuple[str, int]] = {}
    for row in table.rows:
        line = row.line
        written_id = row.get("id_ti").strip()
        territory_id = written_id.lower()
        if not _ANY_CASE_ID.fullmatch(written_id):
            msg = f"'{written_id}' is not a territory id (ti- then 4 digits, e.g. ti-8402)"
            bad_rows.append(Candidate([line], written_id or None, errors=[{"loc": ["row", line, id_col], "msg": msg}]))
            continue
        perimeter = perimeters.setdefault(territory_id, _Perimeter())
        perimeter.rows.append(line)
        if written_id != territory_id:
            perimeter.warnings.append({"loc": ["row", line, id_col], "msg": f"'{written_id}' read as {territory_id}"})
        name = " ".join(row.get("lib_ti").split())
        if name:
            perimeter.names.setdefault(name, line)
        else:
            perimeter.warnings.append({"loc": ["row", line, name_col], "msg": f"no lib_ti on this row of {territory_id}"})
        code = _commune_code(row.get("insee_com"), line, com_col, perimeter)
        if code is None:
            continue
        if code in perimeter.communes:
            msg = f"commune {code} is already listed for {territory_id} at row {perimeter.communes[code]}: kept once"
            perimeter.warnings.append({"loc": ["row", line, com_col], "msg": msg})
            continue
        perimeter.communes[code] = line
        other = territory_of_commune.setdefault(code, (territory_id, line))
        if other[0] != territory_id:
            msg = f"commune {code} is also in the perimeter of {other[0]} (row {other[1]})"
            perimeter.warnings.append({"loc": ["row", line, com_col], "msg": msg})
    out = [_perimeter_candidate(i, p, current, (id_col, com_col, name_col)) for i, p in perimeters.items()]
    return sorted(bad_rows + out, key=lambda c: c.rows[0])


def _commune_code(text: str, line: int, column: str, perimeter: _Perimeter) -> str | None:
    written = text.strip()
    code = written.upper()
    if _LOST_ZERO.fullmatch(code):
        code = "0" + code
    problem = commune_code_problem(code) if code else "no INSEE commune code"
    if problem is not None:
        perimeter.errors.append({"loc": ["row", line, column], "msg": f"'{written}': {problem}" if written else problem})
        return None
    if code != written:
        note = " (a leading zero lost by a spreadsheet?)" if len(written) == 4 else ""
        perimeter.warnings.append({"loc": ["row", line, column], "msg": f"'{written}' read as {code}{note}"})
    return code


def _perimeter_candidate(
    territory_id: str, perimeter: _Perimeter, current: Mapping[str, dict[str, Any]], written: tuple[str, str, str]
) -> Candidate:
    id_col, com_col, name_col = written
    rows, errors, warnings = perimeter.rows, perimeter.errors, perimeter.warnings
    first = rows[0]
    region = territory_id[3:5]
    if region not in REGIONS:
        msg = (
            f"{territory_id}: its first two digits {region} are not an INSEE region code "
            "(ANCT numbers each territory after its region: ti-8402 is in region 84)"
        )
        errors.append({"loc": ["row", first, id_col], "msg": msg})
    if len(perimeter.names) > 1:
        variants = ", ".join(f"'{n}' (row {r})" for n, r in perimeter.names.items())
        errors.append({"loc": ["row", first, name_col], "msg": f"the rows of {territory_id} give different names: {variants}"})
    elif not perimeter.names:
        errors.append({"loc": ["row", first, name_col], "msg": f"no row of {territory_id} gives its name (lib_ti)"})
    if errors:
        return Candidate(rows, territory_id, errors=errors, warnings=warnings)
    communes = sorted(perimeter.communes)
    departements = sorted({d for c in communes if (d := departement_of_commune(c)) is not None})
    for dep in departements:
        dep_name, dep_region = DEPARTEMENTS[dep]
        if dep_region != region:
            line = min(r for c, r in perimeter.communes.items() if departement_of_commune(c) == dep)
            msg = (
                f"communes of {dep_name} ({dep}, region {dep_region}) are in the perimeter of {territory_id}, "
                f"whose region is {region}: kept (a territory may span regions)"
            )
            warnings.append({"loc": ["row", line, com_col], "msg": msg})
    state: dict[str, Any] = {
        k: v for k, v in (current.get(territory_id) or {}).items() if k not in ("id", "version", "updated_at")
    }
    state.update(
        name=next(iter(perimeter.names)), region_code=region, departement_codes=departements, communes=communes
    )

    def locate(loc: list[str | int]) -> list[str | int]:
        return [first, str(loc[0]) if loc else "row"]

    candidate = _validated(rows, territory_id, state, [], locate)
    candidate.warnings = warnings
    return candidate
