"""The SCDL « subventions » 2.1.1 layout (plus this platform's columns): CSV rows to batch items, grants to CSV.

Import: the SCDL columns give the beneficiary, object, amount and date; the extra columns give what
the platform needs (operator, programme, territory…). ``referenceDecision`` is the operator's
reference when no ``operator_ref`` column is given. Numbers may be written the French way.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ti_shared.tabular import parse_french_decimal
from ti_shared.types import format_decimal, siret_problem

from funding_ledger.schemas import Grant

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
EXTRA_COLUMNS = (
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
EXPORT_COLUMNS = (*SCDL_COLUMNS, *EXTRA_COLUMNS, "disbursed_eur", "version", "updated_at")

#: where a grant field comes from in the CSV (to name the column in the row's errors)
FIELD_COLUMNS = {
    "object": "objet",
    "amount_eur": "montant",
    "decision_date": "dateConvention",
    "name": "nomBeneficiaire",
    "siret": "idBeneficiaire",
    "rna": "rnaBeneficiaire",
    "kind": "beneficiary_kind",
}

_DATE_FR = re.compile(r"^([0-9]{2})/([0-9]{2})/([0-9]{4})$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ParsedRow:
    row: int
    item: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _iso_date(text: str) -> str:
    match = _DATE_FR.fullmatch(text)
    return f"{match.group(3)}-{match.group(2)}-{match.group(1)}" if match else text


def _decimal(text: str, column: str, errors: list[dict[str, Any]]) -> str | None:
    if not text:
        return None
    try:
        return str(parse_french_decimal(text))
    except ValueError:
        errors.append({"loc": [column], "msg": f"'{text}' is not a number"})
        return None


def _integer(text: str, column: str, errors: list[dict[str, Any]]) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", text.replace(" ", "")):
        errors.append({"loc": [column], "msg": f"'{text[:40]}' is not a whole number ≥ 0 (at most 9 digits)"})
        return None
    return int(text.replace(" ", ""))


def item_from_csv_row(number: int, cells: dict[str, str], default_operator: str | None) -> ParsedRow:
    """One CSV line as a batch item (or the errors that prevent reading it)."""
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []

    def get(column: str) -> str:
        return cells.get(column, "").strip()

    operator = get("operator") or default_operator
    if not operator:
        errors.append({"loc": ["operator"], "msg": "is required (column operator)"})
    operator_ref = get("operator_ref") or get("referenceDecision")
    if not operator_ref:
        errors.append({"loc": ["operator_ref"], "msg": "is required (column operator_ref or referenceDecision)"})
    siret = get("idBeneficiaire").replace(" ", "") or None
    rna = get("rnaBeneficiaire") or get("rna") or None
    kind = get("beneficiary_kind")
    if not kind:
        kind = "association" if rna and not siret else "entreprise"
        warnings.append({"loc": ["beneficiary_kind"], "msg": f"missing: taken as '{kind}'"})
    amount = _decimal(get("montant"), "montant", errors)
    investment = _decimal(get("investment_eur"), "investment_eur", errors)
    jobs_forecast = _integer(get("jobs_forecast"), "jobs_forecast", errors)
    jobs_conditional = _integer(get("jobs_conditional"), "jobs_conditional", errors)
    item: dict[str, Any] = {
        "operator": operator,
        "operator_ref": operator_ref,
        "programme": get("programme") or get("dispositifAide"),
        "beneficiary": {"name": get("nomBeneficiaire"), "siret": siret, "rna": rna, "kind": kind},
        "territory_id": get("territory_id") or None,
        "commune_insee": get("commune_insee") or None,
        "action_id": get("action_id") or None,
        "object": get("objet"),
        "amount_eur": amount if amount is not None else get("montant"),
        "investment_eur": investment,
        "decision_date": _iso_date(get("dateConvention")),
        "jobs_forecast": jobs_forecast,
        "jobs_conditional": jobs_conditional,
        "contributions": [c.strip() for c in get("contributions").split("|") if c.strip()],
        "value_chain": get("value_chain") or None,
        "status": get("status") or "committed",
    }
    warnings.extend(_scdl_warnings(get, amount, investment))
    return ParsedRow(number, None if errors else item, errors, warnings)


def _scdl_warnings(get: Any, amount: str | None, investment: str | None) -> list[dict[str, Any]]:
    warnings: list[dict[str, Any]] = []
    share_text = get("pourcentageSubvention")
    if share_text:
        try:
            share = parse_french_decimal(share_text)
        except ValueError:
            warnings.append({"loc": ["pourcentageSubvention"], "msg": f"'{share_text}' is not a number"})
        else:
            ratio = share / 100 if share > 1 else share
            if ratio <= 0 or ratio > 1:
                warnings.append({"loc": ["pourcentageSubvention"], "msg": "must lie between 0 and 1 (or 0 and 100 %)"})
            elif amount is not None and investment is not None and Decimal(investment) > 0:
                expected = Decimal(amount) / Decimal(investment)
                if abs(expected - ratio) > Decimal("0.01"):
                    warnings.append(
                        {
                            "loc": ["pourcentageSubvention"],
                            "msg": f"{share_text} is inconsistent with montant / investment_eur ({expected:.4f})",
                        }
                    )
    notification = get("notificationUE").lower()
    if notification and notification not in ("oui", "non", "true", "false"):
        warnings.append({"loc": ["notificationUE"], "msg": "should be oui or non"})
    conditions = get("conditionsVersement").lower()
    if conditions and conditions not in ("unique", "échelonné", "echelonne"):
        warnings.append({"loc": ["conditionsVersement"], "msg": "should be unique or échelonné"})
    id_attribuant = get("idAttribuant").replace(" ", "")
    if id_attribuant and siret_problem(id_attribuant):
        warnings.append({"loc": ["idAttribuant"], "msg": "is not a valid SIRET"})
    return warnings


def csv_loc(loc: list[str | int]) -> list[str | int]:
    """A grant field's location named after its CSV column."""
    tail = [p for p in loc if p != "beneficiary"]
    if tail and isinstance(tail[0], str) and tail[0] in FIELD_COLUMNS:
        return [FIELD_COLUMNS[tail[0]], *tail[1:]]
    return list(loc)


# --- export ----------------------------------------------------------------------------------


def escape_cell(value: str) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ tab or CR gets a leading quote."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerow([escape_cell(v) for v in values])
    return buffer.getvalue()


def export_header() -> str:
    return csv_line(list(EXPORT_COLUMNS))


def export_line(g: Grant, operators: dict[str, tuple[str, str | None]], programmes: dict[str, str]) -> str:
    label, siret = operators.get(g.operator, (g.operator, None))
    paid_on = sorted(d.paid_on for d in g.disbursements)
    if g.investment_eur:
        share = str(min(g.amount_eur / g.investment_eur, Decimal(1)).quantize(Decimal("0.0001")))
    else:
        share = "1.0000"
    values = {
        "nomAttribuant": label,
        "idAttribuant": siret or "",
        "dateConvention": g.decision_date.isoformat(),
        "referenceDecision": g.operator_ref,
        "nomBeneficiaire": g.beneficiary.name,
        "idBeneficiaire": g.beneficiary.siret or "",
        "rnaBeneficiaire": g.beneficiary.rna or "",
        "objet": g.object,
        "montant": format_decimal(g.amount_eur),
        "nature": "aide en numéraire",
        "conditionsVersement": "échelonné" if len(paid_on) > 1 else "unique",
        "datesPeriodeVersement": (
            "" if not paid_on else paid_on[0].isoformat() if len(paid_on) == 1 else f"{paid_on[0]}_{paid_on[-1]}"
        ),
        "idRAE": "",
        "notificationUE": "non",
        "pourcentageSubvention": share,
        "dispositifAide": programmes.get(g.programme, g.programme),
        "operator": g.operator,
        "operator_ref": g.operator_ref,
        "programme": g.programme,
        "territory_id": g.territory_id or "",
        "commune_insee": g.commune_insee or "",
        "action_id": g.action_id or "",
        "investment_eur": format_decimal(g.investment_eur) if g.investment_eur is not None else "",
        "jobs_forecast": "" if g.jobs_forecast is None else str(g.jobs_forecast),
        "jobs_conditional": "" if g.jobs_conditional is None else str(g.jobs_conditional),
        "contributions": "|".join(g.contributions),
        "value_chain": g.value_chain or "",
        "beneficiary_kind": g.beneficiary.kind,
        "status": g.status,
        "disbursed_eur": format_decimal(g.disbursed_eur),
        "version": str(g.version),
        "updated_at": g.updated_at.isoformat().replace("+00:00", "Z"),
    }
    return csv_line([values[c] for c in EXPORT_COLUMNS])
