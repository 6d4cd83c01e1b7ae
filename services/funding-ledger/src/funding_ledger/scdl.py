"""SCDL « subventions » 2.1.1 files, in and out (pure: no I/O). docs/imports.md describes both.

**In** (a CSV batch): the file is read against :data:`LAYOUT` (``ti_shared.imports``: headers matched
ignoring case, accents and separators), each row's cells with ``ti_shared.cells`` — every departure
from the schema a warning naming the value read. :func:`read_rows` gives, per row, the values of the
columns the file has; :func:`grant_item` completes them into a grant once the row's grant is known
(a column the file lacks keeps the grant's current value). A row's key is its ``operator_ref``
column, else a grant of the operator with the same :func:`identity`, else :func:`derived_ref` of
that identity. ``beneficiary.kind`` is read, else inferred from the RNA number, the SIREN or the
name (:func:`infer_kind`), else the batch's ``?beneficiary_kind=``, else asked for.

**Out**: :func:`scdl_values` gives the 16 SCDL columns of a grant (the stored SCDL fields, else the
documented defaults: the operator's label and SIRET, ``aide en numéraire``, …); a value equal to
that default for a field the grant leaves empty is read back as empty, so that export → import
changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from ti_shared.cells import (
    Cell,
    Vocabulary,
    fold,
    read_choices,
    read_date,
    read_flag,
    read_integer,
    read_money,
    read_number,
    shown,
)
from ti_shared.imports import ImportTable, Layout
from ti_shared.types import format_decimal, siret_problem
from ti_shared.vocabulary import BENEFICIARY_KINDS, OBJECTIVES, VALUE_CHAINS

from funding_ledger.schemas import (
    RNA_PATTERN,
    SCDL_NATURE_VALUES,
    SCDL_NATURES,
    SHARE_MAX,
    SHARE_MIN,
    Grant,
    ScdlFields,
    format_share,
)

#: the 16 columns of SCDL « subventions » 2.1.1, in the schema's order
SCDL_COLUMNS = (
    "nomAttribuant",
    "idAttribuant",
    "dateConvention",
    "referenceDecision",
    "nomBeneficiaire",
    "idBeneficiaire",
    "rnaBeneficiaire",
    "objet",
    "montant",
    "nature",
    "conditionsVersement",
    "datesPeriodeVersement",
    "idRAE",
    "notificationUE",
    "pourcentageSubvention",
    "dispositifAide",
)
#: the SCDL columns kept in the grant's ``scdl`` object (the others are grant fields)
SCDL_KEPT = tuple(ScdlFields.model_fields)
#: the platform's own columns (what SCDL does not say)
PLATFORM_COLUMNS = (
    "operator",
    "operator_ref",
    "programme",
    "territory_id",
    "commune_insee",
    "action_id",
    "investment_eur",
    "jobs_forecast",
    "jobs_conditional",
    "contributions",
    "value_chain",
    "beneficiary_kind",
    "status",
)
#: what the full export adds, ignored when it is imported back
EXPORT_EXTRA = ("disbursed_eur", "version", "updated_at")
FULL_COLUMNS = (*SCDL_COLUMNS, *PLATFORM_COLUMNS, *EXPORT_EXTRA)

LAYOUT = Layout(
    "SCDL « subventions » 2.1.1",
    columns={
        **{name: () for name in SCDL_COLUMNS},
        **{name: () for name in PLATFORM_COLUMNS},
        "beneficiary_kind": ("kind", "type_beneficiaire"),
    },
    required=("dateConvention", "nomBeneficiaire", "objet", "montant"),
    standard=SCDL_COLUMNS,
    ignored=EXPORT_EXTRA,
    ordered=True,
    delimiter=",",
)

#: the grant field (as the report locates errors) → its column
FIELD_COLUMNS = {
    "object": "objet",
    "amount_eur": "montant",
    "decision_date": "dateConvention",
    "name": "nomBeneficiaire",
    "siret": "idBeneficiaire",
    "rna": "rnaBeneficiaire",
    "kind": "beneficiary_kind",
}

_RNA = re.compile(RNA_PATTERN)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DERIVED_PREFIX = "scdl-"

KINDS = Vocabulary.of(
    "beneficiary kind",
    BENEFICIARY_KINDS,
    labels={
        "entreprise": "Entreprise",
        "collectivite": "Collectivité",
        "association": "Association",
        "etablissement_public": "Établissement public",
    },
)
OBJECTIVE_WORDS = Vocabulary.of("objective", OBJECTIVES)
VALUE_CHAIN_WORDS = Vocabulary.of("value chain", VALUE_CHAINS)
STATUS_WORDS = Vocabulary.of("status", ("committed", "cancelled"), aliases={"engagée": "committed", "annulée": "cancelled"})
NATURE_WORDS = Vocabulary.of("nature", SCDL_NATURES)
PAYMENT_WORDS = Vocabulary.of("payment condition", ("unique", "échelonné"))


# --- reading cells -------------------------------------------------------------------------------


def unescape(text: str) -> str:
    """A cell as this platform's export wrote it: the quote that neutralises a formula is dropped."""
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in _FORMULA_START else text


_FOURTEEN = re.compile(r"[0-9]{14}")


def read_siret_digits(text: str) -> Cell[str]:
    """A SIRET's 14 digits, written with spaces or dots, or as a spreadsheet's number
    (``32402138500000.0``); its checksum is the grant's rule (``Beneficiary.siret``)."""
    raw = text.strip()
    if _FOURTEEN.fullmatch(raw):
        return Cell(raw)
    digits = re.sub(r"[\s\u00a0\u202f.]", "", raw.removesuffix(".0") if re.fullmatch(r"[0-9]{14}\.0", raw) else raw)
    if not _FOURTEEN.fullmatch(digits):
        raise ValueError(f"{shown(text)} is not a SIRET (14 digits)")
    return Cell(digits, f"{shown(text)} read as {digits}")


def read_siret(text: str) -> Cell[str]:
    """:func:`read_siret_digits`, its checksum checked."""
    cell = read_siret_digits(text)
    if siret_problem(cell.value):
        raise ValueError(f"{shown(text)} is not a valid SIRET (checksum)")
    return cell


def read_rna(text: str) -> Cell[str]:
    value = text.strip().upper().replace(" ", "")
    if not _RNA.fullmatch(value):
        raise ValueError(f"{shown(text)} is not an RNA number (W then 9 digits)")
    return Cell(value, None if value == text else f"{shown(text)} read as {value}")


def read_share(text: str) -> Cell[Decimal]:
    """``pourcentageSubvention``: a decimal 0.01–1 (``0,45`` too), or a percentage (``45 %``, ``45``)."""
    raw = text.strip()
    percent = raw.endswith("%")
    number = read_number(raw.removesuffix("%").strip())
    value = number.value
    if percent or SHARE_MAX < value <= 100:
        value = value / 100
    if not SHARE_MIN <= value <= SHARE_MAX or value != value.quantize(Decimal("0.0001")):
        raise ValueError(f"{shown(text)} is not a share between 0.01 and 1 (or 1 and 100 %), at most four decimals")
    read_as = format_share(value)
    if percent or value != number.value:
        return Cell(value, f"{shown(text)} read as {read_as} (a percentage)")
    return Cell(value, f"{shown(text)} read as {read_as}" if number.note else None)


_PERIOD_SPLIT = re.compile(r"\s*(?:_|–|—|\s-\s|\sau\s|\sà\s)\s*", re.IGNORECASE)
_ISO_PERIOD = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:/([0-9]{4}-[0-9]{2}-[0-9]{2}))?")


def read_payment_dates(text: str) -> Cell[str]:
    """``datesPeriodeVersement``: ``2017-03-30`` or ``2017-03-30/2017-05-24``; also joined by ``_``,
    `` - `` or ``au``, and French dates. A period already in the schema's form is kept as written
    even when a date is impossible or the period ends before it starts (with a warning)."""
    raw = text.strip()
    match = _ISO_PERIOD.fullmatch(raw)
    if match:
        return Cell(raw, _period_note(raw, [g for g in match.groups() if g]))
    parts = [p for p in _PERIOD_SPLIT.split(re.sub(r"^du\s+", "", raw, flags=re.IGNORECASE)) if p]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"{shown(text)} is not a date or a period (YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD)")
    try:
        days = [read_date(p).value.isoformat() for p in parts]
    except ValueError as exc:
        raise ValueError(f"{shown(text)} is not a date or a period (YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD)") from exc
    value = "/".join(days)
    late = _period_note(value, days)
    return Cell(value, f"{shown(text)} read as {value}" + (f"; {late}" if late else ""))


def _period_note(text: str, days: list[str]) -> str | None:
    try:
        parsed = [date.fromisoformat(d) for d in days]
    except ValueError:
        return f"{shown(text)} holds a date that is not in the calendar: kept as written"
    if len(parsed) == 2 and parsed[1] < parsed[0]:
        return f"{shown(text)} ends before it starts: kept as written"
    return None


def read_nature(text: str) -> Cell[str]:
    cell = read_choices(text, NATURE_WORDS, separator=";")
    value = ";".join(cell.value)
    if value not in SCDL_NATURE_VALUES:
        raise ValueError(f"{shown(text)} is not a nature of SCDL ({', '.join(SCDL_NATURE_VALUES)})")
    return Cell(value, cell.note)


def read_payment_conditions(text: str) -> Cell[str]:
    """``unique`` or ``échelonné`` (``Echelonné`` read with a warning), else a description of the terms."""
    code = PAYMENT_WORDS.lookup(text)
    if code is None:
        return Cell(text.strip())
    return PAYMENT_WORDS.read(text)


def read_text(text: str) -> Cell[str]:
    value = unescape(text.strip())
    return Cell(value)


def _vocabulary(words: Vocabulary) -> Callable[[str], Cell[str]]:
    return words.read


def _choices(words: Vocabulary) -> Callable[[str], Cell[list[str]]]:
    return lambda text: read_choices(text, words, separator="|")


#: how each column's cell is read (None: an empty cell)
READERS: dict[str, Callable[[str], Cell[Any]]] = {
    "nomAttribuant": read_text,
    "idAttribuant": read_siret,
    "dateConvention": read_date,
    "referenceDecision": read_text,
    "nomBeneficiaire": read_text,
    "idBeneficiaire": read_siret,
    "rnaBeneficiaire": read_rna,
    "objet": read_text,
    "montant": read_money,
    "nature": read_nature,
    "conditionsVersement": read_payment_conditions,
    "datesPeriodeVersement": read_payment_dates,
    "idRAE": read_text,
    "notificationUE": read_flag,
    "pourcentageSubvention": read_share,
    "dispositifAide": read_text,
    "operator": read_text,
    "operator_ref": read_text,
    "programme": read_text,
    "territory_id": read_text,
    "commune_insee": read_text,
    "action_id": read_text,
    "investment_eur": read_money,
    "jobs_forecast": read_integer,
    "jobs_conditional": read_integer,
    "contributions": _choices(OBJECTIVE_WORDS),
    "value_chain": _vocabulary(VALUE_CHAIN_WORDS),
    "beneficiary_kind": _vocabulary(KINDS),
    "status": _vocabulary(STATUS_WORDS),
}


@dataclass
class Notes:
    """A row's errors (fatal: the row is rejected) and warnings, in the JSON form of the report's
    messages (``{"loc": [column], "msg": …}``), cheap to make for every cell of a file."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def error(self, column: str, msg: str) -> None:
        self.errors.append({"loc": [column], "msg": msg})

    def warn(self, column: str, msg: str) -> None:
        self.warnings.append({"loc": [column], "msg": msg})

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ScdlRow:
    """One data row of an SCDL file: the values of the columns the file has (None for an empty cell
    or one that could not be read, whose error is in ``notes``), its key once known."""

    row: int
    line: int
    values: dict[str, Any]
    notes: Notes
    operator: str | None = None
    operator_ref: str | None = None
    #: how the key was found: "column", "identity" (an existing grant's) or "derived"
    key_from: Literal["column", "identity", "derived"] | None = None

    def has(self, column: str) -> bool:
        return column in self.values

    def get(self, column: str) -> Any:
        return self.values.get(column)


#: columns whose unreadable value is a warning: the platform knows what to write instead
LENIENT = {"idAttribuant": "the operator's SIRET is written for it"}


def read_rows(table: ImportTable, default_operator: str | None) -> list[ScdlRow]:
    """Every data row's values, read (their warnings and errors in each row's notes). A text already
    read in a column is not read again: its value and messages are taken from the first time (the
    cells of a file repeat: the same nature, dates, programme, share on thousands of rows)."""
    present: list[tuple[str, Callable[[str], Cell[Any]], bool, bool, dict[str, _Read]]] = [
        (c, READERS[c], c in LENIENT, c in LAYOUT.required, {}) for c in READERS if table.has(c)
    ]
    out: list[ScdlRow] = []
    for position, raw in enumerate(table.rows, 1):
        notes = Notes()
        values: dict[str, Any] = {}
        cells = raw.cells
        for column, reader, lenient, required, seen in present:
            text = cells.get(column, "")
            known = seen.get(text)
            if known is None:
                known = seen[text] = _read_once(column, text, reader, lenient=lenient, required=required)
            value, errors, warnings = known
            values[column] = list(value) if value.__class__ is list else value
            if errors:
                notes.errors.extend({"loc": [column], "msg": m} for m in errors)
            if warnings:
                notes.warnings.extend({"loc": [column], "msg": m} for m in warnings)
        row = ScdlRow(position, raw.line, values, notes)
        row.operator = values.get("operator") or default_operator
        if row.operator is None:
            notes.error("operator", "is required (an operator column, or a token acting for an operator)")
        ref = values.get("operator_ref")
        if ref:
            row.operator_ref, row.key_from = ref, "column"
        out.append(row)
    return out


#: a cell read: its value, its errors and its warnings (messages of its column)
_Read = tuple[Any, tuple[str, ...], tuple[str, ...]]


def _read_once(column: str, text: str, reader: Callable[[str], Cell[Any]], *, lenient: bool, required: bool) -> _Read:
    if not text or text.isspace():
        return None, ("is required",) if required else (), ()
    try:
        cell = reader(text)
    except ValueError as exc:
        if lenient:
            return None, (), (f"{exc}: {LENIENT[column]}",)
        return None, (str(exc),), ()
    return cell.value, (), (cell.note,) if cell.note else ()


# --- the key of a row ----------------------------------------------------------------------------


def _words(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def identity(
    *,
    decision_ref: str | None,
    decision_date: date | None,
    siret: str | None,
    rna: str | None,
    name: str | None,
    object_: str | None,
    attributor_siret: str | None,
) -> str | None:
    """What identifies one grant of an operator in SCDL terms: its attributor (when not the operator
    itself), its decision reference and date, its beneficiary (SIRET, else RNA, else name) and its
    object — spaces and case aside. None when the date, the beneficiary or the object is missing."""
    beneficiary = siret or rna or (fold(name) if name else None)
    if decision_date is None or not beneficiary or not _words(object_):
        return None
    parts = (attributor_siret or "", _words(decision_ref), decision_date.isoformat(), beneficiary, _words(object_))
    return "\x1f".join(parts)


def grant_identity(grant: Grant) -> str | None:
    scdl = grant.scdl
    return identity(
        decision_ref=scdl.referenceDecision if scdl else None,
        decision_date=grant.decision_date,
        siret=grant.beneficiary.siret,
        rna=grant.beneficiary.rna,
        name=grant.beneficiary.name,
        object_=grant.object,
        attributor_siret=scdl.idAttribuant if scdl else None,
    )


def row_identity(row: ScdlRow, attributor: Attributor) -> str | None:
    return identity(
        decision_ref=row.get("referenceDecision"),
        decision_date=row.get("dateConvention"),
        siret=row.get("idBeneficiaire"),
        rna=row.get("rnaBeneficiaire"),
        name=row.get("nomBeneficiaire"),
        object_=row.get("objet"),
        attributor_siret=attributor.own_siret(row.get("idAttribuant")),
    )


def derived_ref(found: str) -> str:
    """The key of a grant known by its identity only: ``scdl-`` and the first 20 hexadecimal digits of
    its SHA-256."""
    return _DERIVED_PREFIX + hashlib.sha256(found.encode()).hexdigest()[:20]


def identity_days(rows: Iterable[ScdlRow], ctx: ScdlContext) -> dict[str, set[date]]:
    """For each operator, the decision dates of its rows without ``operator_ref`` (whose grants are
    looked for by their SCDL identity among the operator's grants of those dates)."""
    days: dict[str, set[date]] = {}
    for row in rows:
        day = row.get("dateConvention")
        if row.operator is not None and row.operator_ref is None and isinstance(day, date):
            days.setdefault(row.operator, set()).add(day)
    return days


def assign_keys(rows: Iterable[ScdlRow], ctx: ScdlContext, found: Mapping[tuple[str, str], Sequence[str]]) -> None:
    """The key of each row without ``operator_ref``: the grant of the operator with the row's SCDL
    identity (``found``: (operator, identity) → the references of its grants; two such grants: the row
    is rejected), else :func:`derived_ref` of that identity."""
    for row in rows:
        if row.operator is None or row.operator_ref is not None:
            continue
        own = row_identity(row, ctx.attributor(row.operator))
        if own is None:
            if row.notes.ok:
                row.notes.error("operator_ref", "is required: the row's dateConvention, beneficiary and objet do not identify a grant")
            continue
        refs = found.get((row.operator, own), [])
        if len(refs) > 1:
            named = ", ".join(f"{row.operator}/{r}" for r in refs)
            row.notes.error("operator_ref", f"matches the grants {named}: give operator_ref")
        elif refs:
            row.operator_ref, row.key_from = refs[0], "identity"
        else:
            row.operator_ref, row.key_from = derived_ref(own), "derived"


# --- the attributor, the beneficiary's kind --------------------------------------------------------


@dataclass(frozen=True)
class Attributor:
    """An operator as SCDL names the attributor: its label and SIRET."""

    code: str
    label: str
    siret: str | None = None

    def own_name(self, name: str | None) -> str | None:
        """``nomAttribuant`` as kept: None when it is the operator's label."""
        return None if name is None or fold(name) == fold(self.label) else name

    def own_siret(self, siret: str | None) -> str | None:
        """``idAttribuant`` as kept: None when it is the operator's SIRET."""
        return None if siret is None or siret == self.siret else siret


_NAME_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "association",
        ("association", "asso", "amicale", "club", "comite", "federation", "ligue", "union sportive",
         "entente sportive", "jeunesse sportive", "cercle", "foyer rural", "maison des jeunes"),
    ),
    ("entreprise", ("sa", "sas", "sasu", "sarl", "eurl", "sci", "snc", "scop", "sasp", "selarl", "societe anonyme")),
    (
        "collectivite",
        ("commune", "ville de", "mairie", "communaute de communes", "communaute d agglomeration", "communaute urbaine",
         "metropole", "conseil departemental", "departement", "conseil regional", "region", "syndicat intercommunal",
         "syndicat mixte", "sivom", "sivu", "petr"),
    ),
    (
        "etablissement_public",
        ("universite", "cnrs", "inserm", "inrae", "chambre de commerce", "cci", "chambre de metiers",
         "chambre des metiers", "chambre d agriculture", "lycee", "college", "centre hospitalier", "chu", "ccas",
         "etablissement public", "office public"),
    ),
)


def infer_kind(siret: str | None, rna: str | None, name: str | None) -> tuple[str, str] | None:
    """The beneficiary's kind and why, from what SCDL gives: an RNA number (the register of
    associations), a SIREN beginning with 2 (collectivités and their groupings) or 1 (the State and its
    public bodies), or words of its name (``ASSOCIATION``, ``CLUB``, ``SAS``, ``COMMUNAUTÉ DE
    COMMUNES``…: one kind only). None when none of them tells."""
    if rna:
        return "association", "the beneficiary has an RNA number"
    if siret and siret[0] == "2":
        return "collectivite", "its SIREN begins with 2 (a collectivité or one of its groupings)"
    if siret and siret[0] == "1":
        return "etablissement_public", "its SIREN begins with 1 (the State or one of its public bodies)"
    words = f" {fold(name or '').replace('_', ' ')} "
    found = {kind: next(w for w in keys if f" {w} " in words) for kind, keys in _NAME_KINDS if any(f" {w} " in words for w in keys)}
    if len(found) == 1:
        [(kind, word)] = found.items()
        return kind, f"its name says '{word}'"
    return None


# --- completing a row into a grant ---------------------------------------------------------------


@dataclass(frozen=True)
class ScdlContext:
    """What completing rows needs besides the row and its grant: the operator as attributor, the
    programmes (code → label) and the batch's defaults (``?programme=``, ``?beneficiary_kind=``)."""

    attributors: Mapping[str, Attributor]
    programmes: Mapping[str, str]
    programme: str | None = None
    beneficiary_kind: str | None = None
    programme_words: Vocabulary = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "programme_words", Vocabulary.of("programme", self.programmes, labels=self.programmes))

    def attributor(self, operator: str) -> Attributor:
        return self.attributors.get(operator) or Attributor(operator, operator)


#: grant field → column, for the fields a column gives directly
_DIRECT = {
    "object": "objet",
    "amount_eur": "montant",
    "decision_date": "dateConvention",
    "territory_id": "territory_id",
    "commune_insee": "commune_insee",
    "action_id": "action_id",
    "investment_eur": "investment_eur",
    "jobs_forecast": "jobs_forecast",
    "jobs_conditional": "jobs_conditional",
    "value_chain": "value_chain",
}
_NEW_GRANT: dict[str, Any] = {"contributions": [], "status": "committed"}


def grant_item(row: ScdlRow, current: Grant | None, ctx: ScdlContext) -> dict[str, Any] | None:
    """The row's grant as a batch item (its key and ``GrantBody`` fields): the file's columns over the
    grant's current state (a column the file lacks keeps it), or None when the row cannot give one
    (the reason is in its notes)."""
    assert row.operator is not None and row.operator_ref is not None
    attributor = ctx.attributor(row.operator)
    body: dict[str, Any] = dict(_NEW_GRANT)
    if current is not None:
        body = current.model_dump(include=set(_BODY_FIELDS), exclude={"scdl"})
    values = row.values
    for name, column in _DIRECT.items():
        if column in values:
            body[name] = values[column]
    if "contributions" in values:
        body["contributions"] = values["contributions"] or []
    if "status" in values:
        body["status"] = values["status"] or "committed"
    body["beneficiary"] = _beneficiary(row, current, ctx)
    body["scdl"] = _scdl(row, current, attributor)
    programme = _programme(row, current, ctx, body["scdl"])
    if programme is None:
        return None
    body["programme"] = programme
    if body["beneficiary"].get("kind") is None:
        return None
    return {"operator": row.operator, "operator_ref": row.operator_ref, **body}


_BODY_FIELDS = (
    "programme", "beneficiary", "territory_id", "commune_insee", "action_id", "object", "amount_eur", "investment_eur",
    "decision_date", "jobs_forecast", "jobs_conditional", "contributions", "value_chain", "status",
)


def _beneficiary(row: ScdlRow, current: Grant | None, ctx: ScdlContext) -> dict[str, Any]:
    found: dict[str, Any] = current.beneficiary.model_dump() if current is not None else {"kind": None}
    values = row.values
    for name, column in (("name", "nomBeneficiaire"), ("siret", "idBeneficiaire"), ("rna", "rnaBeneficiaire")):
        if column in values:
            found[name] = values[column]
    if row.get("beneficiary_kind") is not None:
        found["kind"] = row.get("beneficiary_kind")
    elif current is None or row.has("beneficiary_kind"):
        found["kind"] = _kind(row, found, ctx)
    return found


def _kind(row: ScdlRow, beneficiary: dict[str, Any], ctx: ScdlContext) -> str | None:
    inferred = infer_kind(beneficiary.get("siret"), beneficiary.get("rna"), beneficiary.get("name"))
    if inferred is not None:
        row.notes.warn("beneficiary_kind", f"taken as {inferred[0]}: {inferred[1]}")
        return inferred[0]
    if ctx.beneficiary_kind is not None:
        return ctx.beneficiary_kind
    row.notes.error(
        "beneficiary_kind",
        "cannot be told from the SIRET, the RNA number or the name: give a beneficiary_kind column or "
        "?beneficiary_kind= (" + ", ".join(BENEFICIARY_KINDS) + ")",
    )
    return None


def _programme(row: ScdlRow, current: Grant | None, ctx: ScdlContext, scdl: dict[str, Any]) -> str | None:
    """The programme column, else ``dispositifAide`` naming a programme (code or label), else the
    grant's, else ``?programme=``; ``dispositifAide`` is kept only when it names no programme."""
    named = ctx.programme_words.lookup(scdl["dispositifAide"]) if scdl.get("dispositifAide") else None
    programme = row.get("programme") or named or (current.programme if current is not None else None) or ctx.programme
    if named is not None and named == programme:
        if scdl["dispositifAide"] not in (named, ctx.programmes.get(named)):
            row.notes.warn("dispositifAide", f"{shown(scdl['dispositifAide'])} read as the programme {named}")
        scdl["dispositifAide"] = None
    if programme is None:
        row.notes.error(
            "programme", "is required: a programme column, a dispositifAide naming a programme, or ?programme=CODE"
        )
    return programme


def _scdl(row: ScdlRow, current: Grant | None, attributor: Attributor) -> dict[str, Any]:
    """The grant's SCDL fields: the file's columns over the current ones; the attributor's name and
    SIRET when they are the operator's, and a default written for a field the grant leaves empty, are
    kept empty (they are what the export writes for it)."""
    kept: dict[str, Any] = current.scdl.model_dump() if current is not None and current.scdl is not None else dict.fromkeys(SCDL_KEPT)
    defaults = scdl_defaults(current, attributor) if current is not None else {}
    values = row.values
    for column in SCDL_KEPT:
        if column not in values:
            continue
        value = values[column]
        if column == "nomAttribuant":
            value = attributor.own_name(value)
        elif column == "idAttribuant":
            value = attributor.own_siret(value)
        if value is not None and kept.get(column) is None and defaults.get(column) == value:
            value = None
        kept[column] = value
    return kept


def csv_loc(loc: list[str | int]) -> list[str | int]:
    """A grant field's location named after its SCDL column."""
    tail = [p for p in loc if p not in ("beneficiary", "scdl")]
    if tail and isinstance(tail[0], str) and tail[0] in FIELD_COLUMNS:
        return [FIELD_COLUMNS[tail[0]], *tail[1:]]
    return list(tail or loc)


# --- out -------------------------------------------------------------------------------------------


def payment_defaults(grant: Grant) -> tuple[str, str]:
    """``conditionsVersement`` and ``datesPeriodeVersement`` from what was paid: one payment, its date;
    several, the period from the first to the last; none, the decision's date."""
    paid = sorted(d.paid_on for d in grant.disbursements)
    conditions = "échelonné" if len(paid) > 1 else "unique"
    if not paid:
        return conditions, grant.decision_date.isoformat()
    if len(paid) == 1 or paid[0] == paid[-1]:
        return conditions, paid[0].isoformat()
    return conditions, f"{paid[0].isoformat()}/{paid[-1].isoformat()}"


def scdl_defaults(grant: Grant, attributor: Attributor) -> dict[str, Any]:
    """What the SCDL export writes for each SCDL field the grant leaves empty (typed as the field)."""
    conditions, dates = payment_defaults(grant)
    return {
        "nomAttribuant": attributor.label,
        "idAttribuant": attributor.siret,
        "referenceDecision": None,
        "nature": "aide en numéraire",
        "conditionsVersement": conditions,
        "datesPeriodeVersement": dates,
        "idRAE": None,
        "notificationUE": False,
        "pourcentageSubvention": Decimal("1.00"),
        "dispositifAide": grant.programme,
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, Decimal):
        return format_share(value)
    return str(value)


def scdl_values(grant: Grant, attributor: Attributor) -> dict[str, str]:
    """The 16 SCDL columns of a grant."""
    kept = grant.scdl.model_dump() if grant.scdl is not None else {}
    defaults = scdl_defaults(grant, attributor)
    chosen = {name: kept.get(name) if kept.get(name) is not None else defaults[name] for name in SCDL_KEPT}
    return {
        "nomAttribuant": _text(chosen["nomAttribuant"]),
        "idAttribuant": _text(chosen["idAttribuant"]),
        "dateConvention": grant.decision_date.isoformat(),
        "referenceDecision": _text(chosen["referenceDecision"]),
        "nomBeneficiaire": grant.beneficiary.name,
        "idBeneficiaire": grant.beneficiary.siret or "",
        "rnaBeneficiaire": grant.beneficiary.rna or "",
        "objet": grant.object,
        "montant": format_decimal(grant.amount_eur),
        "nature": _text(chosen["nature"]),
        "conditionsVersement": _text(chosen["conditionsVersement"]),
        "datesPeriodeVersement": _text(chosen["datesPeriodeVersement"]),
        "idRAE": _text(chosen["idRAE"]),
        "notificationUE": _text(chosen["notificationUE"]),
        "pourcentageSubvention": _text(chosen["pourcentageSubvention"]),
        "dispositifAide": _text(chosen["dispositifAide"]),
    }


def platform_values(grant: Grant) -> dict[str, str]:
    """The platform's columns of the full export."""
    return {
        "operator": grant.operator,
        "operator_ref": grant.operator_ref,
        "programme": grant.programme,
        "territory_id": grant.territory_id or "",
        "commune_insee": grant.commune_insee or "",
        "action_id": grant.action_id or "",
        "investment_eur": format_decimal(grant.investment_eur) if grant.investment_eur is not None else "",
        "jobs_forecast": "" if grant.jobs_forecast is None else str(grant.jobs_forecast),
        "jobs_conditional": "" if grant.jobs_conditional is None else str(grant.jobs_conditional),
        "contributions": "|".join(grant.contributions),
        "value_chain": grant.value_chain or "",
        "beneficiary_kind": grant.beneficiary.kind,
        "status": grant.status,
        "disbursed_eur": format_decimal(grant.disbursed_eur),
        "version": str(grant.version),
        "updated_at": grant.updated_at.isoformat().replace("+00:00", "Z"),
    }


Profile = Literal["scdl", "full"]


def export_columns(profile: Profile) -> tuple[str, ...]:
    return SCDL_COLUMNS if profile == "scdl" else FULL_COLUMNS


def escape_cell(value: str) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ tab or CR gets a leading quote."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_line(values: Iterable[str], delimiter: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow([escape_cell(v) for v in values])
    return buffer.getvalue()


def export_header(profile: Profile, delimiter: str) -> str:
    return csv_line(export_columns(profile), delimiter)


def export_line(grant: Grant, attributor: Attributor, profile: Profile, delimiter: str) -> str:
    values = scdl_values(grant, attributor)
    if profile == "full":
        values.update(platform_values(grant))
    return csv_line((values[c] for c in export_columns(profile)), delimiter)
