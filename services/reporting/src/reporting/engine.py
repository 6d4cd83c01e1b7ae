"""The indicator engine (no I/O): the only code that says what an entity counts for and how a figure
is computed, used for the live figures, for ``as_of`` and for explanations alike.

An entity state *contributes* to the scopes it belongs to (:func:`placement`: national, its region,
its territory when the territory is known) — :func:`contribution` lists what it adds there:

- additive integer **counters** named by the indicator path (``actions.by_axis.foncier``,
  ``grants.by_programme.<programme>.amount_eur``; money and areas in cents, so sums are exact);
- **references** behind the distinct counts (``epci``, ``region``, ``grant_territory``,
  ``grant_departement`` and their per-programme forms ``grant_territory:<programme>``…; scope ``*``
  kind ``programme`` counts the grants of each programme, any status: the programme list);
- the **areas** of labelled sites (the median).

:class:`Aggregates` holds the sum of the contributions of every entity, per scope; changing entities
adds their new contribution minus their old one (:func:`deltas_of`). :data:`INDICATORS` computes each
indicator of the catalogue from a scope's aggregates (:class:`Figures`) and says which counters,
references or areas it reads, so that a document is patched where its inputs changed only, and so
that :func:`explain` can list what each entity contributes to one figure.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from ti_shared.geo import REGIONS
from ti_shared.vocabulary import ACTION_STATUSES, AXES, MATURITIES, OBJECTIVES, THEMES, VALUE_CHAINS

from reporting.catalogue import CODES
from reporting.domain import (
    DEFAULT_PROGRAMMES,
    NATIONAL,
    ActionRow,
    GrantRow,
    Row,
    SiteRow,
    TerritoryRow,
    from_cents,
    quantized,
    share,
)

EVERY_SCOPE = "*"
PROGRAMME_KIND = "programme"
#: the counter holding twice the median area in cents (the sum of the two middle values) in the tables
MEDIAN_NAME = "sites.area_ha_median_twice"
#: counters holding cents (explanations show them as decimal strings)
_CENTS_SUFFIXES = ("amount_eur", "investment_eur", "disbursed_eur", "area_ha_total", "land_recycling_area_ha")

CounterKey = tuple[str, str]
RefKey = tuple[str, str, str]
Regions = Mapping[str, str]
"""territory id → region code, for the known territories"""


# --- what an entity counts for ----------------------------------------------------------------------


def placement(region: str | None, territory: str | None, regions: Regions) -> tuple[str, ...]:
    """The scopes an entity counts in: national, its region, its territory when the territory is known."""
    if region is None:
        return (NATIONAL, "territory:" + territory) if territory is not None and territory in regions else (NATIONAL,)
    if territory is not None and territory in regions:
        return (NATIONAL, "region:" + region, "territory:" + territory)
    return (NATIONAL, "region:" + region)


class Contribution(NamedTuple):
    counters: list[tuple[str, str, int]]
    """(scope, counter name, value)"""
    refs: list[tuple[str, str, str]]
    """(scope, kind, value): one reference each"""
    areas: list[tuple[str, int]]
    """(scope, area in cents) of a labelled site"""


def grant_region(grant: GrantRow, regions: Regions) -> str | None:
    """The region of the grant's département, else of its territory."""
    if grant.departement_region is not None:
        return grant.departement_region
    return regions.get(grant.territory_id) if grant.territory_id else None


def _territory(row: TerritoryRow, regions: Regions) -> Contribution:
    counters: list[tuple[str, str, int]] = []
    refs: list[tuple[str, str, str]] = []
    if row.status == "active":
        for scope in (NATIONAL, "region:" + row.region_code, "territory:" + row.id):
            counters.append((scope, "territories.count", 1))
            if row.lead_in_post:
                counters.append((scope, "territories.project_leads_in_post", 1))
            if row.lead_cofinanced:
                counters.append((scope, "territories.project_leads_cofinanced", 1))
            if row.copil_held:
                counters.append((scope, "territories.launch_copil_held", 1))
            refs.append((scope, "region", row.region_code))
            refs.extend((scope, "epci", siren) for siren in row.epci_sirens)
    return Contribution(counters, refs, [])


def _action(row: ActionRow, regions: Regions) -> Contribution:
    counters: list[tuple[str, str, int]] = []
    if not row.deleted:
        region = regions.get(row.territory_id)
        axis, status = "actions.by_axis." + row.axis, "actions.by_status." + row.status
        themes = ["actions.by_theme." + theme for theme in row.themes]
        for scope in placement(region, row.territory_id, regions):
            counters += [(scope, "actions.count", 1), (scope, axis, 1), (scope, status, 1)]
            counters.extend((scope, theme, 1) for theme in themes)
        if region is not None:
            counters.append((NATIONAL, f"actions.by_region_status.{region}.{row.status}", 1))
    return Contribution(counters, [], [])


@functools.lru_cache(maxsize=16_384)
def _placed(region: str | None, territory: str, known: bool) -> tuple[str, ...]:
    """:func:`placement` of an action (``known``: its territory is), one tuple per place."""
    return placement(region, territory, {territory: ""} if known else {})


@functools.lru_cache(maxsize=65_536)
def _action_keys(region: str | None, territory: str, known: bool, axis: str, status: str) -> tuple[CounterKey, ...]:
    """The counters an action adds 1 to (what :func:`_action` lists) but its themes', for each place
    (``known``: its territory is), axis and status: a few thousand kinds, whatever the themes."""
    names = ("actions.count", "actions.by_axis." + axis, "actions.by_status." + status)
    keys = [(scope, name) for scope in _placed(region, territory, known) for name in names]
    if region is not None:
        keys.append((NATIONAL, f"actions.by_region_status.{region}.{status}"))
    return tuple(keys)


@functools.lru_cache(maxsize=65_536)
def _theme_keys(region: str | None, territory: str, known: bool, theme: str) -> tuple[CounterKey, ...]:
    """The counters an action of one theme adds 1 to for that theme, for each place (cached apart from
    :func:`_action_keys`: keyed by the whole set of themes, the kinds of action outnumber any cache)."""
    name = "actions.by_theme." + theme
    return tuple((scope, name) for scope in _placed(region, territory, known))


def _grant(row: GrantRow, regions: Regions) -> Contribution:
    counters: list[tuple[str, str, int]] = []
    refs: list[tuple[str, str, str]] = [(EVERY_SCOPE, PROGRAMME_KIND, row.programme)]
    if row.status == "committed":
        p = "grants.by_programme." + row.programme + "."
        values = [
            ("grants.count", 1), ("grants.jobs_forecast", row.jobs_forecast),
            ("grants.jobs_conditional", row.jobs_conditional), ("grants.amount_eur", row.amount_cents),
            ("grants.investment_eur", row.investment_cents), ("grants.disbursed_eur", row.disbursed_cents),
            (p + "count", 1), (p + "amount_eur", row.amount_cents), (p + "investment_eur", row.investment_cents),
            (p + "jobs_forecast", row.jobs_forecast), (p + "jobs_conditional", row.jobs_conditional),
            *((p + "contribution_share." + o, 1) for o in row.contributions),
        ]
        if row.value_chain is not None:
            values.append((p + "value_chain_share." + row.value_chain, 1))
        values = [(name, value) for name, value in values if value]
        kinds: list[tuple[str, str]] = []
        if row.territory_id is not None:
            kinds += [("grant_territory", row.territory_id), ("grant_territory:" + row.programme, row.territory_id)]
        if row.departement is not None:
            kinds += [("grant_departement", row.departement), ("grant_departement:" + row.programme, row.departement)]
        for scope in placement(grant_region(row, regions), row.territory_id, regions):
            counters.extend((scope, name, value) for name, value in values)
            refs.extend((scope, kind, value) for kind, value in kinds)
    return Contribution(counters, refs, [])


def _site(row: SiteRow, regions: Regions) -> Contribution:
    counters: list[tuple[str, str, int]] = []
    areas: list[tuple[str, int]] = []
    if row.status == "labelled":
        values = [
            ("sites.count", 1), ("sites.land_recycling_count", int(row.land_recycling)),
            ("sites.roadmap_delivered_count", int(row.roadmap_delivered)), ("sites.area_ha_total", row.area_cents),
            ("sites.land_recycling_area_ha", row.area_cents if row.land_recycling else 0),
            ("sites.workshop_held", int(row.workshop_held)), ("sites.by_maturity." + row.maturity, 1),
        ]
        values = [(name, value) for name, value in values if value]
        for scope in placement(row.region_code, row.territory_id, regions):
            counters.extend((scope, name, value) for name, value in values)
            areas.append((scope, row.area_cents))
    return Contribution(counters, [], areas)


_CONTRIBUTORS: dict[type[Row], Callable[[Any, Regions], Contribution]] = {
    TerritoryRow: _territory, ActionRow: _action, GrantRow: _grant, SiteRow: _site,
}


def contribution(row: Row, regions: Regions) -> Contribution:
    """What an entity state adds to the scopes it belongs to (with the territory → region map)."""
    return _CONTRIBUTORS[type(row)](row, regions)


# --- changes ------------------------------------------------------------------------------------


@dataclass
class Deltas:
    """Signed changes to the aggregates, and the scopes whose document must be assembled anyway."""

    counters: defaultdict[CounterKey, int] = field(default_factory=lambda: defaultdict(int))
    refs: defaultdict[RefKey, int] = field(default_factory=lambda: defaultdict(int))
    areas: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    scopes: set[str] = field(default_factory=set)

    def add(self, row: Row, regions: Regions, sign: int) -> None:
        """Add ``sign`` × the contribution of ``row`` (placed with the territory → region map)."""
        if type(row) is ActionRow:  # most rows: their counter keys precomputed per kind of action
            if not row.deleted:
                territory = row.territory_id
                region = regions.get(territory)
                known = territory in regions
                c = self.counters
                for counter in _action_keys(region, territory, known, row.axis, row.status):
                    c[counter] += sign
                for theme in row.themes:
                    for counter in _theme_keys(region, territory, known, theme):
                        c[counter] += sign
            return
        counters, refs, areas = contribution(row, regions)
        c, r, a = self.counters, self.refs, self.areas
        for scope, name, value in counters:
            c[(scope, name)] += sign * value
        for ref in refs:
            r[ref] += sign
        for key in areas:
            a[key] += sign

    def negated(self) -> Deltas:
        return Deltas(
            defaultdict(int, {k: -v for k, v in self.counters.items()}),
            defaultdict(int, {k: -v for k, v in self.refs.items()}),
            defaultdict(int, {k: -v for k, v in self.areas.items()}),
            set(self.scopes),
        )


def regions_after(before: Regions, territories: Iterable[TerritoryRow]) -> dict[str, str]:
    """The territory → region map once the given (newest) territory states are applied."""
    after = dict(before)
    after.update((t.id, t.region_code) for t in territories)
    return after


def moved_territories(before: Regions, after: Regions) -> set[str]:
    """The territories that arrived or changed region: their actions, grants and sites move with them."""
    return {tid for tid, region in after.items() if before.get(tid) != region}


def deltas_of(
    changes: Iterable[tuple[Row | None, Row]],
    before: Regions,
    after: Regions,
    dependents: Iterable[Row] = (),
) -> Deltas:
    """What replacing entity states changes: for each ``(old, new)`` pair (``old`` None for a new
    entity) the new contribution (under the ``after`` map) minus the old one (under ``before``);
    ``dependents`` are unchanged entities of moved territories, whose placement moves with the map."""
    deltas = Deltas()
    for old, new in changes:
        if old is not None:
            deltas.add(old, before, -1)
        deltas.add(new, after, 1)
        if isinstance(new, TerritoryRow):  # a known territory always has a document, even with no data
            deltas.scopes.add("territory:" + new.id)
            deltas.scopes.add("region:" + new.region_code)
            if isinstance(old, TerritoryRow):
                deltas.scopes.add("region:" + old.region_code)
    for row in dependents:
        deltas.add(row, before, -1)
        deltas.add(row, after, 1)
    return deltas


# --- the aggregates -------------------------------------------------------------------------------


def median_twice(areas: Sequence[int]) -> int | None:
    """Twice the median of sorted areas (the sum of the two middle values for an even count)."""
    if not areas:
        return None
    mid = len(areas) // 2
    if len(areas) % 2:
        return 2 * areas[mid]
    return areas[mid - 1] + areas[mid]


class Figures:
    """One scope's aggregates, as the indicator computations read them."""

    __slots__ = ("areas", "counters", "refs")

    def __init__(self, counters: Mapping[str, int], refs: Mapping[str, Mapping[str, int]], areas: Sequence[int]) -> None:
        self.counters, self.refs, self.areas = counters, refs, areas

    def c(self, name: str) -> int:
        return self.counters.get(name, 0)

    def distinct(self, kind: str) -> int:
        values = self.refs.get(kind)
        return len(values) if values else 0

    def median_twice(self) -> int | None:
        return median_twice(self.areas)


_EMPTY = Figures({}, {}, ())


class Touched(NamedTuple):
    """What changed in each scope's aggregates: counter names, reference kinds, areas."""

    counters: dict[str, set[str]]
    refs: dict[str, set[str]]
    areas: set[str]


@dataclass
class Aggregates:
    """The sum of every entity's contribution, per scope."""

    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    """scope → name → value (a counter back to 0 is removed)"""
    refs: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """scope → kind → value → reference count (positive: a value with no reference is removed)"""
    areas: dict[str, list[int]] = field(default_factory=dict)
    """scope → the areas of its labelled sites, sorted"""

    def apply(self, deltas: Deltas) -> Touched:
        touched = Touched(defaultdict(set), defaultdict(set), set())
        for (scope, name), value in deltas.counters.items():
            if value:
                counters = self.counters.setdefault(scope, {})
                total = counters.get(name, 0) + value
                if total:
                    counters[name] = total
                else:
                    del counters[name]
                touched.counters[scope].add(name)
        for (scope, kind, ref), n in deltas.refs.items():
            if n:
                values = self.refs.setdefault(scope, {}).setdefault(kind, {})
                count = values.get(ref, 0) + n
                if count > 0:
                    values[ref] = count
                else:
                    values.pop(ref, None)
                touched.refs[scope].add(kind)
        for (scope, area), n in deltas.areas.items():
            if n:
                areas = self.areas.setdefault(scope, [])
                for _ in range(n):
                    bisect.insort(areas, area)
                for _ in range(-n):
                    del areas[bisect.bisect_left(areas, area)]
                touched.areas.add(scope)
        return touched

    def figures(self, scope: str) -> Figures:
        return Figures(self.counters.get(scope, {}), self.refs.get(scope, {}), self.areas.get(scope, ()))

    def programmes(self) -> list[str]:
        """The six default programmes, then every other programme some grant carries, alphabetically."""
        seen = set(self.refs.get(EVERY_SCOPE, {}).get(PROGRAMME_KIND, {})) - set(DEFAULT_PROGRAMMES)
        return [*DEFAULT_PROGRAMMES, *sorted(seen)]

    def counter_rows(self, scopes: Iterable[str] | None = None) -> dict[CounterKey, int]:
        """The counters as stored (``(scope, name) → value``, the area median as :data:`MEDIAN_NAME`)."""
        wanted = self.counters.keys() | self.areas.keys() if scopes is None else set(scopes)
        out: dict[CounterKey, int] = {}
        for scope in wanted:
            for name, value in self.counters.get(scope, {}).items():
                out[(scope, name)] = value
            twice = median_twice(self.areas.get(scope, ()))
            if twice is not None:
                out[(scope, MEDIAN_NAME)] = twice
        return out

    def ref_rows(self) -> dict[RefKey, int]:
        return {
            (scope, kind, value): n
            for scope, kinds in self.refs.items() for kind, values in kinds.items() for value, n in values.items()
        }


def aggregate(rows: Iterable[Row], regions: Regions, scopes: set[str] | None = None) -> Aggregates:
    """The aggregates of a set of entity states, from scratch (``scopes``: only those, and ``*``)."""
    deltas = Deltas()
    for row in rows:
        deltas.add(row, regions, 1)
    if scopes is not None:
        keep = scopes | {EVERY_SCOPE}
        deltas.counters = defaultdict(int, {k: v for k, v in deltas.counters.items() if k[0] in keep})
        deltas.refs = defaultdict(int, {k: v for k, v in deltas.refs.items() if k[0] in keep})
        deltas.areas = defaultdict(int, {k: v for k, v in deltas.areas.items() if k[0] in keep})
    aggregates = Aggregates()
    aggregates.apply(deltas)
    return aggregates


# --- the indicators -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """How one indicator of the catalogue is computed, and from which inputs."""

    code: str
    compute: Callable[[Figures, Sequence[str]], Any]
    counters: tuple[str, ...] = ()
    """counter names it reads (a name ending with ``.`` stands for every name under it)"""
    refs: tuple[str, ...] = ()
    """reference kinds whose distinct values it counts (ending with ``:``: every kind under it)"""
    areas: bool = False
    national_only: bool = False
    by_programme: bool = False
    """depends on the programme list"""
    entry: Callable[[Figures, str], Any] | None = None
    """for a map by programme: the value of one key (so that a patch recomputes the changed keys only)"""

    def reads_counter(self, name: str) -> bool:
        return any(name == c or (c.endswith(".") and name.startswith(c)) for c in self.counters)

    def reads_ref(self, kind: str) -> bool:
        return any(kind == r or (r.endswith(":") and kind.startswith(r)) for r in self.refs)

    def reads_counter_for(self, name: str, key: str) -> bool:
        """Whether one breakdown key of the figure (``innovation``, ``53.en_cours``,
        ``<programme>.amount_eur``…) reads the counter ``name``: a name under a prefix when its rest is
        the key (or under it), a plain name always (the total a share divides by), and for a share of a
        programme, that programme's count."""
        for c in self.counters:
            if not c.endswith("."):
                if name == c:
                    return True
            elif name.startswith(c):
                rest = name[len(c):]
                if rest == key or rest.startswith(key + "."):
                    return True
                programme, _, leaf = key.partition(".")
                if self.by_programme and leaf.split(".", 1)[0].endswith("_share") and rest == programme + ".count":
                    return True
        return False

    def reads_ref_for(self, kind: str, key: str) -> bool:
        """Whether one breakdown key reads the reference kind ``kind`` (``grant_territory:<programme>``
        for ``<programme>.territory_count`` or the whole ``<programme>``)."""
        for r in self.refs:
            if not r.endswith(":"):
                if kind == r:
                    return True
            elif kind.startswith(r):
                programme = kind[len(r):]
                if key == programme or key == f"{programme}.{_PROGRAMME_REFS[r]}":
                    return True
        return False


def _money(name: str) -> Callable[[Figures, Sequence[str]], Any]:
    return lambda f, _p: from_cents(f.c(name))


def _plain(name: str) -> Callable[[Figures, Sequence[str]], Any]:
    return lambda f, _p: f.c(name)


def _breakdown(prefix: str, keys: Sequence[str]) -> Callable[[Figures, Sequence[str]], Any]:
    return lambda f, _p: {k: f.c(prefix + k) for k in keys}


def _shares(prefix: str, keys: Sequence[str], total: str) -> Callable[[Figures, Sequence[str]], Any]:
    return lambda f, _p: {k: share(f.c(prefix + k), f.c(total)) for k in keys}


#: the counter of each (region, status), named once
_REGION_STATUS_NAMES = tuple(
    (r, tuple((s, f"actions.by_region_status.{r}.{s}") for s in ACTION_STATUSES)) for r in REGIONS
)


def _by_region_status(f: Figures, _p: Sequence[str]) -> Any:
    get = f.counters.get
    return {r: {s: get(name, 0) for s, name in names} for r, names in _REGION_STATUS_NAMES}


def _by_programme(f: Figures, programmes: Sequence[str]) -> Any:
    return {programme: _programme_entry(f, programme) for programme in programmes}


#: the reference kinds (per programme) behind each distinct count of a programme's entry
_PROGRAMME_REFS = {"grant_territory:": "territory_count", "grant_departement:": "departement_count"}


def _programme_entry(f: Figures, programme: str) -> Any:
    p = "grants.by_programme." + programme + "."
    k = f.c(p + "count")
    return {
        "count": k,
        "amount_eur": from_cents(f.c(p + "amount_eur")),
        "investment_eur": from_cents(f.c(p + "investment_eur")),
        "jobs_forecast": f.c(p + "jobs_forecast"),
        "jobs_conditional": f.c(p + "jobs_conditional"),
        "territory_count": f.distinct("grant_territory:" + programme),
        "departement_count": f.distinct("grant_departement:" + programme),
        "contribution_share": {o: share(f.c(p + "contribution_share." + o), k) for o in OBJECTIVES},
        "value_chain_share": {v: share(f.c(p + "value_chain_share." + v), k) for v in VALUE_CHAINS},
    }


def _area_mean(f: Figures, _p: Sequence[str]) -> Any:
    sites = f.c("sites.count")
    return quantized(Decimal(f.c("sites.area_ha_total")) / 100 / sites) if sites else None


def _area_median(f: Figures, _p: Sequence[str]) -> Any:
    twice = f.median_twice()
    return quantized(Decimal(twice) / 200) if twice is not None else None


INDICATORS: tuple[Indicator, ...] = (
    Indicator("territories.count", _plain("territories.count"), counters=("territories.count",)),
    Indicator("territories.epci_count", lambda f, _p: f.distinct("epci"), refs=("epci",)),
    Indicator("territories.region_count", lambda f, _p: f.distinct("region"), refs=("region",)),
    Indicator("territories.project_leads_in_post", _plain("territories.project_leads_in_post"),
              counters=("territories.project_leads_in_post",)),
    Indicator("territories.project_leads_cofinanced", _plain("territories.project_leads_cofinanced"),
              counters=("territories.project_leads_cofinanced",)),
    Indicator("territories.launch_copil_held", _plain("territories.launch_copil_held"),
              counters=("territories.launch_copil_held",)),
    Indicator("actions.count", _plain("actions.count"), counters=("actions.count",)),
    Indicator("actions.by_axis", _breakdown("actions.by_axis.", AXES), counters=("actions.by_axis.",)),
    Indicator("actions.by_status", _breakdown("actions.by_status.", ACTION_STATUSES), counters=("actions.by_status.",)),
    Indicator("actions.by_theme", _breakdown("actions.by_theme.", THEMES), counters=("actions.by_theme.",)),
    Indicator("actions.by_axis_share", _shares("actions.by_axis.", AXES, "actions.count"),
              counters=("actions.by_axis.", "actions.count")),
    Indicator("actions.by_status_share", _shares("actions.by_status.", ACTION_STATUSES, "actions.count"),
              counters=("actions.by_status.", "actions.count")),
    Indicator("actions.by_region_status", _by_region_status, counters=("actions.by_region_status.",), national_only=True),
    Indicator("grants.count", _plain("grants.count"), counters=("grants.count",)),
    Indicator("grants.jobs_forecast", _plain("grants.jobs_forecast"), counters=("grants.jobs_forecast",)),
    Indicator("grants.jobs_conditional", _plain("grants.jobs_conditional"), counters=("grants.jobs_conditional",)),
    Indicator("grants.amount_eur", _money("grants.amount_eur"), counters=("grants.amount_eur",)),
    Indicator("grants.investment_eur", _money("grants.investment_eur"), counters=("grants.investment_eur",)),
    Indicator("grants.disbursed_eur", _money("grants.disbursed_eur"), counters=("grants.disbursed_eur",)),
    Indicator("grants.territory_count", lambda f, _p: f.distinct("grant_territory"), refs=("grant_territory",)),
    Indicator("grants.departement_count", lambda f, _p: f.distinct("grant_departement"), refs=("grant_departement",)),
    Indicator("grants.by_programme", _by_programme, counters=("grants.by_programme.",),
              refs=("grant_territory:", "grant_departement:"), by_programme=True, entry=_programme_entry),
    Indicator("sites.count", _plain("sites.count"), counters=("sites.count",)),
    Indicator("sites.land_recycling_count", _plain("sites.land_recycling_count"), counters=("sites.land_recycling_count",)),
    Indicator("sites.roadmap_delivered_count", _plain("sites.roadmap_delivered_count"),
              counters=("sites.roadmap_delivered_count",)),
    Indicator("sites.area_ha_total", _money("sites.area_ha_total"), counters=("sites.area_ha_total",)),
    Indicator("sites.area_ha_mean", _area_mean, counters=("sites.area_ha_total", "sites.count")),
    Indicator("sites.area_ha_median", _area_median, areas=True),
    Indicator("sites.land_recycling_area_ha", _money("sites.land_recycling_area_ha"),
              counters=("sites.land_recycling_area_ha",)),
    Indicator("sites.by_maturity", _breakdown("sites.by_maturity.", MATURITIES), counters=("sites.by_maturity.",)),
    Indicator("sites.workshop_held_share", lambda f, _p: share(f.c("sites.workshop_held"), f.c("sites.count")),
              counters=("sites.workshop_held", "sites.count")),
)
BY_CODE: dict[str, Indicator] = {i.code: i for i in INDICATORS}
if tuple(BY_CODE) != CODES:  # pragma: no cover - a definition error, caught at import by every test
    raise RuntimeError("reporting.engine.INDICATORS and reporting.catalogue.CATALOGUE list different codes")


def indicators_of(scope: str) -> tuple[Indicator, ...]:
    return INDICATORS if scope == NATIONAL else _NOT_NATIONAL


_NOT_NATIONAL = tuple(i for i in INDICATORS if not i.national_only)


def assemble(scope: str, figures: Figures, programmes: Sequence[str]) -> dict[str, Any]:
    """The indicator document of a scope (catalogue order)."""
    return {i.code: i.compute(figures, programmes) for i in indicators_of(scope)}


def indicators(rows: Iterable[Row], scope: str) -> dict[str, Any]:
    """The indicators document of a scope over a set of entity states (``as_of``, editions): the
    territories among them place the others."""
    states = list(rows)
    regions = {row.id: row.region_code for row in states if isinstance(row, TerritoryRow)}
    aggregates = aggregate(states, regions, {scope})
    return assemble(scope, aggregates.figures(scope), aggregates.programmes())


def empty_document(scope: str) -> dict[str, Any]:
    """The indicators of a scope with no data (zeros, null shares and means)."""
    return assemble(scope, _EMPTY, DEFAULT_PROGRAMMES)


#: the codes of the indicators reading a counter, a reference kind (the same few names batch after batch)
_READERS: dict[str, frozenset[str]] = {}
_REF_READERS: dict[str, frozenset[str]] = {}
_READERS_KEPT = 4_096


def _readers(kept: dict[str, frozenset[str]], name: str, reads: Callable[[Any, str], bool]) -> frozenset[str]:
    """The indicators that read ``name`` (``reads(indicator, name)``), kept in ``kept`` up to a bound."""
    found = kept.get(name)
    if found is None:
        found = frozenset(i.code for i in INDICATORS if reads(i, name))
        if len(kept) < _READERS_KEPT:
            kept[name] = found
    return found


def _readers_of_counter(name: str) -> frozenset[str]:
    return _readers(_READERS, name, lambda indicator, n: indicator.reads_counter(n))


def _readers_of_ref(kind: str) -> frozenset[str]:
    return _readers(_REF_READERS, kind, lambda indicator, k: indicator.reads_ref(k))


def patch(
    document: dict[str, Any],
    scope: str,
    figures: Figures,
    programmes: Sequence[str],
    *,
    counters: Iterable[str] = (),
    refs: Iterable[str] = (),
    areas: bool = False,
    programmes_changed: bool = False,
) -> dict[str, Any]:
    """``document`` with the indicators whose inputs changed recomputed (a new dict, same order)."""
    stale: set[str] = set()
    counters, refs = list(counters), set(refs)
    for name in counters:
        stale |= _readers_of_counter(name)
    for kind in refs:
        stale |= _readers_of_ref(kind)
    if areas:
        stale.update(i.code for i in INDICATORS if i.areas)
    if programmes_changed:
        stale.update(i.code for i in INDICATORS if i.by_programme)
    if not stale:
        return document
    out = dict(document)
    for indicator in indicators_of(scope):
        if indicator.code not in stale:
            continue
        keys = None if programmes_changed or indicator.entry is None else _programmes_read(indicator, counters, refs, programmes)
        if keys is None or indicator.code not in out:
            out[indicator.code] = indicator.compute(figures, programmes)
        else:
            entry = indicator.entry
            assert entry is not None
            out[indicator.code] = {**out[indicator.code], **{key: entry(figures, key) for key in keys}}
    return out


def _programmes_read(indicator: Indicator, counters: Sequence[str], refs: Iterable[str], programmes: Sequence[str]) -> set[str] | None:
    """The programmes whose entry of a map by programme the changed inputs touch (None: not known)."""
    keys: set[str] = set()
    code = indicator.code
    for name in counters:
        if code in _readers_of_counter(name):
            found = next((p for p in programmes if name.startswith("grants.by_programme." + p + ".")), None)
            if found is None:
                return None
            keys.add(found)
    for kind in refs:
        if code in _readers_of_ref(kind):
            found = next((p for p in programmes if kind in ("grant_territory:" + p, "grant_departement:" + p)), None)
            if found is None:
                return None
            keys.add(found)
    return keys


# --- explanations -----------------------------------------------------------------------------------


def _shown(name: str, value: int) -> Any:
    return from_cents(value) if name.endswith(_CENTS_SUFFIXES) else value


def explain(
    rows: Iterable[Row], regions: Regions, scope: str, code: str, key: str | None = None
) -> list[tuple[Row, dict[str, Any]]]:
    """The entities that make one figure of a scope, each with what it contributes to the figure's
    inputs: ``{counter name: value}`` (money and areas as decimal strings), ``{reference kind: [values]}``
    and, for the median, ``{"sites.area_ha": area}``. Entities contributing nothing are left out.
    With ``key``, the figure is that breakdown key's value only (``Indicator.reads_counter_for``)."""
    indicator = BY_CODE[code]
    counter_read = indicator.reads_counter if key is None else lambda name: indicator.reads_counter_for(name, key)
    ref_read = indicator.reads_ref if key is None else lambda kind: indicator.reads_ref_for(kind, key)
    if indicator.national_only and scope != NATIONAL:
        return []
    out: list[tuple[Row, dict[str, Any]]] = []
    for row in rows:
        counters, refs, areas = contribution(row, regions)
        values: dict[str, Any] = {}
        for s, name, value in counters:
            if s == scope and value and counter_read(name):
                values[name] = _shown(name, value)
        for s, kind, ref in refs:
            if s == scope and ref_read(kind):
                values.setdefault(kind, []).append(ref)
        if indicator.areas:
            for s, area in areas:
                if s == scope:
                    values["sites.area_ha"] = from_cents(area)
        if values:
            out.append((row, values))
    return out
