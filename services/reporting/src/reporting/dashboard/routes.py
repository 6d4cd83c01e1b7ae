"""Routes of the dashboard (``/dashboard…``) and of the generated Bilan (``/v1/reports/bilan``)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from ti_shared.assets import asset_path, file_response
from ti_shared.http import TiRoute
from ti_shared.problems import Problem, field_problem, problem_responses

from reporting.dashboard import render
from reporting.dashboard.client import reader_for_request
from reporting.dashboard.pages import (
    EXPLAIN_PAGE_SIZE,
    Links,
    Page,
    edition_page,
    editions_page,
    explain_page,
    national_page,
    quality_page,
    region_page,
    scope_page,
    territory_page,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
reports_router = APIRouter(prefix="/v1/reports", tags=["reports"], route_class=TiRoute)

_DATE_OR_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:\d{2}))?$")

AsOfQuery = Annotated[
    str | None,
    Query(
        description="The figures as of this date (end of that day, Europe/Paris) or instant; now when absent",
        max_length=40,
        openapi_examples={"date": {"value": "2024-11-30"}},
    ),
]
CompareQuery = Annotated[
    str | None, Query(description="Each figure next to its value at this date or instant, and the difference", max_length=40)
]
MapQuery = Annotated[str | None, Query(description="The indicator the map colours the regions by", max_length=64)]
RegionPath = Annotated[str, Path(pattern=r"^[0-9]{2}$", examples=["84"])]
TerritoryPath = Annotated[str, Path(pattern=r"^ti-[0-9]{4}$", examples=["ti-8402"])]


def _links(request: Request, as_of: str | None, compare: str | None) -> Links:
    for name, value in (("as_of", as_of), ("compare", compare)):
        if value and not _DATE_OR_INSTANT.match(value):
            raise field_problem(["query", name], "expected a date YYYY-MM-DD or an instant with an offset")
    return Links(root=str(request.scope.get("root_path", "")).rstrip("/"), as_of=as_of or None, compare=compare or None)


def _html(page: Page) -> HTMLResponse:
    return HTMLResponse(render.dashboard_html(page), headers={"Cache-Control": "no-cache"})


@router.get("")
async def national(request: Request, as_of: AsOfQuery = None, compare: CompareQuery = None, map: MapQuery = None) -> HTMLResponse:
    links = _links(request, as_of, compare)
    async with reader_for_request(request) as api:
        return _html(await national_page(api, links, map))


@router.get("/regions/{code}")
async def region(request: Request, code: RegionPath, as_of: AsOfQuery = None, compare: CompareQuery = None) -> HTMLResponse:
    links = _links(request, as_of, compare)
    async with reader_for_request(request) as api:
        return _html(await region_page(api, links, code))


@router.get("/territories/{territory_id}")
async def territory(
    request: Request, territory_id: TerritoryPath, as_of: AsOfQuery = None, compare: CompareQuery = None
) -> HTMLResponse:
    links = _links(request, as_of, compare)
    async with reader_for_request(request) as api:
        return _html(await territory_page(api, links, territory_id))


@router.get("/quality")
async def quality(
    request: Request,
    as_of: AsOfQuery = None,
    scope: Annotated[str, Query(max_length=40)] = "national",
    sort: Annotated[str, Query(max_length=32)] = "score",
) -> HTMLResponse:
    links = _links(request, as_of, None)
    async with reader_for_request(request) as api:
        return _html(await quality_page(api, links, scope, sort))


@router.get("/explain")
async def explain(
    request: Request,
    code: Annotated[str, Query(max_length=80)],
    scope: Annotated[str, Query(max_length=40)] = "national",
    key: Annotated[str, Query(max_length=120)] = "",
    as_of: AsOfQuery = None,
    cursor: Annotated[str | None, Query(max_length=600)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = EXPLAIN_PAGE_SIZE,
) -> HTMLResponse:
    """The entities that make one figure, from ``GET /v1/indicators/explain`` (which checks the scope,
    the code, the key and the cursor)."""
    links = _links(request, as_of, None)
    async with reader_for_request(request) as api:
        return _html(await explain_page(api, links, scope, code, key, cursor, limit))


@router.get("/editions")
async def editions(request: Request) -> HTMLResponse:
    async with reader_for_request(request) as api:
        return _html(await editions_page(api, _links(request, None, None)))


@router.get("/editions/{edition_id}")
async def edition(request: Request, edition_id: Annotated[str, Path(max_length=36)]) -> HTMLResponse:
    async with reader_for_request(request) as api:
        return _html(await edition_page(api, _links(request, None, None), edition_id))


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    path = (render.STATIC_DIR / name).resolve()
    if not path.is_relative_to(render.STATIC_DIR) or not path.is_file():
        raise Problem(404, f"No file {name!r}")
    return file_response(path, immutable=False)


@router.get("/assets/{path:path}")
async def assets(path: str) -> FileResponse:
    if not path.startswith("dsfr/"):
        raise Problem(404, f"No asset {path!r}")
    return file_response(asset_path(path))


@reports_router.get(
    "/bilan",
    summary="The Bilan of a scope at an instant, generated from the indicators (HTML or PDF)",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The report"},
        **problem_responses(404, 422),
    },
)
async def bilan(
    request: Request,
    scope: Annotated[str, Query(description="national, region:<code> or territory:<id>", max_length=40)] = "national",
    as_of: AsOfQuery = None,
    compare: CompareQuery = None,
    format: Annotated[Literal["html", "pdf"], Query(description="html (default) or pdf")] = "html",
) -> Response:
    links = _links(request, as_of, compare)
    async with reader_for_request(request) as api:
        page = await scope_page(api, links, scope)
    name = f"bilan-{scope.replace(':', '-')}" + (f"-{as_of[:10]}" if as_of else "")
    if format == "pdf":
        return Response(
            await asyncio.to_thread(render.bilan_pdf, page),  # CPU-bound: off the event loop
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}.pdf"', "Cache-Control": "no-cache"},
        )
    return HTMLResponse(render.bilan_html(page), headers={"Cache-Control": "no-cache"})
