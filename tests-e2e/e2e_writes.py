"""The traffic of the scenarios: what ANCT, three operators and a project lead send, with retries.
Every accepted write is mirrored in the Model."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal
from typing import Any

from e2e_harness import Api, Model, Platform
from ti_shared.streams import (
    action_payloads,
    grant_payloads,
    grants_scdl_csv,
    site_payloads,
    territory_payloads,
)

REGIONS = ["84", "93"]


async def register_territories(api: Api, p: Platform, model: Model, rng: random.Random, per_region: int = 3) -> dict[str, str]:
    """ANCT registers territories (retrying each PUT once: same body, same version)."""
    anct = p.auth("anct-registry", "territories:write")
    bodies = territory_payloads(rng, REGIONS, per_region)
    for tid, body in bodies.items():
        first = await api.put("territory-registry", f"/v1/territories/{tid}", body, anct, expect=(200, 201))
        again = await api.put("territory-registry", f"/v1/territories/{tid}", body, anct, expect=(200,))
        assert again.json()["version"] == first.json()["version"], "a retried identical PUT must not change the version"
        model.territories[tid] = body
    return {tid: b["region_code"] for tid, b in bodies.items()}


async def register_sites(api: Api, p: Platform, model: Model, rng: random.Random, territories: dict[str, str], count: int, tag: str) -> None:
    anct = p.auth("anct-sites", "sites:write")
    for sid, body in site_payloads(rng, territories, count, tag=tag).items():
        await api.put("site-catalog", f"/v1/sites/{sid}", body, anct)
        await api.put("site-catalog", f"/v1/sites/{sid}", body, anct, expect=(200,))
        model.sites[sid] = body


async def ademe_single_puts(api: Api, p: Platform, model: Model, rng: random.Random, territories: dict[str, str], tag: str) -> None:
    """ADEME pushes grants one by one, each PUT retried; amends one, pays another (retried POST)."""
    token = p.auth("ademe-push", "grants:write", operator="ADEME")
    grants = grant_payloads(rng, "ADEME", territories, 8, tag=tag)
    for (op, ref), body in grants.items():
        await api.put("funding-ledger", f"/v1/grants/{op}/{ref}", body, token)
        retry = await api.put("funding-ledger", f"/v1/grants/{op}/{ref}", body, token, expect=(200,))
        assert retry.json()["version"] == 1
        model.set_grant((op, ref), body)
    (op, ref), body = next(iter(grants.items()))
    amended = {**body, "amount_eur": f"{Decimal(body['amount_eur']) + 50000:.2f}"}
    r = await api.put("funding-ledger", f"/v1/grants/{op}/{ref}", amended, token, expect=(200,))
    assert r.json()["version"] == 2
    model.set_grant((op, ref), amended)
    payment = {"ref": "DP-1", "amount_eur": "10000.00", "paid_on": "2024-09-01"}
    key = {"Idempotency-Key": str(uuid.uuid4()), **token}
    for _attempt in range(2):
        r = await api.request("POST", "funding-ledger", f"/v1/grants/{op}/{ref}/disbursements", json=payment, headers=key)
        assert r.status_code in (200, 201), r.text[:500]
    model.disburse((op, ref), payment["amount_eur"])


async def bpi_json_batches(api: Api, p: Platform, model: Model, rng: random.Random, territories: dict[str, str], tag: str) -> None:
    """BPI sends two JSON batches, each twice with the same Idempotency-Key; then cancels one grant."""
    token = p.auth("bpi-push", "grants:write", operator="BPI")
    grants = grant_payloads(rng, "BPI", territories, 10, tag=tag)
    items = [{"operator": op, "operator_ref": ref, **body} for (op, ref), body in grants.items()]
    for chunk in (items[:5], items[5:]):
        headers = {"Idempotency-Key": str(uuid.uuid4()), **token}
        doc = {"mode": "atomic", "items": chunk}
        first = await api.request("POST", "funding-ledger", "/v1/grant-batches", json=doc, headers=headers)
        assert first.status_code == 201, first.text[:800]
        assert first.json()["counts"].get("created") == len(chunk), first.json()["counts"]
        second = await api.request("POST", "funding-ledger", "/v1/grant-batches", json=doc, headers=headers)
        assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    for key, body in grants.items():
        model.set_grant(key, body)
    (op, ref), body = list(grants.items())[-1]
    cancelled = {**body, "status": "cancelled"}
    await api.put("funding-ledger", f"/v1/grants/{op}/{ref}", cancelled, token, expect=(200,))
    model.set_grant((op, ref), cancelled)


async def bdt_csv_batch(api: Api, p: Platform, model: Model, rng: random.Random, territories: dict[str, str], tag: str) -> None:
    """Banque des Territoires sends an SCDL CSV batch, retried with the same key, then the same file again
    under a new key (every row unchanged)."""
    token = p.auth("bdt-push", "grants:write", operator="BDT")
    grants = grant_payloads(rng, "BDT", territories, 10, tag=tag)
    csv_text = grants_scdl_csv(grants, attribuant="Banque des Territoires", attribuant_siret="18002002600019")
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "text/csv", **token}
    first = await api.request("POST", "funding-ledger", "/v1/grant-batches?mode=partial", content=csv_text.encode(), headers=headers)
    assert first.status_code == 201, first.text[:1500]
    report = first.json()
    rejected = [row for row in report["rows"] if row["outcome"] == "rejected"]
    assert not rejected, rejected[:3]
    again = await api.request("POST", "funding-ledger", "/v1/grant-batches?mode=partial", content=csv_text.encode(), headers=headers)
    assert again.status_code == 201 and again.json()["id"] == report["id"]
    headers2 = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    third = await api.request("POST", "funding-ledger", "/v1/grant-batches?mode=partial", content=csv_text.encode(), headers=headers2)
    assert third.status_code == 201, third.text[:800]
    assert {row["outcome"] for row in third.json()["rows"]} == {"unchanged"}
    for key, body in grants.items():
        model.set_grant(key, body)


async def project_lead_plan(api: Api, p: Platform, model: Model, rng: random.Random, territory_id: str, tag: str) -> None:
    """A project lead writes its territory's plan: PUTs (retried), a PATCH of status, a DELETE, a plan import."""
    lead = p.auth(f"lead-{territory_id}", "actions:write", territories=(territory_id,))
    actions = action_payloads(rng, [territory_id], 8, tag=tag)
    for aid, body in actions.items():
        await api.put("action-tracker", f"/v1/actions/{aid}", body, lead)
        await api.put("action-tracker", f"/v1/actions/{aid}", body, lead, expect=(200,))
        model.actions[aid] = dict(body)
    ids = list(actions)
    r = await api.request("PATCH", "action-tracker", f"/v1/actions/{ids[0]}", json={"status": "realise", "comment": "Livré"}, headers=lead)
    assert r.status_code == 200, r.text[:500]
    model.actions[ids[0]]["status"] = "realise"
    r = await api.request("DELETE", "action-tracker", f"/v1/actions/{ids[1]}", headers=lead)
    assert r.status_code == 200, r.text[:500]
    model.actions[ids[1]]["deleted"] = True
    # the semester plan: three new actions and a status change of an existing one
    rows = ["action_id;title;axis;themes;status;budget_eur"]
    imported: dict[str, dict[str, Any]] = {}
    for n in range(3):
        aid = f"{tag}-IMP{n + 1}"
        imported[aid] = {"territory_id": territory_id, "title": f"Action importée {n + 1}", "axis": "foncier",
                         "themes": ["requalification_friche"], "status": "en_cours"}
        rows.append(f"{aid};Action importée {n + 1};foncier;requalification_friche;en_cours;15000.00")
    existing = model.actions[ids[2]]
    rows.append(f"{ids[2]};{existing['title']};{existing['axis']};{'|'.join(existing['themes'])};en_pause;{existing['budget_eur']}")
    csv_text = "\n".join(rows) + "\n"
    headers = {"Content-Type": "text/csv", "Idempotency-Key": str(uuid.uuid4()), **lead}
    path = f"/v1/actions/plan-imports?territory_id={territory_id}&mode=partial"
    first = await api.request("POST", "action-tracker", path, content=csv_text.encode(), headers=headers)
    assert first.status_code == 200, first.text[:1500]
    second = await api.request("POST", "action-tracker", path, content=csv_text.encode(), headers=headers)
    assert second.status_code == 200
    model.actions.update(imported)
    model.actions[ids[2]] = {**existing, "status": "en_pause"}


async def admin_plans(api: Api, p: Platform, model: Model, rng: random.Random, territory_ids: list[str], tag: str) -> None:
    """ANCT (admin) loads the plans of the other territories."""
    admin = p.auth("anct-admin", "admin")
    for aid, body in action_payloads(rng, territory_ids, 20, tag=tag).items():
        await api.put("action-tracker", f"/v1/actions/{aid}", body, admin)
        model.actions[aid] = body


async def partner_push(api: Api, p: Platform, model: Model, seed: int = 2024) -> dict[str, str]:
    """Scenario 1's traffic. Returns the territories (id → region)."""
    rng = random.Random(seed)
    territories = await register_territories(api, p, model, rng)
    await p.wait_settled(90)  # the replicas of action-tracker, funding-ledger and site-catalog know them now
    tids = sorted(territories)
    await asyncio.gather(
        ademe_single_puts(api, p, model, random.Random(seed + 1), territories, "S1"),
        bpi_json_batches(api, p, model, random.Random(seed + 2), territories, "S1"),
        bdt_csv_batch(api, p, model, random.Random(seed + 3), territories, "S1"),
        project_lead_plan(api, p, model, random.Random(seed + 4), tids[0], "S1"),
        admin_plans(api, p, model, random.Random(seed + 5), tids[1:], "S1ADM"),
        register_sites(api, p, model, random.Random(seed + 6), territories, 8, "S1"),
    )
    return territories
