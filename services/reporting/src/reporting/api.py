"""Routes of the reporting service: indicators (current and as of), catalogue, exports, rebuild."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from openpyxl import Workbook
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.app import ContextDep, ReadSessionDep
from ti_shared.auth import Principal, scoped
from ti_shared.geo import REGIONS
from ti_shared.http import XLSX_TYPE, TiRoute, if_none_match
from ti_shared.problems import Problem, field_problem, problem_responses

from reporting import cache, repository
from reporting.catalogue import CATALOGUE, UNITS
from reporting.domain import AsOf, Scope, compute_indicators, empty_indicators, flatten, parse_as_of, parse_scope
from reporting.labels import BREAKDOWN_LABELS
from reporting.rebuild import LIVE_CONSUMER, RebuildRunning, prepare_rebuild, run_rebuild
from reporting.schemas import Catalogue, IndicatorDefinitionOut, IndicatorsDocument, RebuildStatus

router = APIRouter(prefix="/v1/indicators", tags=["indicators"], route_class=TiRoute)

ScopeQuery = Annotated[
    str,
    Query(
        description="national, region:<INSEE region code> or territory:<territory id>",
        max_length=40,
        openapi_examples={
            "national": {"value": "national"},
            "region": {"value": "region:84"},
            "territory": {"value": "territory:ti-8402"},
        },
    ),
]
AsOfQuery = Annotated[
    str | None,
    Query(
        description="Indicators over the entity states whose event time is ≤ this instant; a date YYYY-MM-DD "
        "means the end of that day, Europe/Paris. An instant must carry an offset.",
        max_length=40,
        openapi_examples={"date": {"value": "2024-06-30"}, "instant": {"value": "2024-11-30T10:00:00Z"}},
    ),
]
AdminDep = Annotated[Principal, scoped("admin")]


@dataclass(frozen=True)
class _Resolved:
    document: IndicatorsDocument
    etag: str


_INSTANT = TypeAdapter(datetime)


@functools.lru_cache(maxsize=2048)
def _stored_body(scope: str, generated_at: datetime, document: str) -> bytes:
    return cache.body_of(scope, generated_at, document)


def _parse(scope_text: str, as_of_text: str | None) -> tuple[Scope, AsOf | None]:
    try:
        scope = parse_scope(scope_text)
    except ValueError as exc:
        raise field_problem(["query", "scope"], str(exc)) from exc
    as_of: AsOf | None = None
    if as_of_text is not None:
        try:
            as_of = parse_as_of(as_of_text)
        except ValueError as exc:
            raise field_problem(["query", "as_of"], str(exc)) from exc
    if scope.kind == "region" and scope.code not in REGIONS:
        raise Problem(404, f"Unknown region '{scope.code}' (INSEE codes: {', '.join(REGIONS)})")
    return scope, as_of


def _stored_etag(stored: repository.StoredIndicators) -> str:
    return cache.etag_of(stored.generation, stored.digest)


async def _resolve(session: AsyncSession, scope_text: str, as_of_text: str | None) -> _Resolved:
    scope, as_of = _parse(scope_text, as_of_text)
    now = datetime.now(UTC)
    if as_of is None:
        stored = await repository.read_indicators(session, scope.key)
        if stored is not None:
            doc = IndicatorsDocument(
                scope=scope.key, as_of=None, generated_at=stored.computed_at, indicators=orjson.loads(stored.document)
            )
            return _Resolved(doc, _stored_etag(stored))
        if scope.kind == "territory":
            raise Problem(404, f"Unknown territory '{scope.code}'")
        indicators = empty_indicators(scope)
        doc = IndicatorsDocument(scope=scope.key, as_of=None, generated_at=now, indicators=indicators)
        return _Resolved(doc, f'W/"0-{repository.digest_of(indicators)}"')
    generation = await repository.current_generation(session)
    if scope.kind == "territory" and not await repository.territory_known(session, generation, str(scope.code)):
        raise Problem(404, f"Unknown territory '{scope.code}'")
    states = await repository.load_states_as_of(session, generation, as_of)
    indicators = compute_indicators(states, [scope.key])[scope.key]
    doc = IndicatorsDocument(scope=scope.key, as_of=as_of.label, generated_at=now, indicators=indicators)
    return _Resolved(doc, f'W/"{generation}-{repository.digest_of({"as_of": as_of.label, **indicators})}"')


@router.get(
    "",
    summary="Indicators of a scope, current or as of a past instant",
    response_model=IndicatorsDocument,
    responses={304: {"description": "Not modified (If-None-Match)"}, **problem_responses(404, 422)},
)
async def get_indicators(
    request: Request, ctx: ContextDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None
) -> Response:
    parsed, as_of_bound = _parse(scope, as_of)
    if as_of_bound is None:

        async def load() -> cache.Entry | None:
            async with ctx.db.read_engine.connect() as connection:  # one statement: no transaction needed
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                stored = await repository.read_indicators(autocommit, parsed.key)
            if stored is None:
                return None
            return _stored_etag(stored), _stored_body(parsed.key, stored.computed_at, stored.document)

        owner = id(ctx.db.engine)
        cache.validate_soon(owner, functools.partial(repository.read_live_mark, ctx.db))
        cached = await cache.get_or_load(owner, parsed.key, load)
        if cached is not None:
            etag, body = cached
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if if_none_match(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            return Response(body, media_type="application/json", headers=headers)
    async with ctx.db.read_session() as session:
        resolved = await _resolve(session, scope, as_of)
    headers = {"ETag": resolved.etag, "Cache-Control": "no-cache"}
    if if_none_match(request.headers.get("if-none-match"), resolved.etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(resolved.document.model_dump(mode="json"), headers=headers)


@router.get("/catalogue", summary="Every indicator: French label, unit, definition, breakdown keys", response_model=Catalogue)
async def get_catalogue() -> Catalogue:
    return Catalogue(
        items=[
            IndicatorDefinitionOut(
                code=d.code,
                label=d.label,
                unit=d.unit,
                definition=d.definition,
                breakdown=list(d.breakdown),
                breakdown_labels=BREAKDOWN_LABELS.get(d.code, {}),
            )
            for d in CATALOGUE
        ]
    )


def _export_rows(document: IndicatorsDocument) -> list[tuple[str, str, str, Any, str]]:
    rows = []
    for code, value in document.indicators.items():
        for key, leaf in flatten(value):
            rows.append((document.scope, code, key, leaf, UNITS.get(code, "")))
    return rows


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {**problem_responses(404, 422)}


@router.get(
    "/export.csv",
    summary="The indicators of a scope as CSV (one row per value: scope, code, key, value, unit)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, UTF-8, comma-separated"}, **_EXPORT_RESPONSES},
)
async def export_csv(session: ReadSessionDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None) -> Response:
    resolved = await _resolve(session, scope, as_of)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "code", "key", "value", "unit"])
    for s, code, key, value, unit in _export_rows(resolved.document):
        writer.writerow([s, code, key, "" if value is None else json.dumps(value) if isinstance(value, bool) else value, unit])
    filename = f"indicateurs-{resolved.document.scope.replace(':', '-')}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "ETag": resolved.etag},
    )


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


@router.get(
    "/export.xlsx",
    summary="The indicators of a scope as an Excel workbook (one row per value: scope, code, key, value, unit)",
    response_class=Response,
    responses={200: {"content": {XLSX_TYPE: {}}, "description": "XLSX workbook"}, **_EXPORT_RESPONSES},
)
async def export_xlsx(session: ReadSessionDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None) -> Response:
    resolved = await _resolve(session, scope, as_of)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "indicateurs"
    sheet.append(["scope", "code", "key", "value", "unit"])
    for s, code, key, value, unit in _export_rows(resolved.document):
        sheet.append([s, code, key, _cell(value), unit])
    buffer = io.BytesIO()
    book.save(buffer)
    filename = f"indicateurs-{resolved.document.scope.replace(':', '-')}.xlsx"
    return Response(
        buffer.getvalue(),
        media_type=XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "ETag": resolved.etag},
    )


def _status(run: dict[str, Any]) -> RebuildStatus:
    return RebuildStatus.model_validate(run)


@router.post(
    "/rebuild",
    summary="Rebuild every projection from offset 0 into fresh tables and swap them in (admin)",
    status_code=202,
    response_model=RebuildStatus,
    responses=problem_responses(401, 403, 409),
)
async def start_rebuild(ctx: ContextDep, _admin: AdminDep) -> RebuildStatus:
    try:
        generation = await prepare_rebuild(ctx.db)
    except RebuildRunning as exc:
        raise Problem(409, str(exc)) from exc
    live = next((c for c in ctx.consumers if c.name == LIVE_CONSUMER), None)
    task = asyncio.create_task(
        run_rebuild(ctx.db, ctx.settings.platform, generation, live=live), name=f"reporting-rebuild-{generation}"
    )
    ctx.extras["rebuild_task"] = task
    async with ctx.db.read_session() as session:
        run = await repository.latest_run(session)
    assert run is not None
    return _status(run)


@router.get(
    "/rebuild",
    summary="Progress of the latest rebuild",
    response_model=RebuildStatus,
    responses=problem_responses(404),
)
async def get_rebuild(session: ReadSessionDep) -> RebuildStatus:
    run = await repository.latest_run(session)
    if run is None:
        raise Problem(404, "No rebuild has been started")
    return _status(run)
