"""Reads ADEME's internal export of its decisions and pushes them as grant batches.

The export is ADEME's own (semicolon-separated, French decimals and dates); the platform wants the
contract's grant bodies. A push is one ``POST /v1/grant-batches`` per hundred decisions, in partial
mode, with an ``Idempotency-Key`` derived from the content: a retried push changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

OPERATOR = "ADEME"
PROGRAMME = "fonds_vert_ti_te"


def _amount(text: str) -> str:
    """``1 500 000,50`` → ``1500000.50``."""
    return text.replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace(",", ".")


def grants_from_export(text: str) -> dict[str, dict[str, Any]]:
    """``{operator_ref: grant body}`` from the export's rows."""
    grants = {}
    for row in csv.DictReader(io.StringIO(text), delimiter=";"):
        jobs = row["Emplois prévus"].strip()
        grants[row["Référence"].strip()] = {
            "programme": PROGRAMME,
            "beneficiary": {"name": row["Bénéficiaire"].strip(), "siret": row["SIRET"].replace(" ", ""), "kind": "entreprise"},
            "territory_id": row["Territoire"].strip() or None,
            "commune_insee": row["Commune"].strip() or None,
            "object": row["Objet"].strip(),
            "amount_eur": _amount(row["Montant"]),
            "investment_eur": _amount(row["Investissement"]) or None,
            "decision_date": datetime.strptime(row["Date de décision"].strip(), "%d/%m/%Y").date().isoformat(),
            "jobs_forecast": int(jobs) if jobs else None,
            "contributions": [c for c in row["Objectifs"].split("|") if c],
            "status": "cancelled" if row["Statut"].strip().lower() == "annulé" else "committed",
        }
    return grants


@dataclass
class PushReport:
    counts: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)


def push(client: httpx.Client, grants: dict[str, dict[str, Any]], *, batch_size: int = 100) -> PushReport:
    """Send ``grants`` with ``client`` (authenticated as ADEME); returns what the platform did with each row."""
    report = PushReport()
    refs = sorted(grants)
    for start in range(0, len(refs), batch_size):
        items = [{"operator": OPERATOR, "operator_ref": ref, **grants[ref]} for ref in refs[start : start + batch_size]]
        body = {"mode": "partial", "items": items}
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        response = client.post("/v1/grant-batches", json=body, headers={"Idempotency-Key": key})
        if response.status_code not in (201, 422):
            response.raise_for_status()
        batch = response.json()
        for outcome, n in batch["counts"].items():
            report.counts[outcome] = report.counts.get(outcome, 0) + n
        for row in batch["rows"]:
            if row["outcome"] == "rejected":
                report.rejected[row["operator_ref"]] = [e["msg"] for e in row["errors"]]
    return report
