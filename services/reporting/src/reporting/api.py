"""Routes of the reporting service: indicators (current and as of), catalogue, exports, rebuild."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.app import ContextDep, ReadSessionDep
from ti_shared.auth import Principal, scoped
from ti_shared.geo import REGIONS
from ti_shared.http import XLSX_TYPE, TiRoute, cursor_after, if_none_match, page_of
from ti_shared.problems import Problem, field_problem, problem_responses

from reporting import reads
from reporting.catalogue import CATALOGUE, CODES, UNITS
from reporting.domain import ENTITIES, AsOf, Scope, flatten, parse_as_of, parse_scope
from reporting.engine import empty_document
from reporting.freshness import DEFAULT_WAIT_S, MAX_WAIT_S, MAX_WAITERS, TooManyWaiting
from reporting.labels import BREAKDOWN_LABELS
from reporting.rebuild import LIVE_CONSUMER, RebuildRunning, prepare_rebuild, run_rebuild
from reporting.repository import figures, generations, sources
from reporting.schemas import (
    Catalogue,
    ChangedFigure,
    EventBetween,
    ExplainedEntity,
    Explanation,
    Freshness,
    IndicatorDefinitionOut,
    IndicatorsDiff,
    IndicatorsDocument,
    RebuildStatus,
)

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
AfterQuery = Annotated[
    str | None,
    Query(
        description="An event id (a write's `TI-Event-Id`, printable ASCII): answer once reporting has applied that "
        "event, waiting at most `wait` seconds (504 problem past it, also for an id reporting never receives)",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        examples=["0b9f6c1e-2f4a-4c7e-9a51-3f1d2b6c8e01"],
    ),
]
WaitQuery = Annotated[
    float | None,
    Query(
        description=f"With `after`: seconds to wait at most (default {DEFAULT_WAIT_S:g}, at most {MAX_WAIT_S:g}; "
        "0 answers at once)",
        ge=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
    ),
]
AdminDep = Annotated[Principal, scoped("admin")]
_INSTANT = TypeAdapter(datetime)


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


def _unknown_territory(scope: Scope) -> Problem:
    return Problem(404, f"Unknown territory '{scope.code}'")


def _empty(scope: Scope) -> tuple[bytes, str]:
    """The response of a scope with no document yet (before the first event): zeros."""
    indicators = orjson.dumps(empty_document(scope.key))
    body = reads.body_of(scope.key, datetime.now(UTC), indicators.decode())
    return body, f'W/"0-{figures.digest_of_document(indicators)}"'


async def _as_of(session: AsyncSession, scope: Scope, as_of: AsOf) -> tuple[bytes, str]:
    generation = await generations.current_generation(session)
    await _known_scope(session, generation, scope)
    indicators = await reads.indicators_as_of(session, generation, scope.key, as_of)
    doc = IndicatorsDocument(
        scope=scope.key, as_of=as_of.label, generated_at=datetime.now(UTC), indicators=indicators, sources={}
    )
    digest = figures.digest_of_document(orjson.dumps({"as_of": as_of.label, **indicators}))
    return orjson.dumps(doc.model_dump(mode="json", exclude={"sources"})), f'W/"{generation}-{digest}"'


async def _resolve(ctx: Any, scope: Scope, as_of: AsOf | None) -> tuple[bytes, str]:
    """The response body and ETag of a scope's indicators, current or as of an instant."""
    if as_of is None:
        cached = await reads.current(ctx, scope.key)
        if cached is not None:
            return cached[1], cached[0]
        if scope.kind == "territory":
            raise _unknown_territory(scope)
        return _empty(scope)
    async with ctx.db.read_session() as session:
        return await _as_of(session, scope, as_of)


async def _applied_among(ctx: Any, event_ids: Sequence[str]) -> set[str]:
    async with ctx.db.reads() as connection:  # one statement: no transaction needed
        return await sources.applied_among(connection, event_ids)


async def _await_event(ctx: Any, event_id: str, wait_s: float) -> None:
    """Return once the live figures include the event ``event_id``; a 504 problem past ``wait_s``."""
    try:
        applied = await reads.freshness_of(ctx).wait_applied(event_id, wait_s, lambda ids: _applied_among(ctx, ids))
    except TooManyWaiting:
        raise Problem(
            503, f"{MAX_WAITERS} requests are waiting for events already: ask again shortly",
            kind="too-many-waiting", headers={"Retry-After": "1"},
        ) from None
    if not applied:
        raise Problem(
            504,
            f"Event '{event_id}' is not applied to the indicators after {wait_s:g} s: not received yet, unknown, or "
            "not applicable (see GET /v1/indicators/freshness); ask again",
            kind="event-not-applied",
        )


@router.get(
    "",
    summary="Indicators of a scope, current or as of a past instant (optionally once an event is applied)",
    response_model=IndicatorsDocument,
    responses={304: {"description": "Not modified (If-None-Match)"}, **problem_responses(404, 422, 503, 504)},
)
async def get_indicators(
    request: Request, ctx: ContextDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None,
    after: AfterQuery = None, wait: WaitQuery = None,
) -> Response:
    parsed = _parse(scope, as_of)
    if wait is not None and after is None:
        raise field_problem(["query", "wait"], "is the longest wait for `after`: give `after` too")
    if after is not None:
        await _await_event(ctx, after, DEFAULT_WAIT_S if wait is None else wait)
    body, etag = await _resolve(ctx, *parsed)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(reads.freshness_of(ctx).splice(body), media_type="application/json", headers=headers)


@router.get(
    "/freshness",
    summary="How fresh the indicators are: per source service and operator, the latest event applied, its lag, "
    "the events applied; the events not applied yet",
    response_model=Freshness,
)
async def get_freshness(ctx: ContextDep) -> Freshness:
    fresh = reads.freshness_of(ctx)
    live = next((c for c in ctx.consumers if c.name == LIVE_CONSUMER), None)
    lag: int | None = None
    if live is not None and live.bus_ok:
        try:
            async with asyncio.timeout(2):
                lag = await live.lag()
        except Exception:  # noqa: BLE001 - the bus cannot tell now: null
            lag = None
    now = datetime.now(UTC)
    return Freshness.model_validate(
        {"checked_at": now, "generation": fresh.generation, "consumer_lag": lag, "sources": fresh.freshness(now)}
    )


CodeQuery = Annotated[str, Query(description="An indicator code of the catalogue", max_length=80, examples=["grants.amount_eur"])]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Entities per page (default 100, max 1000)")]
CursorQuery = Annotated[str | None, Query(max_length=600, description="The next_cursor of the previous page")]
KeyQuery = Annotated[
    str | None,
    Query(max_length=120, description="One breakdown key of the figure (as in the exports: innovation, 53.en_cours, "
          "<programme>.amount_eur…): the entities behind that value only", examples=["innovation"]),
]


def _code(code: str) -> str:
    if code not in CODES:
        raise field_problem(["query", "code"], f"unknown indicator code '{code}' (see /v1/indicators/catalogue)")
    return code


async def _known_scope(session: AsyncSession, generation: int, scope: Scope) -> None:
    if scope.kind == "territory" and not await generations.territory_known(session, generation, str(scope.code)):
        raise _unknown_territory(scope)


def _leaf(value: Any, code: str, key: str) -> Any:
    """The value at a breakdown key of a figure (422 when the figure has no such key)."""
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise field_problem(["query", "key"], f"'{key}' is not a breakdown key of {code} in this scope")
        value = value[part]
    return value


def _explain_cursor(cursor: str | None) -> tuple[int, str] | None:
    after = cursor_after(cursor, str)
    if after is None:
        return None
    entity, _, subject = after.partition(":")
    if entity not in ENTITIES or not subject:
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    return ENTITIES.index(entity), subject  # type: ignore[arg-type]


@router.get(
    "/explain",
    summary="The entities that make one figure: version, the event that set it, what each contributes (paginated)",
    response_model=Explanation,
    responses=problem_responses(404, 422),
)
async def explain_figure(
    session: ReadSessionDep, scope: ScopeQuery, code: CodeQuery, as_of: AsOfQuery = None,
    limit: LimitQuery = 100, cursor: CursorQuery = None, key: KeyQuery = None,
) -> Explanation:
    parsed, bound = _parse(scope, as_of)
    _code(code)
    after = _explain_cursor(cursor)
    generation = await generations.current_generation(session)
    await _known_scope(session, generation, parsed)
    value = (await reads.indicators_as_of(session, generation, parsed.key, bound)).get(code)
    if key:
        value = _leaf(value, code, key)
    found = await reads.explain_as_of(session, generation, parsed.key, code, bound, key or None)
    if after is not None:
        found = [e for e in found if (ENTITIES.index(e.entity), e.id) > after]
    items, next_cursor = page_of(found, limit, lambda e: f"{e.entity}:{e.id}")
    return Explanation(
        scope=parsed.key, code=code, key=key or None, as_of=bound.label if bound else None, value=value,
        next_cursor=next_cursor,
        items=[ExplainedEntity(entity=e.entity, id=e.id, version=e.version, event_id=e.event_id, time=e.time,
                               contribution=e.contribution) for e in items],
    )


FromQuery = Annotated[str, Query(alias="from", max_length=40, description="The earlier instant or date (as as_of)")]
ToQuery = Annotated[str, Query(max_length=40, description="The later instant or date (as as_of)")]


@router.get(
    "/diff",
    summary="Every figure of a scope that changed between two instants, and the events in between",
    response_model=IndicatorsDiff,
    response_model_by_alias=True,
    responses=problem_responses(404, 422),
)
async def diff_figures(session: ReadSessionDep, scope: ScopeQuery, from_: FromQuery, to: ToQuery) -> IndicatorsDiff:
    parsed, _ = _parse(scope, None)
    bounds = []
    for name, text in (("from", from_), ("to", to)):
        try:
            bounds.append(parse_as_of(text))
        except ValueError as exc:
            raise field_problem(["query", name], str(exc)) from exc
    before, after = bounds
    if after.instant < before.instant:
        raise field_problem(["query", "to"], "is earlier than from")
    generation = await generations.current_generation(session)
    await _known_scope(session, generation, parsed)
    changed = await reads.diff_between(session, generation, parsed.key, before, after)
    return IndicatorsDiff(
        scope=parsed.key, from_=before.label, to=after.label,
        items=[
            ChangedFigure(code=c.code, key=c.key, before=c.before, after=c.after, events=[
                EventBetween(entity=e, id=i, version=v, event_id=st.event_id, time=st.time) for e, i, v, st in c.events
            ])
            for c in changed
        ],
    )


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


async def _export_rows(ctx: Any, scope_text: str, as_of_text: str | None) -> tuple[str, list[tuple[str, str, str, Any, str]], str]:
    """The scope key, one row per leaf value (scope, code, key, value, unit) and the ETag."""
    scope, as_of = _parse(scope_text, as_of_text)
    body, etag = await _resolve(ctx, scope, as_of)
    indicators: dict[str, Any] = orjson.loads(body)["indicators"]
    rows = []
    for code, value in indicators.items():
        for key, leaf in flatten(value):
            rows.append((scope.key, code, key, leaf, UNITS.get(code, "")))
    return scope.key, rows, etag


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {**problem_responses(404, 422)}


@router.get(
    "/export.csv",
    summary="The indicators of a scope as CSV (one row per value: scope, code, key, value, unit)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, UTF-8, comma-separated"}, **_EXPORT_RESPONSES},
)
async def export_csv(ctx: ContextDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None) -> Response:
    key, rows, etag = await _export_rows(ctx, scope, as_of)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "code", "key", "value", "unit"])
    for s, code, k, value, unit in rows:
        writer.writerow([s, code, k, "" if value is None else json.dumps(value) if isinstance(value, bool) else value, unit])
    filename = f"indicateurs-{key.replace(':', '-')}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "ETag": etag},
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
async def export_xlsx(ctx: ContextDep, scope: ScopeQuery = "national", as_of: AsOfQuery = None) -> Response:
    from openpyxl import Workbook  # imported when used: it is large

    key, rows, etag = await _export_rows(ctx, scope, as_of)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "indicateurs"
    sheet.append(["scope", "code", "key", "value", "unit"])
    for s, code, k, value, unit in rows:
        sheet.append([s, code, k, _cell(value), unit])
    buffer = io.BytesIO()
    book.save(buffer)
    filename = f"indicateurs-{key.replace(':', '-')}.xlsx"
    return Response(
        buffer.getvalue(),
        media_type=XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "ETag": etag},
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
        run_rebuild(ctx.db, ctx.settings.platform, generation, live=live, cache=reads.cache_of(ctx)),
        name=f"reporting-rebuild-{generation}",
    )
    ctx.extras["rebuild_task"] = task
    async with ctx.db.read_session() as session:
        run = await generations.latest_run(session)
    assert run is not None
    return _status(run)


@router.get(
    "/rebuild",
    summary="Progress of the latest rebuild",
    response_model=RebuildStatus,
    responses=problem_responses(404),
)
async def get_rebuild(session: ReadSessionDep) -> RebuildStatus:
    run = await generations.latest_run(session)
    if run is None:
        raise Problem(404, "No rebuild has been started")
    return _status(run)
