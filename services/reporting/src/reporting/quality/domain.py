"""Data quality per territory (no I/O), computed over the same entity states as the indicators.

For each active territory: when its action plan last changed (the latest event time of its actions)
and whether that is older than the semester rhythm; its actions ``non_renseigne``, without theme,
without budget; its committed grants without commune; whether a project lead is in post; and one
score (docs/quality.md). For the scope as a whole: the grants without territory or without commune,
and the labelled sites without territory, counted where the indicators count them (the engine's
``placement``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from reporting.domain import NATIONAL, ActionRow, GrantRow, SiteRow, TerritoryRow, share
from reporting.engine import grant_region, placement

#: the rhythm at which territories update their plans (BILAN.md: every semester), in months
DEFAULT_RHYTHM_MONTHS = 6
#: the checks of the score and their weights
WEIGHTS: dict[str, int] = {
    "plan_fresh": 3,
    "actions_renseignees": 2,
    "actions_with_theme": 1,
    "actions_with_budget": 1,
    "grants_with_commune": 1,
    "project_lead_in_post": 2,
}
SORT_KEYS = ("score", "plan_updated_at", "non_renseigne_share", "territory_id")
SortKey = Literal[
    "score", "-score", "plan_updated_at", "-plan_updated_at", "non_renseigne_share", "-non_renseigne_share",
    "territory_id", "-territory_id",
]


def months_before(instant: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when shorter)."""
    month = instant.month - 1 - months
    year, month = instant.year + month // 12, month % 12 + 1
    for day in range(instant.day, 0, -1):
        try:
            return instant.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class TerritoryQuality:
    territory_id: str
    region_code: str
    plan_updated_at: datetime | None = None
    actions: int = 0
    non_renseigne: int = 0
    without_theme: int = 0
    without_budget: int = 0
    grants: int = 0
    grants_without_commune: int = 0
    sites: int = 0
    project_lead_in_post: bool = False
    plan_stale: bool = True
    checks: dict[str, float | None] = field(default_factory=dict)
    score: float = 0.0

    @property
    def non_renseigne_share(self) -> float | None:
        return share(self.non_renseigne, self.actions)

    def document(self) -> dict[str, Any]:
        return {
            "territory_id": self.territory_id,
            "region_code": self.region_code,
            "plan_updated_at": self.plan_updated_at,
            "plan_stale": self.plan_stale,
            "actions": {
                "count": self.actions,
                "non_renseigne": self.non_renseigne,
                "non_renseigne_share": self.non_renseigne_share,
                "without_theme": self.without_theme,
                "without_budget": self.without_budget,
            },
            "grants": {"count": self.grants, "without_commune": self.grants_without_commune},
            "sites": {"count": self.sites},
            "project_lead_in_post": self.project_lead_in_post,
            "checks": self.checks,
            "score": self.score,
        }


def _rate(good: int, total: int) -> float | None:
    return None if total == 0 else good / total


def score_of(t: TerritoryQuality) -> tuple[dict[str, float | None], float]:
    """Each check's value in 0…1 (None: does not apply) and the score: 100 × the weighted mean of the
    checks that apply, rounded to one decimal. A territory without actions fails the action checks."""
    checks: dict[str, float | None] = {
        "plan_fresh": 0.0 if t.plan_stale else 1.0,
        "actions_renseignees": _rate(t.actions - t.non_renseigne, t.actions) if t.actions else 0.0,
        "actions_with_theme": _rate(t.actions - t.without_theme, t.actions) if t.actions else 0.0,
        "actions_with_budget": _rate(t.actions - t.without_budget, t.actions) if t.actions else 0.0,
        "grants_with_commune": _rate(t.grants - t.grants_without_commune, t.grants),
        "project_lead_in_post": 1.0 if t.project_lead_in_post else 0.0,
    }
    applied = {name: value for name, value in checks.items() if value is not None}
    total = sum(WEIGHTS[name] for name in applied)
    score = round(100 * sum(WEIGHTS[name] * value for name, value in applied.items()) / total, 1)
    return {name: None if v is None else round(v, 6) for name, v in checks.items()}, score


def _in_scope(scope: str, territory: TerritoryRow) -> bool:
    if scope == NATIONAL:
        return True
    kind, _, code = scope.partition(":")
    return territory.region_code == code if kind == "region" else territory.id == code


def assess(
    scope: str,
    territories: Iterable[TerritoryRow],
    actions: Iterable[tuple[ActionRow, datetime]],
    grants: Iterable[GrantRow],
    sites: Iterable[SiteRow],
    *,
    at: datetime,
    rhythm_months: int = DEFAULT_RHYTHM_MONTHS,
) -> tuple[list[TerritoryQuality], dict[str, int]]:
    """The quality of each active territory of ``scope`` (``national``, ``region:<code>``,
    ``territory:<id>``) over the given entity states (actions with their event time), judged at the
    instant ``at`` (the ``as_of``, or now); and the scope's totals."""
    known = {t.id: t for t in territories}
    regions = {t.id: t.region_code for t in known.values()}
    out = {
        t.id: TerritoryQuality(t.id, t.region_code, project_lead_in_post=t.lead_in_post)
        for t in known.values() if t.status == "active" and _in_scope(scope, t)
    }
    for action, time in actions:
        q = out.get(action.territory_id)
        if q is None:
            continue
        if q.plan_updated_at is None or time > q.plan_updated_at:
            q.plan_updated_at = time  # a deletion is a change of the plan too
        if action.deleted:
            continue
        q.actions += 1
        q.non_renseigne += action.status == "non_renseigne"
        q.without_theme += not action.themes
        q.without_budget += not action.has_budget
    totals = {"grants_without_territory": 0, "grants_without_commune": 0, "sites_without_territory": 0}
    for grant in grants:
        if grant.status != "committed":
            continue
        if scope in placement(grant_region(grant, regions), grant.territory_id, regions):
            totals["grants_without_territory"] += grant.territory_id is None
            totals["grants_without_commune"] += grant.departement is None
        q = out.get(grant.territory_id) if grant.territory_id else None
        if q is not None:
            q.grants += 1
            q.grants_without_commune += grant.departement is None
    for site in sites:
        if site.status != "labelled":
            continue
        if scope in placement(site.region_code, site.territory_id, regions):
            totals["sites_without_territory"] += site.territory_id is None
        q = out.get(site.territory_id) if site.territory_id else None
        if q is not None:
            q.sites += 1
    since = months_before(at, rhythm_months)
    for q in out.values():
        q.plan_stale = q.plan_updated_at is None or q.plan_updated_at < since
        q.checks, q.score = score_of(q)
    items = list(out.values())
    totals["territories"] = len(items)
    totals["plans_stale"] = sum(q.plan_stale for q in items)
    totals["without_project_lead"] = sum(not q.project_lead_in_post for q in items)
    return items, totals


def sort_items(items: Sequence[TerritoryQuality], sort: str) -> list[TerritoryQuality]:
    """By a key of :data:`SORT_KEYS` (``-`` first: descending), then by territory id; nulls last."""
    descending, key = sort.startswith("-"), sort.lstrip("-")
    by_id = sorted(items, key=lambda q: q.territory_id)
    if key == "territory_id":
        return by_id[::-1] if descending else by_id

    def value(q: TerritoryQuality) -> Any:
        return {"score": q.score, "plan_updated_at": q.plan_updated_at, "non_renseigne_share": q.non_renseigne_share}[key]

    present = [q for q in by_id if value(q) is not None]
    missing = [q for q in by_id if value(q) is None]
    return sorted(present, key=value, reverse=descending) + missing
