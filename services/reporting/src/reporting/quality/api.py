"""``GET /v1/quality``: the data quality of every territory of a scope (HTTP → a service call)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Query
from ti_shared.app import ReadSessionDep
from ti_shared.http import TiRoute
from ti_shared.problems import problem_responses

from reporting.quality import domain, service
from reporting.quality.schemas import QualityDocument

router = APIRouter(prefix="/v1/quality", tags=["quality"], route_class=TiRoute)

#: the default rhythm of plan updates, in months (6: every semester)
RHYTHM_ENV = "TI_QUALITY_RHYTHM_MONTHS"


def default_rhythm() -> int:
    return int(os.environ.get(RHYTHM_ENV) or domain.DEFAULT_RHYTHM_MONTHS)


async def _repo(session: ReadSessionDep) -> service.QualityRepository:
    return service.QualityRepository(session)


RepoDep = Annotated[service.QualityRepository, Depends(_repo)]


@router.get(
    "",
    summary="Data quality per territory: plan freshness, incomplete actions and grants, project lead, a score",
    response_model=QualityDocument,
    responses=problem_responses(404),
)
async def get_quality(
    repo: RepoDep,
    scope: Annotated[str, Query(description="national, region:<code> or territory:<id>", max_length=40)] = "national",
    as_of: Annotated[
        str | None,
        Query(description="Over the entity states as of this date (end of that day, Europe/Paris) or instant", max_length=40),
    ] = None,
    sort: Annotated[domain.SortKey, Query(description="The order of the territories (- first: descending); nulls last")] = "score",
    rhythm_months: Annotated[
        int | None, Query(ge=1, le=60, description=f"A plan not updated for this many months is stale (default {RHYTHM_ENV}, else 6)")
    ] = None,
) -> QualityDocument:
    return await service.get_quality(
        repo, scope, as_of_text=as_of, sort=sort, rhythm_months=rhythm_months or default_rhythm(), now=datetime.now(UTC),
    )


SORTS = get_args(domain.SortKey)
