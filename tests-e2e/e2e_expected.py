"""The indicators of CONTRACT §6 computed by the suite from what it wrote (independently of reporting)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from e2e_harness import Model
from ti_shared.geo import departement_of_commune, region_of_departement
from ti_shared.streams import ACTION_STATUSES, AXES, MATURITIES, THEMES


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"


def _in_scope(scope: str, region: str | None, territory_id: str | None) -> bool:
    if scope == "national":
        return True
    kind, _, code = scope.partition(":")
    if kind == "region":
        return region == code
    return territory_id == code


def expected_indicators(model: Model, scope: str) -> dict[str, Any]:
    """The main figures of ``scope`` (``national``, ``region:<code>``, ``territory:<id>``)."""
    region_of_territory = {tid: t["region_code"] for tid, t in model.territories.items()}
    out: dict[str, Any] = {}

    territories = [
        (tid, t) for tid, t in model.territories.items()
        if t["status"] == "active" and _in_scope(scope, t["region_code"], tid)
    ]
    out["territories.count"] = len(territories)
    out["territories.epci_count"] = len({e["siren"] for _, t in territories for e in t["epcis"]})
    out["territories.region_count"] = len({t["region_code"] for _, t in territories})
    out["territories.project_leads_in_post"] = sum(1 for _, t in territories if (t["project_lead"] or {}).get("in_post"))
    out["territories.project_leads_cofinanced"] = sum(1 for _, t in territories if (t["project_lead"] or {}).get("cofinanced"))
    out["territories.launch_copil_held"] = sum(1 for _, t in territories if t["launch_copil_held_on"])

    actions = [
        a for a in model.actions.values()
        if not a.get("deleted") and _in_scope(scope, region_of_territory.get(a["territory_id"]), a["territory_id"])
    ]
    out["actions.count"] = len(actions)
    out["actions.by_status"] = {s: sum(1 for a in actions if a.get("status", "non_renseigne") == s) for s in ACTION_STATUSES}
    out["actions.by_axis"] = {x: sum(1 for a in actions if a["axis"] == x) for x in AXES}
    out["actions.by_theme"] = {t: sum(1 for a in actions if t in a.get("themes", [])) for t in THEMES}

    grants = []
    for g in model.grants.values():
        if g["status"] != "committed":
            continue
        dep = departement_of_commune(g["commune_insee"]) if g.get("commune_insee") else None
        region = region_of_departement(dep) if dep else region_of_territory.get(g.get("territory_id") or "")
        if _in_scope(scope, region, g.get("territory_id")):
            grants.append((g, dep))
    out["grants.count"] = len(grants)
    out["grants.amount_eur"] = _money(sum((Decimal(g["amount_eur"]) for g, _ in grants), Decimal(0)))
    out["grants.investment_eur"] = _money(sum((Decimal(g["investment_eur"] or 0) for g, _ in grants), Decimal(0)))
    out["grants.disbursed_eur"] = _money(sum((Decimal(g["disbursed_eur"]) for g, _ in grants), Decimal(0)))
    out["grants.jobs_forecast"] = sum(g["jobs_forecast"] or 0 for g, _ in grants)
    out["grants.jobs_conditional"] = sum(g["jobs_conditional"] or 0 for g, _ in grants)
    out["grants.territory_count"] = len({g["territory_id"] for g, _ in grants if g.get("territory_id")})
    out["grants.departement_count"] = len({dep for _, dep in grants if dep})
    by_programme: dict[str, dict[str, Any]] = {}
    for g, _ in grants:
        entry = by_programme.setdefault(g["programme"], {"count": 0, "amount_eur": Decimal(0)})
        entry["count"] += 1
        entry["amount_eur"] += Decimal(g["amount_eur"])
    out["grants.by_programme"] = {p: {"count": e["count"], "amount_eur": _money(e["amount_eur"])} for p, e in by_programme.items()}

    sites = []
    for s in model.sites.values():
        if s["status"] != "labelled":
            continue
        dep = departement_of_commune(s["commune_insee"])
        if _in_scope(scope, region_of_departement(dep) if dep else None, s.get("territory_id")):
            sites.append(s)
    out["sites.count"] = len(sites)
    out["sites.land_recycling_count"] = sum(1 for s in sites if s["land_recycling"])
    out["sites.roadmap_delivered_count"] = sum(1 for s in sites if s["roadmap_delivered"])
    out["sites.area_ha_total"] = _money(sum((Decimal(s["area_ha"]) for s in sites), Decimal(0)))
    out["sites.by_maturity"] = {m: sum(1 for s in sites if s["maturity"] == m) for m in MATURITIES}
    return out


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The indicators whose value differs (``grants.by_programme``: only the programmes and keys expected,
    other programmes must show a zero count)."""
    out = []
    for code, want in expected.items():
        got = actual.get(code)
        if code == "grants.by_programme":
            got = got or {}
            for programme, figures in want.items():
                have = got.get(programme) or {}
                sub = {k: have.get(k) for k in figures}
                if sub != figures:
                    out.append(f"{code}[{programme}]: expected {figures}, got {sub}")
            for programme, have in got.items():
                if programme not in want and have.get("count") not in (0, None):
                    out.append(f"{code}[{programme}]: expected no grant, got {have.get('count')}")
        elif isinstance(want, dict):
            got_sub = {k: (got or {}).get(k) for k in want}
            if got_sub != want:
                out.append(f"{code}: expected {want}, got {got_sub}")
        elif got != want:
            out.append(f"{code}: expected {want!r}, got {got!r}")
    return out


async def assert_indicators(platform: Any, model: Model, scopes: list[str]) -> dict[str, dict[str, Any]]:
    """Compare reporting's indicators with the model's, for each scope; returns what reporting said."""
    seen: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for scope in scopes:
        actual = await platform.indicators(scope)
        seen[scope] = actual
        problems += [f"{scope}: {d}" for d in differences(expected_indicators(model, scope), actual)]
    assert not problems, "indicators differ from the suite's own computation:\n" + "\n".join(problems)
    return seen
