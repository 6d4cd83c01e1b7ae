"""Incremental indicator aggregates (no I/O).

The indicators of a scope are assembled from additive integer counters (money and areas in cents),
distinct counts kept as reference counts, and the sites' area median. Each entity state contributes
to the counters and references of the scopes it belongs to (:func:`contribution`); applying an event
adds the difference between the entity's new and old contributions, so a batch costs O(its events).

Counter names are the indicator paths (``actions.by_axis.foncier``,
``grants.by_programme.<programme>.amount_eur``, ``sites.area_ha_total``…). Reference kinds:
``epci``, ``region``, ``grant_territory``, ``grant_departement`` and their per-programme forms
``grant_territory:<programme>``, ``grant_departement:<programme>``; scope ``*`` kind ``programme``
counts the grants (any status) of each programme.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from ti_shared.geo import REGIONS
from ti_shared.types import format_decimal

from reporting.domain import (
    ACTION_STATUSES,
    AXES,
    DEFAULT_PROGRAMMES,
    MATURITIES,
    NATIONAL,
    OBJECTIVES,
    THEMES,
    TWO,
    VALUE_CHAINS,
    ActionRow,
    GrantRow,
    Row,
    SiteRow,
    States,
    TerritoryRow,
    grant_region,
    share,
)

EVERY_SCOPE = "*"
PROGRAMME_KIND = "programme"
MEDIAN_NAME = "sites.area_ha_median_twice"
"""Counter holding twice the median area in cents (the sum of the two middle values), set not added."""

CounterKey = tuple[str, str]
RefKey = tuple[str, str, str]


def cents(value: Decimal) -> int:
    """An amount with at most two decimals as integer cents (as a NUMERIC(…, 2) column rounds it)."""
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(value: int) -> str:
    return format_decimal((Decimal(value) / 100).quantize(TWO))


@dataclass
class Deltas:
    """Signed changes to counters and reference counts, and the scopes they touch."""

    counters: dict[CounterKey, int] = field(default_factory=lambda: defaultdict(int))
    refs: dict[RefKey, int] = field(default_factory=lambda: defaultdict(int))
    scopes: set[str] = field(default_factory=set)
    site_scopes: set[str] = field(default_factory=set)

    def add(self, row: Row, regions: Mapping[str, str], sign: int) -> None:
        """Add ``sign`` × the contribution of ``row`` (placed with the territory → region map)."""
        counters, refs = contribution(row, regions)
        for key, value in counters:
            self.counters[key] += sign * value
            self.scopes.add(key[0])
        for ref in refs:
            self.refs[ref] += sign
            if ref[0] != EVERY_SCOPE:
                self.scopes.add(ref[0])
        if isinstance(row, SiteRow):
            self.site_scopes |= {scope for (scope, _), _ in counters}

    def merge(self, other: Deltas) -> None:
        for key, value in other.counters.items():
            self.counters[key] += value
        for ref, value in other.refs.items():
            self.refs[ref] += value
        self.scopes |= other.scopes
        self.site_scopes |= other.site_scopes

    def nonzero(self) -> tuple[dict[CounterKey, int], dict[RefKey, int]]:
        return (
            {k: v for k, v in self.counters.items() if v},
            {k: v for k, v in self.refs.items() if v},
        )


def placement(region: str | None, territory: str | None, regions: Mapping[str, str]) -> list[str]:
    """The scopes an entity counts in: national, its region, its territory when the territory is known."""
    out = [NATIONAL]
    if region is not None:
        out.append("region:" + region)
    if territory is not None and territory in regions:
        out.append("territory:" + territory)
    return out


def contribution(row: Row, regions: Mapping[str, str]) -> tuple[list[tuple[CounterKey, int]], list[RefKey]]:
    """The counters and references an entity state adds to the scopes it belongs to."""
    counters: list[tuple[CounterKey, int]] = []
    refs: list[RefKey] = []
    if isinstance(row, TerritoryRow):
        if row.status == "active":
            for scope in placement(row.region_code, row.id, {row.id: row.region_code}):
                counters.append(((scope, "territories.count"), 1))
                counters.append(((scope, "territories.project_leads_in_post"), int(row.lead_in_post)))
                counters.append(((scope, "territories.project_leads_cofinanced"), int(row.lead_cofinanced)))
                counters.append(((scope, "territories.launch_copil_held"), int(row.copil_held)))
                refs.append((scope, "region", row.region_code))
                refs.extend((scope, "epci", siren) for siren in row.epci_sirens)
    elif isinstance(row, ActionRow):
        if not row.deleted:
            region = regions.get(row.territory_id)
            for scope in placement(region, row.territory_id, regions):
                counters.append(((scope, "actions.count"), 1))
                counters.append(((scope, "actions.by_axis." + row.axis), 1))
                counters.append(((scope, "actions.by_status." + row.status), 1))
                counters.extend(((scope, "actions.by_theme." + theme), 1) for theme in row.themes)
            if region is not None:
                counters.append(((NATIONAL, f"actions.by_region_status.{region}.{row.status}"), 1))
    elif isinstance(row, GrantRow):
        refs.append((EVERY_SCOPE, PROGRAMME_KIND, row.programme))
        if row.status == "committed":
            amount, investment = cents(row.amount_eur), cents(row.investment_eur)
            p = "grants.by_programme." + row.programme + "."
            for scope in placement(grant_region(row, regions), row.territory_id, regions):
                counters += [
                    ((scope, "grants.count"), 1),
                    ((scope, "grants.jobs_forecast"), row.jobs_forecast),
                    ((scope, "grants.jobs_conditional"), row.jobs_conditional),
                    ((scope, "grants.amount_eur"), amount),
                    ((scope, "grants.investment_eur"), investment),
                    ((scope, "grants.disbursed_eur"), cents(row.disbursed_eur)),
                    ((scope, p + "count"), 1),
                    ((scope, p + "amount_eur"), amount),
                    ((scope, p + "investment_eur"), investment),
                    ((scope, p + "jobs_forecast"), row.jobs_forecast),
                    ((scope, p + "jobs_conditional"), row.jobs_conditional),
                ]
                counters.extend(((scope, p + "contribution_share." + o), 1) for o in row.contributions)
                if row.value_chain is not None:
                    counters.append(((scope, p + "value_chain_share." + row.value_chain), 1))
                if row.territory_id is not None:
                    refs.append((scope, "grant_territory", row.territory_id))
                    refs.append((scope, "grant_territory:" + row.programme, row.territory_id))
                if row.departement is not None:
                    refs.append((scope, "grant_departement", row.departement))
                    refs.append((scope, "grant_departement:" + row.programme, row.departement))
    elif isinstance(row, SiteRow):
        if row.status == "labelled":
            area = cents(row.area_ha)
            for scope in placement(row.region_code, row.territory_id, regions):
                counters += [
                    ((scope, "sites.count"), 1),
                    ((scope, "sites.land_recycling_count"), int(row.land_recycling)),
                    ((scope, "sites.roadmap_delivered_count"), int(row.roadmap_delivered)),
                    ((scope, "sites.area_ha_total"), area),
                    ((scope, "sites.land_recycling_area_ha"), area if row.land_recycling else 0),
                    ((scope, "sites.workshop_held"), int(row.workshop_held)),
                    ((scope, "sites.by_maturity." + row.maturity), 1),
                ]
    return counters, refs


DEPENDENT_ENTITIES = ("action", "grant", "site")


def regions_after(
    territories: Mapping[str, Row], old: Mapping[str, Row], before: Mapping[str, str]
) -> dict[str, str]:
    """The territory → region map once a batch's territories (newest state each) are applied."""
    after = dict(before)
    for tid, t in territories.items():
        was = old.get(tid)
        if isinstance(t, TerritoryRow) and (was is None or was.version < t.version):
            after[tid] = t.region_code
    return after


def batch_deltas(
    latest: Mapping[str, Mapping[str, Row]],
    old: Mapping[str, Mapping[str, Row]],
    before: Mapping[str, str],
    after: Mapping[str, str],
    dependents: Iterable[Row],
) -> Deltas:
    """What a batch changes: per entity (``latest[entity][id]``, its newest state in the batch) its new
    contribution minus its previous one (``old``), the territory → region map going from ``before`` to
    ``after``; ``dependents`` are the current states of the actions, grants and sites of the territories
    the batch moved (arrived or changed region), whose contributions move with them."""
    deltas = Deltas()
    for tid in latest.get("territory", {}):
        # a known territory always has a document, even with no data
        deltas.scopes.add("territory:" + tid)
        deltas.scopes |= {"region:" + r for r in (before.get(tid), after.get(tid)) if r is not None}
    for row in dependents:
        if row.id not in latest.get(_entity(row), {}):
            deltas.add(row, before, -1)
            deltas.add(row, after, 1)
    for entity, rows in latest.items():
        previous = old.get(entity, {})
        for subject, row in rows.items():
            was = previous.get(subject)
            if was is not None:
                if was.version >= row.version:
                    continue
                deltas.add(was, before, -1)
            deltas.add(row, after, 1)
    return deltas


def _entity(row: Row) -> str:
    if isinstance(row, TerritoryRow):
        return "territory"
    if isinstance(row, ActionRow):
        return "action"
    return "grant" if isinstance(row, GrantRow) else "site"


def median_twice(areas_in_cents: list[int]) -> int | None:
    """Twice the median of sorted areas (the sum of the two middle values for an even count)."""
    if not areas_in_cents:
        return None
    mid = len(areas_in_cents) // 2
    if len(areas_in_cents) % 2:
        return 2 * areas_in_cents[mid]
    return areas_in_cents[mid - 1] + areas_in_cents[mid]


def programmes_from(programme_refs: Mapping[str, int]) -> list[str]:
    """The six default programmes, then every other programme some grant carries, alphabetically."""
    seen = {p for p, n in programme_refs.items() if n > 0} - set(DEFAULT_PROGRAMMES)
    return [*DEFAULT_PROGRAMMES, *sorted(seen)]


def _quantized(value: Decimal) -> str:
    return format_decimal(value.quantize(TWO, rounding=ROUND_HALF_EVEN))


def assemble(
    scope: str,
    counters: Mapping[str, int],
    distinct: Mapping[str, int],
    programmes: list[str],
) -> dict[str, Any]:
    """The indicator document of a scope from its counters and distinct counts (CONTRACT §6 order)."""
    c = counters.get
    doc: dict[str, Any] = {
        "territories.count": c("territories.count", 0),
        "territories.epci_count": distinct.get("epci", 0),
        "territories.region_count": distinct.get("region", 0),
        "territories.project_leads_in_post": c("territories.project_leads_in_post", 0),
        "territories.project_leads_cofinanced": c("territories.project_leads_cofinanced", 0),
        "territories.launch_copil_held": c("territories.launch_copil_held", 0),
    }
    n = c("actions.count", 0)
    by_axis = {a: c("actions.by_axis." + a, 0) for a in AXES}
    by_status = {s: c("actions.by_status." + s, 0) for s in ACTION_STATUSES}
    doc["actions.count"] = n
    doc["actions.by_axis"] = by_axis
    doc["actions.by_status"] = by_status
    doc["actions.by_theme"] = {t: c("actions.by_theme." + t, 0) for t in THEMES}
    doc["actions.by_axis_share"] = {k: share(v, n) for k, v in by_axis.items()}
    doc["actions.by_status_share"] = {k: share(v, n) for k, v in by_status.items()}
    if scope == NATIONAL:
        doc["actions.by_region_status"] = {
            r: {s: c(f"actions.by_region_status.{r}.{s}", 0) for s in ACTION_STATUSES} for r in REGIONS
        }
    doc["grants.count"] = c("grants.count", 0)
    doc["grants.jobs_forecast"] = c("grants.jobs_forecast", 0)
    doc["grants.jobs_conditional"] = c("grants.jobs_conditional", 0)
    doc["grants.amount_eur"] = from_cents(c("grants.amount_eur", 0))
    doc["grants.investment_eur"] = from_cents(c("grants.investment_eur", 0))
    doc["grants.disbursed_eur"] = from_cents(c("grants.disbursed_eur", 0))
    doc["grants.territory_count"] = distinct.get("grant_territory", 0)
    doc["grants.departement_count"] = distinct.get("grant_departement", 0)
    by_programme: dict[str, Any] = {}
    for programme in programmes:
        p = "grants.by_programme." + programme + "."
        k = c(p + "count", 0)
        by_programme[programme] = {
            "count": k,
            "amount_eur": from_cents(c(p + "amount_eur", 0)),
            "investment_eur": from_cents(c(p + "investment_eur", 0)),
            "jobs_forecast": c(p + "jobs_forecast", 0),
            "jobs_conditional": c(p + "jobs_conditional", 0),
            "territory_count": distinct.get("grant_territory:" + programme, 0),
            "departement_count": distinct.get("grant_departement:" + programme, 0),
            "contribution_share": {o: share(c(p + "contribution_share." + o, 0), k) for o in OBJECTIVES},
            "value_chain_share": {v: share(c(p + "value_chain_share." + v, 0), k) for v in VALUE_CHAINS},
        }
    doc["grants.by_programme"] = by_programme
    sites = c("sites.count", 0)
    area = c("sites.area_ha_total", 0)
    twice = counters.get(MEDIAN_NAME)
    doc["sites.count"] = sites
    doc["sites.land_recycling_count"] = c("sites.land_recycling_count", 0)
    doc["sites.roadmap_delivered_count"] = c("sites.roadmap_delivered_count", 0)
    doc["sites.area_ha_total"] = from_cents(area)
    doc["sites.area_ha_mean"] = _quantized(Decimal(area) / 100 / sites) if sites else None
    doc["sites.area_ha_median"] = _quantized(Decimal(twice) / 200) if sites and twice is not None else None
    doc["sites.land_recycling_area_ha"] = from_cents(c("sites.land_recycling_area_ha", 0))
    doc["sites.by_maturity"] = {m: c("sites.by_maturity." + m, 0) for m in MATURITIES}
    doc["sites.workshop_held_share"] = share(c("sites.workshop_held", 0), sites)
    if scope == NATIONAL:
        from reporting.catalogue import CODES

        doc = {code: doc[code] for code in CODES if code in doc}
    return doc


@dataclass
class Aggregates:
    """Counters, distinct counts and medians of every scope, computed from scratch (reference)."""

    counters: dict[CounterKey, int]
    refs: dict[RefKey, int]

    def scope_counters(self, scope: str) -> dict[str, int]:
        return {name: v for (s, name), v in self.counters.items() if s == scope}

    def distinct(self, scope: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (s, kind, _), n in self.refs.items():
            if s == scope and n > 0:
                out[kind] += 1
        return out

    def programmes(self) -> list[str]:
        return programmes_from({v: n for (s, k, v), n in self.refs.items() if s == EVERY_SCOPE and k == PROGRAMME_KIND})


def aggregate(states: States) -> Aggregates:
    """The counters and references of every scope over a set of entity states, from scratch."""
    regions = {t.id: t.region_code for t in states.territories}
    deltas = Deltas()
    rows: Iterable[Row] = [*states.territories, *states.actions, *states.grants, *states.sites]
    for row in rows:
        deltas.add(row, regions, 1)
    counters, refs = deltas.nonzero()
    areas: dict[str, list[int]] = defaultdict(list)
    for site in states.sites:
        if site.status == "labelled":
            for scope in placement(site.region_code, site.territory_id, regions):
                areas[scope].append(cents(site.area_ha))
    for scope, values in areas.items():
        twice = median_twice(sorted(values))
        if twice is not None:
            counters[(scope, MEDIAN_NAME)] = twice
    return Aggregates(counters, refs)
