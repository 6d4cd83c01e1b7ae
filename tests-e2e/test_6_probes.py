"""Scenario 6: probes, as an attacker would send them, across the OWASP API Security Top 10 (2023).

Each probe is one request the platform must refuse with a 4xx problem+json; after each, nothing has
changed — every entity's version (territories, actions, grants, sites) and the national indicators
are those of before the first probe — and every service process is still alive and answers /livez.
Crafted files (zip bombs, far cells…) come from ``ti_shared.hostile``, generated here."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from e2e_harness import SERVICES, Platform, Stats
from ti_shared import hostile
from ti_shared.http import encode_cursor

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Probe:
    service: str
    method: str
    path: str
    expect: tuple[int, ...]
    auth: str | None = "admin"  # a key of Targets.tokens, or a raw Authorization value after "raw:"
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] | None = None


@dataclass
class Targets:
    """What the probes aim at: existing entities of scenario 1 and tokens of every kind."""

    platform: Platform
    territory: str
    other_territory: str
    action: str
    other_action: str
    ademe_grant: str
    bpi_grant: str
    site: str
    tokens: dict[str, str] = field(default_factory=dict)

    def territory_body(self, **changes: Any) -> dict[str, Any]:
        return {"name": "Sonde", "region_code": self.territory[3:5], "departement_codes": ["01"], "epcis": [],
                "phase": "temps-2", "labelled_on": "2023-11-09", "project_lead": None,
                "launch_copil_held_on": None, "status": "active", **changes}

    def action_body(self, **changes: Any) -> dict[str, Any]:
        return {"territory_id": self.territory, "title": "Sonde", "axis": "foncier", "status": "en_cours", **changes}

    def grant_body(self, **changes: Any) -> dict[str, Any]:
        return {"programme": "fonds_vert_ti_te",
                "beneficiary": {"name": "SONDE", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
                "territory_id": None, "commune_insee": "71076", "action_id": None, "object": "Sonde",
                "amount_eur": "1000.00", "investment_eur": None, "decision_date": "2024-06-12",
                "jobs_forecast": None, "jobs_conditional": None, "contributions": [], "value_chain": None,
                "status": "committed", **changes}

    def site_body(self, **changes: Any) -> dict[str, Any]:
        return {"name": "Sonde", "commune_insee": "13004", "territory_id": None, "area_ha": "10.00",
                "maturity": "ready", "land_recycling": False, "labelled_on": "2024-04-15", "workshop_held": False,
                "roadmap_delivered": False, "owner_kind": "entreprise", "status": "labelled", **changes}


PROBES: dict[str, tuple[str, Callable[[Targets], Probe]]] = {}


def probe(name: str, category: str) -> Callable[[Callable[[Targets], Probe]], Callable[[Targets], Probe]]:
    def register(build: Callable[[Targets], Probe]) -> Callable[[Targets], Probe]:
        assert name not in PROBES, name
        PROBES[name] = (category, build)
        return build

    return register


def add(name: str, category: str, build: Callable[[Targets], Probe]) -> None:
    probe(name, category)(build)


WRITES = {
    "territory": ("territory-registry", "PUT", lambda t: f"/v1/territories/{t.territory}", Targets.territory_body),
    "action": ("action-tracker", "PUT", lambda t: f"/v1/actions/{t.action}", Targets.action_body),
    "grant": ("funding-ledger", "PUT", lambda t: f"/v1/grants/{t.ademe_grant}", Targets.grant_body),
    "site": ("site-catalog", "PUT", lambda t: f"/v1/sites/{t.site}", Targets.site_body),
}

# --- API1 broken object level authorization ----------------------------------------------------
add("bola-ademe-writes-bpi-grant", "API1", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.bpi_grant}", (403,), "ademe", json=t.grant_body(programme="rebond_industriel")))
add("bola-ademe-reads-bpi-grant", "API1", lambda t: Probe("funding-ledger", "GET", f"/v1/grants/{t.bpi_grant}", (403, 404), "ademe"))
add("bola-ademe-lists-bpi-grants", "API1", lambda t: Probe("funding-ledger", "GET", "/v1/grants", (403,), "ademe", params={"operator": "BPI"}))
add("bola-ademe-disburses-bpi-grant", "API1", lambda t: Probe("funding-ledger", "POST", f"/v1/grants/{t.bpi_grant}/disbursements", (403,), "ademe", json={"ref": "P-1", "amount_eur": "1.00", "paid_on": "2024-09-01"}))
add("bola-ademe-batch-of-bpi-grants", "API1", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (403, 422), "ademe", json={"mode": "atomic", "items": [{"operator": "BPI", "operator_ref": "SONDE-1", **t.grant_body(programme="rebond_industriel")}]}))
add("bola-lead-writes-other-territory", "API1", lambda t: Probe("action-tracker", "PUT", "/v1/actions/SONDE-LEAD-1", (403,), "lead", json=t.action_body(territory_id=t.other_territory)))
add("bola-lead-moves-action-away", "API1", lambda t: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}", (403,), "lead", json=t.action_body(territory_id=t.other_territory)))
add("bola-lead-patches-other-action", "API1", lambda t: Probe("action-tracker", "PATCH", f"/v1/actions/{t.other_action}", (403,), "lead", json={"status": "abandonne"}))
add("bola-lead-deletes-other-action", "API1", lambda t: Probe("action-tracker", "DELETE", f"/v1/actions/{t.other_action}", (403,), "lead"))
add("bola-lead-imports-other-plan", "API1", lambda t: Probe("action-tracker", "POST", "/v1/actions/plan-imports", (403,), "lead", content=b"action_id;territory_id;title;axis\nS-1;" + t.other_territory.encode() + b";T;foncier\n", content_type="text/csv", params={"territory_id": t.other_territory}))

# --- API2 broken authentication ---------------------------------------------------------------
for kind, (service, method, path_of, body_of) in WRITES.items():
    add(f"auth-none-{kind}", "API2", lambda t, s=service, m=method, p=path_of, b=body_of: Probe(s, m, p(t), (401,), None, json=b(t)))
    add(f"auth-expired-{kind}", "API2", lambda t, s=service, m=method, p=path_of, b=body_of: Probe(s, m, p(t), (401,), "expired", json=b(t)))
    add(f"auth-alg-none-{kind}", "API2", lambda t, s=service, m=method, p=path_of, b=body_of: Probe(s, m, p(t), (401,), "alg-none", json=b(t)))
    add(f"auth-other-secret-{kind}", "API2", lambda t, s=service, m=method, p=path_of, b=body_of: Probe(s, m, p(t), (401,), "other-secret", json=b(t)))
add("auth-wrong-audience", "API2", lambda t: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}", (401,), "other-audience", json=t.territory_body()))
add("auth-wrong-issuer", "API2", lambda t: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}", (401,), "other-issuer", json=t.territory_body()))
add("auth-no-sub", "API2", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (401,), "no-sub", json=t.site_body()))
add("auth-no-exp", "API2", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (401,), "no-exp", json=t.site_body()))
add("auth-basic-scheme", "API2", lambda t: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}", (401,), "raw:Basic YWRtaW46YWRtaW4=", json=t.action_body()))
add("auth-garbage-bearer", "API2", lambda t: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}", (401,), "raw:Bearer not.a.token", json=t.action_body()))
add("auth-grants-read-anonymous", "API2", lambda t: Probe("funding-ledger", "GET", "/v1/grants", (401,), None))

# --- API3 broken object property level authorization (mass assignment) --------------------------
add("mass-territory-version", "API3", lambda t: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}", (422,), json=t.territory_body(version=999)))
add("mass-grant-disbursed", "API3", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (422,), "ademe", json=t.grant_body(disbursed_eur="1000.00")))
add("mass-grant-operator", "API3", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (422,), "ademe", json=t.grant_body(operator="BPI")))
add("mass-grant-updated-at", "API3", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (422,), "ademe", json=t.grant_body(updated_at="2020-01-01T00:00:00Z")))
add("mass-site-version", "API3", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (422,), json=t.site_body(version=1)))
add("mass-action-deleted", "API3", lambda t: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}", (422,), json=t.action_body(deleted=True)))
add("mass-batch-extra-key", "API3", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", json={"mode": "atomic", "items": [], "owner": "BPI"}))

# --- API4 unrestricted resource consumption ---------------------------------------------------
for kind, (service, method, path_of, _) in WRITES.items():
    add(f"size-body-{kind}", "API4", lambda t, s=service, m=method, p=path_of: Probe(s, m, p(t), (413,), content=b'{"name": "' + b"A" * (2 * 1024 * 1024) + b'"}', content_type="application/json"))
    add(f"depth-json-{kind}", "API4", lambda t, s=service, m=method, p=path_of: Probe(s, m, p(t), (422,), content=b"[" * 50_000 + b"]" * 50_000, content_type="application/json"))
add("depth-json-batch", "API4", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), content=b'{"items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", content_type="application/json"))
add("batch-too-many-items", "API4", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (413,), json={"mode": "atomic", "items": [{}] * 10_001}))
add("list-limit-too-large", "API4", lambda t: Probe("action-tracker", "GET", "/v1/actions", (422,), None, params={"limit": "1000000"}))
IMPORTS = {
    "territories": ("territory-registry", "/v1/territories/imports", {}),
    "plan": ("action-tracker", "/v1/actions/plan-imports", {"territory_id": "TERRITORY"}),
    "sites": ("site-catalog", "/v1/sites/imports", {}),
}
for file_name, (data, statuses) in hostile.corpus().items():
    csv_like = not data.startswith(b"PK")
    for route, (service, path, params) in IMPORTS.items():
        media = "text/csv" if csv_like else XLSX

        def build(t: Targets, s: str = service, p: str = path, q: dict[str, str] = params, d: bytes = data, e: tuple[int, ...] = statuses, m: str = media) -> Probe:
            return Probe(s, "POST", p, e, content=d, content_type=m, params={k: t.territory if v == "TERRITORY" else v for k, v in q.items()})

        add(f"file-{file_name}-{route}", "API4", build)
    if csv_like:
        add(f"file-{file_name}-grant-batch", "API4", lambda t, d=data, e=statuses: Probe("funding-ledger", "POST", "/v1/grant-batches", e, content=d, content_type="text/csv"))
add("file-multipart-far-cell", "API4", lambda t: Probe("site-catalog", "POST", "/v1/sites/imports", (413,), files={"file": ("sites.xlsx", hostile.far_cell_xlsx(), XLSX)}))
add("file-multipart-csv-nul", "API4", lambda t: Probe("territory-registry", "POST", "/v1/territories/imports", (422,), files={"file": ("ti.csv", b"id_ti;lib_ti\nti-8401;A\x00B\n", "text/csv")}))
add("file-application-csv-nul", "API4", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), content=b"operator;operator_ref\nADEME;X\x00\n", content_type="application/csv"))

# --- API5 broken function level authorization -------------------------------------------------
add("bfla-grants-token-writes-territory", "API5", lambda t: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}", (403,), "ademe", json=t.territory_body()))
add("bfla-sites-token-writes-grant", "API5", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (403,), "sites", json=t.grant_body()))
add("bfla-actions-token-writes-site", "API5", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (403,), "lead", json=t.site_body()))
add("bfla-operator-writes-programme", "API5", lambda t: Probe("funding-ledger", "PUT", "/v1/programmes/sonde", (403, 422), "ademe", json={"label": "Sonde", "operators": ["ADEME"]}))
add("bfla-operator-registers-operator", "API5", lambda t: Probe("funding-ledger", "PUT", "/v1/operators/SONDE", (403, 422), "ademe", json={"label": "Sonde", "siret": None}))
add("bfla-effective-at-without-admin", "API5", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (403,), "ademe", json=t.grant_body(), headers={"TI-Effective-At": "2024-01-01T00:00:00Z"}))
add("bfla-rebuild-anonymous", "API5", lambda t: Probe("reporting", "POST", "/v1/indicators/rebuild", (401, 403, 404, 405), None))

# --- API6 unrestricted access to sensitive business flows ---------------------------------------
add("flow-programme-not-run", "API6", lambda t: Probe("funding-ledger", "PUT", "/v1/grants/ADEME/SONDE-PROG", (403,), "ademe", json=t.grant_body(programme="rebond_industriel")))
add("flow-overpaid-disbursement", "API6", lambda t: Probe("funding-ledger", "POST", f"/v1/grants/{t.ademe_grant}/disbursements", (409, 422), "ademe", json={"ref": "SONDE-P", "amount_eur": "999999999999.99", "paid_on": "2024-09-01"}))
add("flow-effective-at-future", "API6", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (422,), json=t.site_body(name="Futur"), headers={"TI-Effective-At": "2199-01-01T00:00:00Z"}))
add("flow-effective-at-before-current", "API6", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (409,), json=t.site_body(name="Passé"), headers={"TI-Effective-At": "2000-01-01T00:00:00Z"}))
add("flow-if-match-stale", "API6", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (412,), json=t.site_body(name="Périmé"), headers={"If-Match": 'W/"999"'}))

# --- API8 security misconfiguration: every error is a problem, every invalid input a 422 ----------
for service in SERVICES:
    add(f"misc-unknown-path-{service}", "API8", lambda t, s=service: Probe(s, "GET", "/nope", (404,), None))
    add(f"misc-post-livez-{service}", "API8", lambda t, s=service: Probe(s, "POST", "/livez", (405,), None))
for kind, (service, method, path_of, body_of) in WRITES.items():
    add(f"misc-media-type-{kind}", "API8", lambda t, s=service, m=method, p=path_of: Probe(s, m, p(t), (415,), content=b"<x/>", content_type="application/xml"))
    add(f"misc-invalid-utf8-{kind}", "API8", lambda t, s=service, m=method, p=path_of: Probe(s, m, p(t), (422,), content=b'{"name": "\xff\xfe"}', content_type="application/json"))
    add(f"misc-nul-escape-{kind}", "API8", lambda t, s=service, m=method, p=path_of, b=body_of: Probe(s, m, p(t), (422,), content=json.dumps(b(t, name="A\u0000B")).encode(), content_type="application/json"))
    add(f"misc-lone-surrogate-{kind}", "API8", lambda t, s=service, m=method, p=path_of: Probe(s, m, p(t), (422,), content=b'{"name": "\\ud800"}', content_type="application/json"))

# identifiers matched whole: a trailing newline is never a new key
add("id-territory-newline", "API8", lambda t: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}%0A", (404, 422), json=t.territory_body()))
add("id-grant-ref-newline", "API8", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}%0A", (404, 422), "ademe", json=t.grant_body()))
add("id-site-newline", "API8", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}%0A", (404, 422), json=t.site_body()))
add("id-action-newline", "API8", lambda t: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}%0A", (404, 422), json=t.action_body()))
add("id-commune-newline", "API8", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (422,), json=t.site_body(commune_insee="13004\n")))
add("id-batch-ref-newline", "API8", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", json={"mode": "atomic", "items": [{"operator": "ADEME", "operator_ref": t.ademe_grant.split("/", 1)[1] + "\n", **t.grant_body()}]}))
add("id-batch-csv-ref-newline", "API8", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", content=("operator;operator_ref;programme;nomBeneficiaire;idBeneficiaire;objet;montant;dateConvention;commune_insee\nADEME;\"" + t.ademe_grant.split("/", 1)[1] + "\nX\";fonds_vert_ti_te;SONDE;73282932000074;Sonde;1000;2024-06-12;71076\n").encode(), content_type="text/csv", params={"mode": "atomic"}))
add("id-territory-import-newline", "API8", lambda t: Probe("territory-registry", "POST", "/v1/territories/imports", (422,), content=("id_ti;lib_ti;code_reg\n\"" + t.territory[:5] + "\n" + t.territory[5:] + "\";Sonde;84\n").encode(), content_type="text/csv"))

# numbers range-checked before any arithmetic, as strings and as JSON integers, JSON and CSV alike
for label, value in (("string", "1" * 27), ("integer", 10**27), ("string-40", "9" * 40 + ".99"), ("negative", -5)):
    add(f"number-grant-amount-{label}", "API8", lambda t, v=value: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (422,), "ademe", json=t.grant_body(amount_eur=v)))
    add(f"number-site-area-{label}", "API8", lambda t, v=value: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (422,), json=t.site_body(area_ha=v)))
    add(f"number-action-budget-{label}", "API8", lambda t, v=value: Probe("action-tracker", "PUT", f"/v1/actions/{t.action}", (422,), json=t.action_body(budget_eur=v)))
add("number-batch-csv-montant", "API8", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", content=b"operator;operator_ref;programme;nomBeneficiaire;idBeneficiaire;objet;montant;dateConvention;commune_insee\nADEME;SONDE-N;fonds_vert_ti_te;SONDE;73282932000074;Sonde;" + b"1" * 27 + b";2024-06-12;71076\n", content_type="text/csv", params={"mode": "atomic"}))
add("number-batch-csv-jobs", "API8", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", content=b"operator;operator_ref;programme;nomBeneficiaire;idBeneficiaire;objet;montant;dateConvention;commune_insee;jobs_forecast\nADEME;SONDE-J;fonds_vert_ti_te;SONDE;73282932000074;Sonde;10;2024-06-12;71076;" + b"9" * 5000 + b"\n", content_type="text/csv", params={"mode": "atomic"}))
add("number-batch-json-amount", "API8", lambda t: Probe("funding-ledger", "POST", "/v1/grant-batches", (422,), "ademe", content=b'{"mode": "atomic", "items": [{"operator": "ADEME", "operator_ref": "SONDE-BIG", "programme": "fonds_vert_ti_te", "amount_eur": ' + b"1" * 30 + b"}]}", content_type="application/json"))

# dates and instants at the calendar's edges, on public routes too
for label, value in (("end-of-calendar", "9999-12-31"), ("start-of-calendar-offset", "0001-01-01T00:00:00+01:00"), ("end-instant", "9999-12-31T23:59:59-01:00"), ("year-zero", "0000-01-01")):
    add(f"date-as-of-{label}", "API8", lambda t, v=value: Probe("reporting", "GET", "/v1/indicators", (422,), None, params={"scope": "national", "as_of": v}))
    add(f"date-export-{label}", "API8", lambda t, v=value: Probe("reporting", "GET", "/v1/indicators/export.csv", (422,), None, params={"scope": "national", "as_of": v}))
    add(f"date-effective-at-{label}", "API8", lambda t, v=value: Probe("territory-registry", "PUT", f"/v1/territories/{t.territory}", (422,), json=t.territory_body(name="Bord"), headers={"TI-Effective-At": v}))
add("date-grant-decision-far", "API8", lambda t: Probe("funding-ledger", "PUT", f"/v1/grants/{t.ademe_grant}", (422,), "ademe", json=t.grant_body(decision_date="9999-12-31")))
add("date-site-labelled-ancient", "API8", lambda t: Probe("site-catalog", "PUT", f"/v1/sites/{t.site}", (422,), json=t.site_body(labelled_on="0001-01-01")))

# forged cursors
def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


for label, cursor in (("huge-integer", encode_cursor([10**30])), ("lone-surrogate", _raw_cursor('["\\ud800"]')), ("nested", _raw_cursor("[[[[1]]]]")), ("garbage", "%%%")):
    add(f"cursor-territories-{label}", "API8", lambda t, c=cursor: Probe("territory-registry", "GET", "/v1/territories", (422,), None, params={"cursor": c}))
    add(f"cursor-action-history-{label}", "API8", lambda t, c=cursor: Probe("action-tracker", "GET", f"/v1/actions/{t.action}/history", (422,), None, params={"cursor": c}))
    add(f"cursor-grants-{label}", "API8", lambda t, c=cursor: Probe("funding-ledger", "GET", "/v1/grants", (422,), params={"cursor": c}))
    add(f"cursor-sites-{label}", "API8", lambda t, c=cursor: Probe("site-catalog", "GET", "/v1/sites", (422,), None, params={"cursor": c}))


def _tokens(platform: Platform, territory: str) -> dict[str, str]:
    s = platform.settings

    def signed(claims: dict[str, Any], key: str = platform.secret, alg: str = "HS256") -> str:
        return jwt.encode(claims, key, algorithm=alg)

    now = int(time.time())
    base = {"iss": s.jwt_iss, "aud": s.jwt_aud, "sub": "probe", "iat": now, "exp": now + 3600, "scope": "admin"}
    return {
        "admin": platform.token("probe-admin", "admin"),
        "ademe": platform.token("probe-ademe", "grants:write", operator="ADEME"),
        "lead": platform.token("probe-lead", "actions:write", territories=(territory,)),
        "sites": platform.token("probe-sites", "sites:write"),
        "expired": platform.token("probe-admin", "admin", ttl=-60),
        "alg-none": jwt.encode(base, None, algorithm="none") if "none" in jwt.algorithms.get_default_algorithms() else "e30.e30.",
        "other-secret": signed(base, "another-secret-of-at-least-32-characters!"),
        "other-audience": signed({**base, "aud": "elsewhere"}),
        "other-issuer": signed({**base, "iss": "elsewhere"}),
        "no-sub": signed({k: v for k, v in base.items() if k != "sub"}),
        "no-exp": signed({k: v for k, v in base.items() if k != "exp"}),
    }


async def _all(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    cursor: str | None = None
    while True:
        r = await client.get(url, params={"limit": "1000", **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        page = r.json()
        out += [(str(item.get("id")), int(item["version"])) for item in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return sorted(out)


async def _state(platform: Platform, admin: dict[str, str]) -> dict[str, Any]:
    """Every entity's version and the national indicators."""
    async with httpx.AsyncClient(timeout=30) as client:
        state: dict[str, Any] = {
            "territories": await _all(client, platform.url("territory-registry") + "/v1/territories"),
            "actions": await _all(client, platform.url("action-tracker") + "/v1/actions"),
            "grants": await _all(client, platform.url("funding-ledger") + "/v1/grants", admin),
            "sites": await _all(client, platform.url("site-catalog") + "/v1/sites"),
        }
    state["indicators"] = await platform.indicators("national")
    return state


async def _alive(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            os.kill(platform.pid(service), 0)  # ProcessLookupError when the process died
            r = await client.get(platform.url(service) + "/livez")
            assert r.status_code == 200, (service, r.status_code)


_CONTEXT: dict[str, Any] = {}


async def _context(platform: Platform, pushed: dict[str, str]) -> tuple[Targets, dict[str, Any]]:
    if "targets" in _CONTEXT:
        return _CONTEXT["targets"], _CONTEXT["state"]
    await platform.wait_settled()
    admin = {"Authorization": "Bearer " + platform.token("probe-admin", "admin")}
    async with httpx.AsyncClient(timeout=30) as client:
        actions = (await client.get(platform.url("action-tracker") + "/v1/actions", params={"limit": "1000"})).json()["items"]
        grants = (await client.get(platform.url("funding-ledger") + "/v1/grants", params={"limit": "1000"}, headers=admin)).json()["items"]
        sites = (await client.get(platform.url("site-catalog") + "/v1/sites", params={"limit": "10"})).json()["items"]
    territories = sorted(pushed)
    mine = next(a for a in actions if a["territory_id"] == territories[0])
    other = next(a for a in actions if a["territory_id"] != territories[0])
    targets = Targets(
        platform=platform,
        territory=territories[0],
        other_territory=other["territory_id"],
        action=mine["id"],
        other_action=other["id"],
        ademe_grant=next(g["id"] for g in grants if g["operator"] == "ADEME" and g["status"] == "committed"),
        bpi_grant=next(g["id"] for g in grants if g["operator"] == "BPI"),
        site=sites[0]["id"],
    )
    targets.tokens = _tokens(platform, targets.territory)
    _CONTEXT["targets"], _CONTEXT["state"] = targets, await _state(platform, admin)
    return targets, _CONTEXT["state"]


def test_there_are_at_least_100_probes_over_the_top_10() -> None:
    assert len(PROBES) >= 100
    assert {c for c, _ in PROBES.values()} >= {"API1", "API2", "API3", "API4", "API5", "API6", "API8"}


@pytest.mark.parametrize("name", list(PROBES))
async def test_probe_is_refused_and_changes_nothing(platform: Platform, stats: Stats, pushed: dict[str, str], name: str) -> None:
    targets, before = await _context(platform, pushed)
    p = PROBES[name][1](targets)
    headers = dict(p.headers)
    if p.auth is not None:
        headers["Authorization"] = p.auth[4:] if p.auth.startswith("raw:") else "Bearer " + targets.tokens[p.auth]
    if p.content_type:
        headers["Content-Type"] = p.content_type
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.request(
            p.method, platform.url(p.service) + p.path, params=p.params, headers=headers,
            json=p.json if p.content is None and p.files is None else None, content=p.content, files=p.files,
        )
    stats.scenarios.setdefault("probes", {})[name] = r.status_code
    assert r.status_code in p.expect, (name, r.status_code, r.text[:400])
    assert r.headers.get("content-type", "").startswith(PROBLEM), (name, r.headers.get("content-type"), r.text[:200])
    assert r.json()["status"] == r.status_code
    await _alive(platform)
    after = await _state(platform, {"Authorization": "Bearer " + targets.tokens["admin"]})
    assert after == before, f"{name} changed something"


async def test_nothing_changed_once_settled(platform: Platform, pushed: dict[str, str]) -> None:
    """After every probe, and once every service settled: the same versions and indicators."""
    targets, before = await _context(platform, pushed)
    await asyncio.sleep(0.5)
    await platform.wait_settled()
    assert await _state(platform, {"Authorization": "Bearer " + targets.tokens["admin"]}) == before
