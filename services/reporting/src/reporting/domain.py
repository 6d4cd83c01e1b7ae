"""Pure rules of the reporting service: event data → compact projection rows, scopes, ``as_of``,
and the indicators of CONTRACT §6 over a set of entity states (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError
from ti_shared.geo import REGIONS, departement_of_commune, region_of_commune, region_of_departement
from ti_shared.types import format_decimal, parse_date, parse_instant
from ti_shared.vocabulary import ACTION_STATUSES as ACTION_STATUSES
from ti_shared.vocabulary import AXES as AXES
from ti_shared.vocabulary import DEFAULT_PROGRAMMES as DEFAULT_PROGRAMME_OPERATORS
from ti_shared.vocabulary import MATURITIES as MATURITIES
from ti_shared.vocabulary import OBJECTIVES as OBJECTIVES
from ti_shared.vocabulary import THEMES as THEMES
from ti_shared.vocabulary import VALUE_CHAINS as VALUE_CHAINS
from ti_shared.vocabulary import ActionStatus, Axis, Maturity, Objective, Theme, ValueChain

PARIS = ZoneInfo("Europe/Paris")

DEFAULT_PROGRAMMES = tuple(DEFAULT_PROGRAMME_OPERATORS)

SHARE_STEP = Decimal("0.000001")
TWO = Decimal("0.01")
NATIONAL = "national"



class InvalidEventData(ValueError):
    """The ``data`` of an event lacks what the indicators need."""


# --- rounding ---------------------------------------------------------------------------------


def share(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator`` rounded half-even to 6 decimals; None when the denominator is 0."""
    if denominator == 0:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(SHARE_STEP, rounding=ROUND_HALF_EVEN))


def mean2(values: list[Decimal]) -> str | None:
    if not values:
        return None
    return format_decimal((sum(values, Decimal(0)) / len(values)).quantize(TWO, rounding=ROUND_HALF_EVEN))


def median2(values: list[Decimal]) -> str | None:
    """The median (mean of the two middle values for an even count), rounded half-even to 2 decimals."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    middle = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return format_decimal(middle.quantize(TWO, rounding=ROUND_HALF_EVEN))


def money(value: Decimal) -> str:
    return format_decimal(value)


# --- scopes and as_of -------------------------------------------------------------------------

_SCOPE = re.compile(r"^(?:national|region:(?P<region>[0-9A-Za-z]{1,3})|territory:(?P<territory>ti-[0-9]{4}))$")


@dataclass(frozen=True)
class Scope:
    kind: Literal["national", "region", "territory"]
    code: str | None = None

    @property
    def key(self) -> str:
        return NATIONAL if self.kind == "national" else f"{self.kind}:{self.code}"


def parse_scope(text: str) -> Scope:
    """``national``, ``region:<INSEE code>`` or ``territory:<ti-NNNN>``; ValueError when malformed."""
    match = _SCOPE.fullmatch(text.strip())
    if not match:
        raise ValueError("must be 'national', 'region:<code>' (e.g. region:84) or 'territory:<id>' (e.g. territory:ti-8402)")
    if match.group("region"):
        return Scope("region", match.group("region"))
    if match.group("territory"):
        return Scope("territory", match.group("territory"))
    return Scope("national")


@dataclass(frozen=True)
class AsOf:
    """An ``as_of`` bound: states whose event time is ≤ ``instant`` (or < it, for the end of a day)."""

    instant: datetime
    inclusive: bool
    label: str


def parse_as_of(text: str) -> AsOf:
    """A date ``YYYY-MM-DD`` (the end of that day, Europe/Paris) or an RFC 3339 instant with offset,
    both within the platform's bounded calendar (``ti_shared.types``)."""
    value = text.strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return AsOf(end_of_day_paris(parse_date(value)), inclusive=False, label=value)
    instant = parse_instant(value)
    return AsOf(instant, inclusive=True, label=instant.isoformat().replace("+00:00", "Z"))


def end_of_day_paris(day: date) -> datetime:
    """The first instant after ``day`` in Europe/Paris (exclusive bound), in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=PARIS).astimezone(UTC)


# --- compact projection rows ------------------------------------------------------------------


@dataclass(frozen=True)
class TerritoryRow:
    id: str
    version: int
    time: datetime
    region_code: str
    status: str
    epci_sirens: tuple[str, ...]
    lead_in_post: bool
    lead_cofinanced: bool
    copil_held: bool


@dataclass(frozen=True)
class ActionRow:
    id: str
    version: int
    time: datetime
    territory_id: str
    axis: str
    status: str
    themes: tuple[str, ...]
    deleted: bool


@dataclass(frozen=True)
class GrantRow:
    id: str
    version: int
    time: datetime
    programme: str
    status: str
    territory_id: str | None
    departement: str | None
    departement_region: str | None
    amount_eur: Decimal
    investment_eur: Decimal
    disbursed_eur: Decimal
    jobs_forecast: int
    jobs_conditional: int
    contributions: tuple[str, ...]
    value_chain: str | None


@dataclass(frozen=True)
class SiteRow:
    id: str
    version: int
    time: datetime
    territory_id: str | None
    region_code: str | None
    status: str
    area_ha: Decimal
    land_recycling: bool
    roadmap_delivered: bool
    workshop_held: bool
    maturity: str


Row = TerritoryRow | ActionRow | GrantRow | SiteRow


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Epci(_Lenient):
    siren: str


class _Lead(_Lenient):
    in_post: bool = False
    cofinanced: bool = False


class TerritoryData(_Lenient):
    region_code: str
    status: Literal["active", "withdrawn"]
    epcis: list[_Epci] = []
    project_lead: _Lead | None = None
    launch_copil_held_on: date | None = None


class ActionData(_Lenient):
    territory_id: str
    axis: Axis
    status: ActionStatus
    themes: list[Theme] = []
    deleted: bool = False


class GrantData(_Lenient):
    programme: str
    status: Literal["committed", "cancelled"]
    territory_id: str | None = None
    commune_insee: str | None = None
    amount_eur: Decimal
    investment_eur: Decimal | None = None
    disbursed_eur: Decimal | None = None
    jobs_forecast: int | None = None
    jobs_conditional: int | None = None
    contributions: list[Objective] = []
    value_chain: ValueChain | None = None


class SiteData(_Lenient):
    commune_insee: str
    territory_id: str | None = None
    area_ha: Decimal
    maturity: Maturity
    land_recycling: bool = False
    workshop_held: bool = False
    roadmap_delivered: bool = False
    status: Literal["labelled", "withdrawn"]


def entity_of_type(event_type: str) -> str:
    """``fr.anct.ti.grant.committed.v1`` → ``grant``."""
    parts = event_type.split(".")
    return parts[3] if len(parts) > 4 else ""


def row_from_event(event_type: str, subject: str, version: int, at: datetime, data: dict[str, Any]) -> Row:
    """The compact row of an event's entity state; InvalidEventData when ``data`` is unusable."""
    entity = entity_of_type(event_type)
    at = at.astimezone(UTC)
    try:
        if entity == "territory":
            t = TerritoryData.model_validate(data)
            if t.region_code not in REGIONS:
                raise InvalidEventData(f"region_code {t.region_code!r} is not an INSEE region code")
            lead = t.project_lead
            return TerritoryRow(
                subject, version, at, t.region_code, t.status, tuple(sorted({e.siren for e in t.epcis})),
                bool(lead and lead.in_post), bool(lead and lead.cofinanced), t.launch_copil_held_on is not None,
            )
        if entity == "action":
            a = ActionData.model_validate(data)
            deleted = a.deleted or event_type.endswith(".deleted.v1")
            return ActionRow(subject, version, at, a.territory_id, a.axis, a.status, tuple(dict.fromkeys(a.themes)), deleted)
        if entity == "grant":
            g = GrantData.model_validate(data)
            dep = departement_of_commune(g.commune_insee) if g.commune_insee else None
            return GrantRow(
                subject, version, at, g.programme, g.status, g.territory_id, dep,
                region_of_departement(dep) if dep else None,
                g.amount_eur, g.investment_eur or Decimal(0), g.disbursed_eur or Decimal(0),
                g.jobs_forecast or 0, g.jobs_conditional or 0, tuple(dict.fromkeys(g.contributions)), g.value_chain,
            )
        if entity == "site":
            s = SiteData.model_validate(data)
            return SiteRow(
                subject, version, at, s.territory_id, region_of_commune(s.commune_insee), s.status, s.area_ha,
                s.land_recycling, s.roadmap_delivered, s.workshop_held, s.maturity,
            )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InvalidEventData(f"data.{loc}: {first['msg']}") from exc
    raise InvalidEventData(f"unknown entity in event type {event_type!r}")


# --- indicators ---------------------------------------------------------------------------------


@dataclass
class States:
    """The entity states the indicators are computed over."""

    territories: list[TerritoryRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    grants: list[GrantRow] = field(default_factory=list)
    sites: list[SiteRow] = field(default_factory=list)


@dataclass
class _Bucket:
    territories: list[TerritoryRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    grants: list[GrantRow] = field(default_factory=list)
    sites: list[SiteRow] = field(default_factory=list)


def grant_region(grant: GrantRow, territory_regions: Mapping[str, str]) -> str | None:
    """The region of the grant's département, else of its territory."""
    if grant.departement_region is not None:
        return grant.departement_region
    return territory_regions.get(grant.territory_id) if grant.territory_id else None


def programmes_of(states: States) -> list[str]:
    """The six default programmes, then every other programme seen, in alphabetical order."""
    seen = {g.programme for g in states.grants} - set(DEFAULT_PROGRAMMES)
    return [*DEFAULT_PROGRAMMES, *sorted(seen)]


def compute_indicators(states: States, scope_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The indicators of each scope key (``national``, ``region:84``, ``territory:ti-8402``).

    A territory scope is computed whether or not the territory is known; the caller decides which
    scopes exist."""
    wanted = set(scope_keys)
    buckets = {key: _Bucket() for key in wanted}
    regions = {t.id: t.region_code for t in states.territories}
    national = buckets.get(NATIONAL)

    def place(region: str | None, territory: str | None) -> list[_Bucket]:
        out = [national] if national is not None else []
        if region is not None and (b := buckets.get("region:" + region)) is not None:
            out.append(b)
        if territory is not None and territory in regions and (b := buckets.get("territory:" + territory)) is not None:
            out.append(b)
        return out

    for t in states.territories:
        if t.status == "active":
            for b in place(t.region_code, t.id):
                b.territories.append(t)
    action_regions: list[tuple[ActionRow, str | None]] = []
    for a in states.actions:
        if not a.deleted:
            region = regions.get(a.territory_id)
            action_regions.append((a, region))
            for b in place(region, a.territory_id):
                b.actions.append(a)
    for g in states.grants:
        if g.status == "committed":
            for b in place(grant_region(g, regions), g.territory_id):
                b.grants.append(g)
    for s in states.sites:
        if s.status == "labelled":
            for b in place(s.region_code, s.territory_id):
                b.sites.append(s)

    programmes = programmes_of(states)
    out: dict[str, dict[str, Any]] = {}
    for key, bucket in buckets.items():
        doc = _indicators_of(bucket, programmes)
        if key == NATIONAL:
            doc["actions.by_region_status"] = _by_region_status(action_regions)
            doc = _ordered(doc)
        out[key] = doc
    return out


def _count_by(values: Iterable[str], keys: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for v in values:
        if v in counts:
            counts[v] += 1
    return counts


def _by_region_status(action_regions: list[tuple[ActionRow, str | None]]) -> dict[str, dict[str, int]]:
    table = {region: dict.fromkeys(ACTION_STATUSES, 0) for region in REGIONS}
    for a, region in action_regions:
        if region is not None and region in table and a.status in table[region]:
            table[region][a.status] += 1
    return table


def _indicators_of(b: _Bucket, programmes: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    ts = b.territories
    doc["territories.count"] = len(ts)
    doc["territories.epci_count"] = len({s for t in ts for s in t.epci_sirens})
    doc["territories.region_count"] = len({t.region_code for t in ts})
    doc["territories.project_leads_in_post"] = sum(1 for t in ts if t.lead_in_post)
    doc["territories.project_leads_cofinanced"] = sum(1 for t in ts if t.lead_cofinanced)
    doc["territories.launch_copil_held"] = sum(1 for t in ts if t.copil_held)

    acts = b.actions
    n = len(acts)
    by_axis = _count_by((a.axis for a in acts), AXES)
    by_status = _count_by((a.status for a in acts), ACTION_STATUSES)
    doc["actions.count"] = n
    doc["actions.by_axis"] = by_axis
    doc["actions.by_status"] = by_status
    doc["actions.by_theme"] = _count_by((th for a in acts for th in a.themes), THEMES)
    doc["actions.by_axis_share"] = {k: share(v, n) for k, v in by_axis.items()}
    doc["actions.by_status_share"] = {k: share(v, n) for k, v in by_status.items()}

    gs = b.grants
    doc["grants.count"] = len(gs)
    doc["grants.jobs_forecast"] = sum(g.jobs_forecast for g in gs)
    doc["grants.jobs_conditional"] = sum(g.jobs_conditional for g in gs)
    doc["grants.amount_eur"] = money(sum((g.amount_eur for g in gs), Decimal(0)))
    doc["grants.investment_eur"] = money(sum((g.investment_eur for g in gs), Decimal(0)))
    doc["grants.disbursed_eur"] = money(sum((g.disbursed_eur for g in gs), Decimal(0)))
    doc["grants.territory_count"] = len({g.territory_id for g in gs if g.territory_id is not None})
    doc["grants.departement_count"] = len({g.departement for g in gs if g.departement is not None})
    by_programme: dict[str, list[GrantRow]] = {p: [] for p in programmes}
    for g in gs:
        by_programme.setdefault(g.programme, []).append(g)
    doc["grants.by_programme"] = {p: _programme_figures(rows) for p, rows in by_programme.items()}

    ss = b.sites
    areas = [s.area_ha for s in ss]
    doc["sites.count"] = len(ss)
    doc["sites.land_recycling_count"] = sum(1 for s in ss if s.land_recycling)
    doc["sites.roadmap_delivered_count"] = sum(1 for s in ss if s.roadmap_delivered)
    doc["sites.area_ha_total"] = money(sum(areas, Decimal(0)))
    doc["sites.area_ha_mean"] = mean2(areas)
    doc["sites.area_ha_median"] = median2(areas)
    doc["sites.land_recycling_area_ha"] = money(sum((s.area_ha for s in ss if s.land_recycling), Decimal(0)))
    doc["sites.by_maturity"] = _count_by((s.maturity for s in ss), MATURITIES)
    doc["sites.workshop_held_share"] = share(sum(1 for s in ss if s.workshop_held), len(ss))
    return doc


def _programme_figures(rows: list[GrantRow]) -> dict[str, Any]:
    n = len(rows)
    return {
        "count": n,
        "amount_eur": money(sum((g.amount_eur for g in rows), Decimal(0))),
        "investment_eur": money(sum((g.investment_eur for g in rows), Decimal(0))),
        "jobs_forecast": sum(g.jobs_forecast for g in rows),
        "jobs_conditional": sum(g.jobs_conditional for g in rows),
        "territory_count": len({g.territory_id for g in rows if g.territory_id is not None}),
        "departement_count": len({g.departement for g in rows if g.departement is not None}),
        "contribution_share": {o: share(sum(1 for g in rows if o in g.contributions), n) for o in OBJECTIVES},
        "value_chain_share": {c: share(sum(1 for g in rows if g.value_chain == c), n) for c in VALUE_CHAINS},
    }


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    from reporting.catalogue import CODES

    return {code: doc[code] for code in CODES if code in doc}


def empty_indicators(scope: Scope) -> dict[str, Any]:
    """The indicators of a scope with no data (zeros, null shares and means)."""
    return compute_indicators(States(), [scope.key])[scope.key]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` → ``[("a.b", 1)]``; a scalar gives one pair with an empty key."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]
