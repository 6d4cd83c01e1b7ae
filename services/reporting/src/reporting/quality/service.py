"""The quality report of a scope: the states the indicators are computed over, assessed by
``quality.domain``."""

from __future__ import annotations

from datetime import datetime

from ti_shared.geo import REGIONS
from ti_shared.problems import Problem, field_problem

from reporting.domain import ActionRow, GrantRow, SiteRow, TerritoryRow, parse_as_of, parse_scope
from reporting.quality import domain
from reporting.quality.repository import QualityRepository
from reporting.quality.schemas import QualityDocument, QualitySummary, TerritoryQuality

__all__ = ["QualityRepository", "get_quality"]


async def get_quality(
    repo: QualityRepository, scope_text: str, *, as_of_text: str | None, sort: str, rhythm_months: int, now: datetime
) -> QualityDocument:
    try:
        scope = parse_scope(scope_text)
    except ValueError as exc:
        raise field_problem(["query", "scope"], str(exc)) from exc
    try:
        as_of = parse_as_of(as_of_text) if as_of_text is not None else None
    except ValueError as exc:
        raise field_problem(["query", "as_of"], str(exc)) from exc
    if scope.kind == "region" and scope.code not in REGIONS:
        raise Problem(404, f"Unknown region '{scope.code}' (INSEE codes: {', '.join(REGIONS)})")
    if scope.kind == "territory" and not await repo.known_territory(str(scope.code)):
        raise Problem(404, f"Unknown territory '{scope.code}'")
    states = await repo.states(as_of)
    at = min(as_of.instant, now) if as_of is not None else now
    items, totals = domain.assess(
        scope.key,
        [row for row, _ in states["territory"] if isinstance(row, TerritoryRow)],
        [(row, stamp.time) for row, stamp in states["action"] if isinstance(row, ActionRow)],
        [row for row, _ in states["grant"] if isinstance(row, GrantRow)],
        [row for row, _ in states["site"] if isinstance(row, SiteRow)],
        at=at, rhythm_months=rhythm_months,
    )
    scores = [q.score for q in items]
    return QualityDocument(
        scope=scope.key, as_of=as_of.label if as_of else None, generated_at=now, reference_at=at,
        rhythm_months=rhythm_months, sort=sort, weights=domain.WEIGHTS,
        summary=QualitySummary(**totals, mean_score=round(sum(scores) / len(scores), 1) if scores else None),
        items=[TerritoryQuality.model_validate(q.document()) for q in domain.sort_items(items, sort)],
    )
