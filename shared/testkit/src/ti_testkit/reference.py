"""The indicators of CONTRACT §6, computed by a deliberately simple reference implementation.

Written straight from the contract's text, over plain dicts (the ``data`` of the events, or the bodies
a client wrote), with no cache, no increment and no database: slow, short and easy to read, so that it
can be held against the reporting service (or any other implementation of the contract). It shares no
code with the reporting service and must never import it (a test checks); it uses only the contract's
vocabularies and the INSEE reference data of ``ti_shared``.

Rules, as the contract gives them (and, in brackets, where it is silent and this module decides as the
platform's docs do):
- territories count when ``status = active``; their region is ``region_code``.
- actions count when not deleted; their region is their territory's (any status); an action whose
  territory is unknown counts nationally only; the territory scope is its ``territory_id``.
- grants count when ``status = committed``; département from ``commune_insee`` (``97x`` → 3 characters,
  else the first 2, ``2A``/``2B`` kept) [a code of no existing département gives none]; region = that
  département's region, else the territory's.
- sites count when ``status = labelled``; region = the region of the département of ``commune_insee``.
- a territory scope counts only what carries the id of a territory known at that time (any status).
- breakdown maps list every enum value, zeros included; ``grants.by_programme`` lists the six default
  programmes then every other programme of any grant, alphabetically [shares inside a programme are
  over its committed grants of the scope; a grant without value chain counts in no key].
- shares: JSON numbers rounded to 6 decimals [half-even, as means], ``null`` when the denominator is 0;
  means and medians half-even to 2 decimals, ``null`` for no value [totals are ``"0.00"``]; the median
  of an even count is the mean of the two middle values.
- ``as_of``: the entity states whose event ``time`` ≤ the instant; a date means the end of that day,
  Europe/Paris. ``actions.by_region_status`` appears in the national scope only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ti_shared.geo import DEPARTEMENTS, REGIONS
from ti_shared.vocabulary import ACTION_STATUSES, AXES, DEFAULT_PROGRAMMES, MATURITIES, OBJECTIVES, THEMES, VALUE_CHAINS

PARIS = ZoneInfo("Europe/Paris")
CENT = Decimal("0.01")

#: every indicator code of CONTRACT §6 (``actions.by_region_status``: national scope only)
CODES: tuple[str, ...] = (
    "territories.count", "territories.epci_count", "territories.region_count",
    "territories.project_leads_in_post", "territories.project_leads_cofinanced", "territories.launch_copil_held",
    "actions.count", "actions.by_axis", "actions.by_status", "actions.by_theme",
    "actions.by_axis_share", "actions.by_status_share", "actions.by_region_status",
    "grants.count", "grants.jobs_forecast", "grants.jobs_conditional",
    "grants.amount_eur", "grants.investment_eur", "grants.disbursed_eur",
    "grants.territory_count", "grants.departement_count", "grants.by_programme",
    "sites.count", "sites.land_recycling_count", "sites.roadmap_delivered_count",
    "sites.area_ha_total", "sites.area_ha_mean", "sites.area_ha_median", "sites.land_recycling_area_ha",
    "sites.by_maturity", "sites.workshop_held_share",
)  # fmt: skip


@dataclass
class States:
    """The state of every entity, by id: the resource as GET returns it (an event's ``data``)."""

    territories: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- numbers -------------------------------------------------------------------------------------


def share(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return float((Decimal(part) / Decimal(whole)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))


def money(values: Iterable[Decimal]) -> str:
    return f"{sum(values, Decimal(0)).quantize(CENT):f}"


def mean(values: list[Decimal]) -> str | None:
    if not values:
        return None
    return f"{(sum(values, Decimal(0)) / len(values)).quantize(CENT, rounding=ROUND_HALF_EVEN):f}"


def median(values: list[Decimal]) -> str | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    value = ordered[middle] if len(ordered) % 2 == 1 else (ordered[middle - 1] + ordered[middle]) / 2
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):f}"


def decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def count_each(keys: Iterable[str], values: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for value in values:
        if value in counts:
            counts[value] += 1
    return counts


# --- places --------------------------------------------------------------------------------------


def departement_of(commune: str | None) -> str | None:
    """``97x`` → 3 characters, else the first 2 (``2A``/``2B`` kept); None when no such département."""
    if not commune:
        return None
    code = commune[:3] if commune.startswith("97") else commune[:2]
    return code if code in DEPARTEMENTS else None


def region_of_departement(code: str | None) -> str | None:
    return DEPARTEMENTS[code][1] if code else None


# --- as_of ---------------------------------------------------------------------------------------


def as_of_bound(text: str) -> tuple[datetime, bool]:
    """``(instant, inclusive)``: a date is the end of that day in Europe/Paris (exclusive: before the next
    midnight), an RFC 3339 instant is inclusive."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        next_day = date.fromisoformat(text) + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=PARIS).astimezone(UTC), False
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"as_of {text!r}: an instant needs an offset (e.g. 2024-11-30T10:00:00Z)")
    return instant.astimezone(UTC), True


def event_time(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).astimezone(UTC)


def states_of(events: Iterable[Mapping[str, Any]], as_of: str | None = None) -> States:
    """The latest version (highest ``entityversion``) of each entity among the events whose time is within
    ``as_of``; duplicates, stale redeliveries and the order of delivery change nothing."""
    bound = as_of_bound(as_of) if as_of else None
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for event in events:
        if bound is not None:
            at, (instant, inclusive) = event_time(event), bound
            if at > instant or (at == instant and not inclusive):
                continue
        entity = str(event["type"]).split(".")[3]
        key = (entity, str(event["subject"]))
        if key not in latest or event["entityversion"] > latest[key]["entityversion"]:
            latest[key] = event
    states = States()
    kinds = {"territory": states.territories, "action": states.actions, "grant": states.grants, "site": states.sites}
    for (entity, subject), event in latest.items():
        data = dict(event["data"])
        if entity == "action" and str(event["type"]).endswith(".deleted.v1"):
            data["deleted"] = True
        kinds[entity][subject] = data
    return states


# --- the indicators ------------------------------------------------------------------------------


def scopes_of(states: States) -> list[str]:
    """``national``, the 18 regions and every known territory."""
    return ["national", *(f"region:{r}" for r in REGIONS), *(f"territory:{t}" for t in sorted(states.territories))]


def indicators(states: States, scope: str) -> dict[str, Any]:
    """The indicators of ``scope`` (``national``, ``region:<code>``, ``territory:<id>``) over ``states``."""
    kind, _, code = scope.partition(":")
    if kind not in ("national", "region", "territory") or (kind != "national" and not code):
        raise ValueError(f"scope {scope!r}: national, region:<code> or territory:<id>")
    region_of_territory = {tid: t["region_code"] for tid, t in states.territories.items()}

    def inside(region: str | None, territory_id: str | None) -> bool:
        if kind == "national":
            return True
        if kind == "region":
            return region == code
        return territory_id == code and territory_id in region_of_territory

    territories = [t for tid, t in states.territories.items() if t["status"] == "active" and inside(t["region_code"], tid)]
    all_actions = [a for a in states.actions.values() if not a.get("deleted")]
    actions = [a for a in all_actions if inside(region_of_territory.get(a["territory_id"]), a["territory_id"])]
    grants = []
    for g in states.grants.values():
        dep = departement_of(g.get("commune_insee"))
        region = region_of_departement(dep) or region_of_territory.get(g.get("territory_id") or "")
        if g["status"] == "committed" and inside(region, g.get("territory_id")):
            grants.append({**g, "departement": dep})
    sites = []
    for s in states.sites.values():
        region = region_of_departement(departement_of(s["commune_insee"]))
        if s["status"] == "labelled" and inside(region, s.get("territory_id")):
            sites.append(s)

    out: dict[str, Any] = {}
    out["territories.count"] = len(territories)
    out["territories.epci_count"] = len({e["siren"] for t in territories for e in t.get("epcis") or []})
    out["territories.region_count"] = len({t["region_code"] for t in territories})
    out["territories.project_leads_in_post"] = len([t for t in territories if (t.get("project_lead") or {}).get("in_post")])
    out["territories.project_leads_cofinanced"] = len([t for t in territories if (t.get("project_lead") or {}).get("cofinanced")])
    out["territories.launch_copil_held"] = len([t for t in territories if t.get("launch_copil_held_on")])

    n = len(actions)
    by_axis = count_each(AXES, (a["axis"] for a in actions))
    by_status = count_each(ACTION_STATUSES, (a["status"] for a in actions))
    out["actions.count"] = n
    out["actions.by_axis"] = by_axis
    out["actions.by_status"] = by_status
    out["actions.by_theme"] = count_each(THEMES, (theme for a in actions for theme in set(a.get("themes") or [])))
    out["actions.by_axis_share"] = {k: share(v, n) for k, v in by_axis.items()}
    out["actions.by_status_share"] = {k: share(v, n) for k, v in by_status.items()}
    if kind == "national":
        table = {r: dict.fromkeys(ACTION_STATUSES, 0) for r in REGIONS}
        for a in all_actions:
            region = region_of_territory.get(a["territory_id"])
            if region in table and a["status"] in table[region]:
                table[region][a["status"]] += 1
        out["actions.by_region_status"] = table

    out["grants.count"] = len(grants)
    out.update({f"grants.{k}": v for k, v in programme_figures(grants).items() if k not in ("count", "contribution_share", "value_chain_share")})
    out["grants.disbursed_eur"] = money(decimal(g.get("disbursed_eur")) for g in grants)
    programmes = [*DEFAULT_PROGRAMMES, *sorted({g["programme"] for g in states.grants.values()} - set(DEFAULT_PROGRAMMES))]
    out["grants.by_programme"] = {p: programme_figures([g for g in grants if g["programme"] == p]) for p in programmes}

    areas = [decimal(s["area_ha"]) for s in sites]
    out["sites.count"] = len(sites)
    out["sites.land_recycling_count"] = len([s for s in sites if s.get("land_recycling")])
    out["sites.roadmap_delivered_count"] = len([s for s in sites if s.get("roadmap_delivered")])
    out["sites.area_ha_total"] = money(areas)
    out["sites.area_ha_mean"] = mean(areas)
    out["sites.area_ha_median"] = median(areas)
    out["sites.land_recycling_area_ha"] = money(decimal(s["area_ha"]) for s in sites if s.get("land_recycling"))
    out["sites.by_maturity"] = count_each(MATURITIES, (s["maturity"] for s in sites))
    out["sites.workshop_held_share"] = share(len([s for s in sites if s.get("workshop_held")]), len(sites))
    return {c: out[c] for c in CODES if c in out}


def programme_figures(grants: list[dict[str, Any]]) -> dict[str, Any]:
    """The block of ``grants.by_programme`` over ``grants`` (each with its ``departement``)."""
    n = len(grants)
    return {
        "count": n,
        "amount_eur": money(decimal(g["amount_eur"]) for g in grants),
        "investment_eur": money(decimal(g.get("investment_eur")) for g in grants),
        "jobs_forecast": sum(g.get("jobs_forecast") or 0 for g in grants),
        "jobs_conditional": sum(g.get("jobs_conditional") or 0 for g in grants),
        "territory_count": len({g["territory_id"] for g in grants if g.get("territory_id")}),
        "departement_count": len({g["departement"] for g in grants if g["departement"]}),
        "contribution_share": {o: share(len([g for g in grants if o in (g.get("contributions") or [])]), n) for o in OBJECTIVES},
        "value_chain_share": {c: share(len([g for g in grants if g.get("value_chain") == c]), n) for c in VALUE_CHAINS},
    }


def expected_indicators(events: Iterable[Mapping[str, Any]], scope: str = "national", as_of: str | None = None) -> dict[str, Any]:
    """The indicators of ``scope`` that a stream of events (in any order, with any duplicates) must give."""
    return indicators(states_of(events, as_of), scope)
