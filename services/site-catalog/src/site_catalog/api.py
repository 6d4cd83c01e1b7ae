"""The routes of the site catalogue (sites, imports, reads): HTTP → a service call → the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from ti_shared.app import UnitOfWork, driver_unit_of_work, read_repository, unit_of_work
from ti_shared.auth import Principal, scoped
from ti_shared.http import (
    CSV_TYPES,
    MULTIPART,
    XLSX_TYPE,
    CursorQuery,
    DryRunQuery,
    EffectiveAtHeader,
    LimitQuery,
    Page,
    TiRoute,
    accepts,
    etag_of,
    not_modified,
    parse_effective_at,
    write_response,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import problem_responses
from ti_shared.types import TERRITORY_ID_PATTERN, DepartementCode, RegionCode
from ti_shared.uploads import read_upload

from site_catalog import service
from site_catalog.schemas import (
    SITE_EXAMPLE,
    SITE_ID_PATTERN,
    ImportMode,
    Maturity,
    OwnerKind,
    SiteBody,
    SiteHistory,
    SiteImportReport,
    SiteResource,
    SiteStatus,
)

SITES_WRITE = "sites:write"
IMPORT_MAX_BYTES = 16 * 1024 * 1024

router = APIRouter(route_class=TiRoute, tags=["sites"])

SiteIdPath = Annotated[
    str, Path(pattern=SITE_ID_PATTERN, description="The site's id, e.g. the CNIG form 13004_SITE-ECO_00001")
]
WriterDep = Annotated[Principal, scoped(SITES_WRITE)]
UowDep = Annotated[UnitOfWork[service.Repository], Depends(unit_of_work)]
#: a PUT's unit of work: its statements are all prepared ones, run on the driver's connection
PutUowDep = Annotated[UnitOfWork[service.Repository], Depends(driver_unit_of_work)]
ReadRepoDep = Annotated[service.Repository, Depends(read_repository)]

CSV_EXAMPLE = (
    "site_id;site_nom;site_comm_insee;site_surf_brute;site_maturite;site_friche;site_date_label;"
    "site_atelier;site_feuille_route;site_proprietaire;site_statut;territory_id\n"
    "13004_SITE-ECO_00001;Port fluvial d'Arles;13004;25,00;ready;oui;2024-04-15;oui;non;entreprise;labelled;ti-9303\n"
)

_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A CSV in the shape of the CNIG « sites économiques » standard (`;` or `,`, UTF-8 or Latin-1), "
        "or the same as a multipart upload (field `file`), or an XLSX workbook",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.put(
    "/v1/sites/{site_id}",
    summary="Create or replace a site",
    description="Creates the site (201) or replaces its state (200). A body equal to the current state changes "
    "nothing: same version, no event. Needs the scope `sites:write` (or `admin`). Honours `If-Match`; an admin "
    "may back-date the change with `TI-Effective-At`.",
    response_model=SiteResource,
    responses={
        201: {"model": SiteResource, "description": "Created"},
        **problem_responses(401, 403, 409, 412, 413, 415, 422),
    },
)
async def put_site(
    site_id: SiteIdPath,
    body: Annotated[
        SiteBody,
        Body(openapi_examples={"site": {"summary": "A labelled site", "value": SITE_EXAMPLE}}),
    ],
    request: Request,
    uow: PutUowDep,
    principal: WriterDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.put_site(
        uow,
        principal,
        site_id,
        body,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
    )
    await uow.commit()
    return write_response(result, request)


# --- import ---------------------------------------------------------------------------------------


@router.post(
    "/v1/sites/imports",
    summary="Import sites from a CNIG « sites économiques » 1.0.1 file (CSV or XLSX)",
    description="Each row creates, updates or leaves unchanged one site, or is rejected with its reasons. "
    "`mode=atomic` (default) writes nothing when a row is rejected (422 with the report); `mode=partial` writes "
    "the valid rows. The programme's own values may be given in the query for the rows without them "
    "(`maturity`, `labelled_on`, `workshop_held`, `roadmap_delivered`, `territory_id`, …). `dry_run=true`: the "
    "report with 200, nothing written. Honours `Idempotency-Key`. The mapping is in docs/imports.md.",
    status_code=201,
    response_model=SiteImportReport,
    responses={
        200: {"model": SiteImportReport, "description": "A dry run's report (nothing was written)"},
        201: {"description": "The import report (rows created, updated, unchanged, rejected)"},
        **problem_responses(401, 403, 409, 413, 415, 422),
    },
    openapi_extra={**accepts(*CSV_TYPES, MULTIPART, XLSX_TYPE, max_body_bytes=IMPORT_MAX_BYTES), **_IMPORT_BODY},
)
async def import_sites(
    request: Request,
    uow: UowDep,
    principal: WriterDep,
    mode: Annotated[ImportMode, Query(description="atomic: all rows or none; partial: the valid rows")] = "atomic",
    dry_run: DryRunQuery = False,
    territory_id: Annotated[str | None, Query(description="For rows without territory_id", max_length=7)] = None,
    maturity: Annotated[Maturity | None, Query(description="For rows without site_maturite")] = None,
    land_recycling: Annotated[bool | None, Query(description="For rows without site_friche or site_evol_urba")] = None,
    labelled_on: Annotated[str | None, Query(description="For rows without site_date_label (YYYY-MM-DD)", max_length=10)] = None,
    workshop_held: Annotated[bool | None, Query(description="For rows without site_atelier")] = None,
    roadmap_delivered: Annotated[bool | None, Query(description="For rows without site_feuille_route")] = None,
    owner_kind: Annotated[OwnerKind | None, Query(description="For rows without site_proprietaire or site_moa_type")] = None,
    status: Annotated[SiteStatus | None, Query(description="For rows without site_statut (else labelled)")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    effective_at = parse_effective_at(effective_at_header, principal)
    defaults = service.site_defaults(
        territory_id=territory_id, maturity=maturity, land_recycling=land_recycling, labelled_on=labelled_on,
        workshop_held=workshop_held, roadmap_delivered=roadmap_delivered, owner_kind=owner_kind, status=status,
    )
    upload = await read_upload(request, max_bytes=IMPORT_MAX_BYTES)
    async with idempotent(uow, request, principal, idempotency_key, upload=upload, dry_run=dry_run) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.import_sites(
            uow, principal, upload, mode=mode, effective_at=effective_at, defaults=defaults, dry_run=dry_run
        )
        return await idem.finish(result, request)


@router.get(
    "/v1/sites/imports/{import_id}",
    summary="The report of an import",
    response_model=SiteImportReport,
    responses=problem_responses(404, 422),
)
async def get_site_import(import_id: Annotated[str, Path(max_length=36)], repo: ReadRepoDep) -> JSONResponse:
    return JSONResponse(await service.get_site_import(repo, import_id))


# --- reads --------------------------------------------------------------------------------------


@router.get(
    "/v1/sites",
    summary="List sites",
    description="Public. Filters combine; the region is that of the département of the site's commune. "
    "Ordered by id; follow `next_cursor` for the next page.",
    response_model=Page[SiteResource],
    responses=problem_responses(422),
)
async def list_sites(
    repo: ReadRepoDep,
    region_code: Annotated[RegionCode | None, Query(description="INSEE region code, e.g. 93")] = None,
    departement_code: Annotated[DepartementCode | None, Query(description="INSEE département code, e.g. 13")] = None,
    maturity: Annotated[Maturity | None, Query()] = None,
    land_recycling: Annotated[bool | None, Query()] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: Annotated[SiteStatus | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> JSONResponse:
    page = await service.list_sites(
        repo,
        region_code=region_code,
        departement_code=departement_code,
        maturity=maturity,
        land_recycling=land_recycling,
        territory_id=territory_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return JSONResponse(page.model_dump(mode="json"))


@router.get(
    "/v1/sites/{site_id}",
    summary="Read a site",
    description="Public. Returns `ETag: W/\"<version>\"`; `If-None-Match` with it gives 304.",
    response_model=SiteResource,
    responses={304: {"description": "Not modified"}, **problem_responses(404, 422)},
)
async def get_site(site_id: SiteIdPath, request: Request, repo: ReadRepoDep) -> Response:
    site = await service.get_site(repo, site_id)
    etag = etag_of(site.version)
    if not_modified(request, site.version):
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(site.model_dump(mode="json"), headers={"ETag": etag})


@router.get(
    "/v1/sites/{site_id}/history",
    summary="Every version of a site",
    description="Public. Each version with the change it made (site.labelled / updated / withdrawn), its time, "
    "its actor and the whole state after it, oldest first.",
    response_model=SiteHistory,
    responses=problem_responses(404, 422),
)
async def get_site_history(
    site_id: SiteIdPath, repo: ReadRepoDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> SiteHistory:
    return await service.get_site_history(repo, site_id, limit=limit, cursor=cursor)
