"""Reading a CSV in the shape of the CNIG « sites économiques » standard into site bodies (no I/O).

The CNIG columns (``site_id``, ``site_nom``, ``site_comm_insee``, ``site_surf_brute``, ``site_moa_type``,
``site_evol_urba``) are read as the standard defines them; the programme's own facts come in extra
columns (``site_maturite``, ``site_friche``, ``site_date_label``, ``site_atelier``, ``site_feuille_route``,
``site_proprietaire``, ``site_statut``, ``territory_id``). docs/site-catalog.md gives the whole mapping.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from ti_shared.problems import field_problem
from ti_shared.tabular import parse_french_decimal
from ti_shared.types import format_decimal

from site_catalog.schemas import RESERVED_SITE_IDS, SITE_ID_PATTERN, ImportRowError, SiteBody

#: the site field → the columns read for it, the first present wins
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("site_nom",),
    "commune_insee": ("site_comm_insee",),
    "territory_id": ("territory_id", "id_ti"),
    "area_ha": ("site_surf_brute",),
    "maturity": ("site_maturite",),
    "land_recycling": ("site_friche", "site_evol_urba"),
    "labelled_on": ("site_date_label",),
    "workshop_held": ("site_atelier",),
    "roadmap_delivered": ("site_feuille_route",),
    "owner_kind": ("site_proprietaire", "site_moa_type"),
    "status": ("site_statut",),
}
ID_COLUMN = "site_id"
#: fields whose column may be absent from the file (a default then applies)
OPTIONAL_FIELDS = frozenset({"territory_id", "status"})
FIRST_DATA_ROW = 2


def _key(text: str) -> str:
    """Lower case, no accents, words joined by ``_``: ``Court terme`` → ``court_terme``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


TRUE_WORDS = frozenset({"oui", "o", "true", "vrai", "1", "yes", "y", "x"})
FALSE_WORDS = frozenset({"non", "n", "false", "faux", "0", "no"})

MATURITY_WORDS: dict[str, str] = {
    "ready": "ready", "disponible": "ready", "immediat": "ready", "immediate": "ready", "pret": "ready",
    "disponible_immediatement": "ready",
    "short_term": "short_term", "court_terme": "short_term", "a_court_terme": "short_term",
    "before_2030": "before_2030", "avant_2030": "before_2030", "d_ici_2030": "before_2030", "moyen_terme": "before_2030",
}

OWNER_WORDS: dict[str, str] = {
    "entreprise": "entreprise", "prive": "entreprise", "societe": "entreprise",
    "societe_d_economie_mixte": "entreprise", "sem": "entreprise",
    "collectivite": "collectivite", "commune": "collectivite", "epci": "collectivite",
    "departement": "collectivite", "region": "collectivite", "collectivite_territoriale": "collectivite",
    "etablissement_public": "etablissement_public", "chambre_de_commerce_et_industrie": "etablissement_public",
    "cci": "etablissement_public", "epf": "etablissement_public", "etablissement_public_foncier": "etablissement_public",
    "association": "association",
    "autre": "autre", "etat": "autre",
}

STATUS_WORDS: dict[str, str] = {
    "labelled": "labelled", "labellise": "labelled", "label": "labelled", "actif": "labelled",
    "withdrawn": "withdrawn", "retire": "withdrawn", "sorti": "withdrawn",
}

#: CNIG ``site_evol_urba`` → land recycling
EVOL_URBA_WORDS: dict[str, bool] = {
    "renouvellement_urbain": True, "renouvellement": True,
    "extension_urbaine": False, "extension": False,
}

_FR_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")


def parse_flag(text: str) -> bool:
    word = _key(text)
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"'{text}' is not a yes/no value (oui/non, true/false, 1/0)")


def _from_words(words: dict[str, str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = words.get(_key(text))
        if value is None:
            raise ValueError(f"'{text}' is not a known {what} ({', '.join(sorted(set(words.values())))})")
        return value

    return parse


def parse_evol_urba(text: str) -> bool:
    value = EVOL_URBA_WORDS.get(_key(text))
    if value is None:
        raise ValueError(
            f"'{text}' does not say whether land is recycled (renouvellement urbain / extension urbaine); give site_friche"
        )
    return value


def parse_label_date(text: str) -> str:
    """``2024-04-15`` or ``15/04/2024``."""
    match = _FR_DATE.fullmatch(text.strip())
    if match:
        day, month, year = (int(g) for g in match.groups())
        try:
            return date(year, month, day).isoformat()
        except ValueError as exc:
            raise ValueError(f"'{text}' is not a date") from exc
    return text.strip()


def parse_surface(text: str) -> str:
    """Hectares, French decimals allowed (``12,5`` or ``1 250,00``) → ``"12.50"``."""
    value = parse_french_decimal(text)
    if value <= 0:
        raise ValueError(f"'{text}' must be greater than 0")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"'{text}' has more than two decimals")
    return format_decimal(value)


PARSERS: dict[str, Callable[[str], Any]] = {
    "area_ha": parse_surface,
    "maturity": _from_words(MATURITY_WORDS, "maturity"),
    "labelled_on": parse_label_date,
    "workshop_held": parse_flag,
    "roadmap_delivered": parse_flag,
    "owner_kind": _from_words(OWNER_WORDS, "owner kind"),
    "status": _from_words(STATUS_WORDS, "status"),
}


@dataclass
class ParsedRow:
    row: int
    site_id: str | None
    body: SiteBody | None
    errors: list[ImportRowError] = field(default_factory=list)


def resolve_columns(header: list[str]) -> dict[str, str]:
    """The column read for each field; 422 when a required one is missing from the file."""
    present = set(header)
    chosen: dict[str, str] = {}
    missing: list[str] = []
    if ID_COLUMN not in present:
        missing.append(ID_COLUMN)
    for name, candidates in COLUMNS.items():
        found = next((c for c in candidates if c in present), None)
        if found is not None:
            chosen[name] = found
        elif name not in OPTIONAL_FIELDS:
            missing.append(" or ".join(candidates))
    if missing:
        raise field_problem(["body", "columns"], "the file lacks the column(s): " + ", ".join(missing))
    return chosen


def parse_rows(rows: list[dict[str, str]]) -> list[ParsedRow]:
    """Each data row as a site body, or the reasons it cannot be one."""
    if not rows:
        raise field_problem(["body"], "the file has a header but no data row")
    columns = resolve_columns(list(rows[0]))
    first_row_of: dict[str, int] = {}
    parsed = []
    for index, cells in enumerate(rows):
        number = index + FIRST_DATA_ROW
        result = _parse_row(number, cells, columns)
        if result.site_id is not None and result.site_id in first_row_of:
            result.errors.append(
                ImportRowError(column=ID_COLUMN, field="id", msg=f"repeats the site of row {first_row_of[result.site_id]}")
            )
            result.body = None
        elif result.site_id is not None:
            first_row_of[result.site_id] = number
        parsed.append(result)
    return parsed


def _parse_row(number: int, cells: dict[str, str], columns: dict[str, str]) -> ParsedRow:
    id_errors: list[ImportRowError] = []
    site_id = cells.get(ID_COLUMN, "").strip() or None
    if site_id is None:
        id_errors.append(ImportRowError(column=ID_COLUMN, field="id", msg="is required"))
    elif not re.fullmatch(SITE_ID_PATTERN, site_id):
        id_errors.append(ImportRowError(column=ID_COLUMN, field="id", msg="must match " + SITE_ID_PATTERN))
    elif site_id in RESERVED_SITE_IDS:
        id_errors.append(ImportRowError(column=ID_COLUMN, field="id", msg=f"'{site_id}' is reserved"))
    errors: list[ImportRowError] = []
    values: dict[str, Any] = {}
    for name, column in columns.items():
        text = cells.get(column, "").strip()
        if not text:
            if name == "territory_id":
                values[name] = None
            elif name != "status":
                errors.append(ImportRowError(column=column, field=name, msg="is required"))
            continue
        parser = parse_evol_urba if column == "site_evol_urba" else parse_flag if name == "land_recycling" else PARSERS.get(name)
        try:
            values[name] = parser(text) if parser else text
        except ValueError as exc:
            errors.append(ImportRowError(column=column, field=name, msg=str(exc)))
    values.setdefault("status", "labelled")
    body: SiteBody | None = None
    if not errors:
        try:
            body = SiteBody.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors():
                field_name = str(err["loc"][0]) if err["loc"] else None
                msg = str(err["msg"]).removeprefix("Value error, ")
                errors.append(ImportRowError(column=columns.get(field_name or ""), field=field_name, msg=msg))
    errors = id_errors + errors
    return ParsedRow(number, site_id, None if errors else body, errors)
