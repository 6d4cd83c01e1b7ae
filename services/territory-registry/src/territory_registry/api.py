"""The registry's routes (reference data, territories, imports): HTTP → a service call → the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
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
from ti_shared.problems import PROBLEM_MEDIA_TYPE, problem_responses
from ti_shared.types import TERRITORY_ID_PATTERN
from ti_shared.uploads import read_upload

from territory_registry import service
from territory_registry.schemas import (
    TERRITORY_EXAMPLE,
    Departement,
    ImportKind,
    ImportMode,
    ImportRejection,
    ImportReport,
    Region,
    Territory,
    TerritoryFields,
    TerritoryStatus,
    TerritoryVersion,
)

WRITE_SCOPE = "territories:write"
MAX_IMPORT_BYTES = 16 * 1024 * 1024

WriterDep = Annotated[Principal, scoped(WRITE_SCOPE)]
UowDep = Annotated[UnitOfWork[service.Repository], Depends(unit_of_work)]
#: a PUT's unit of work: its statements are all prepared ones, run on the driver's connection
PutUowDep = Annotated[UnitOfWork[service.Repository], Depends(driver_unit_of_work)]
ReadRepoDep = Annotated[service.Repository, Depends(read_repository)]
TerritoryIdPath = Annotated[str, Path(description="ANCT's id_ti, e.g. ti-8402", examples=["ti-8402"])]

reference_router = APIRouter(route_class=TiRoute, tags=["reference"])
router = APIRouter(route_class=TiRoute, tags=["territories"])


# --- reference data --------------------------------------------------------------------------


RegionQuery = Annotated[str | None, Query(description="An INSEE region code, e.g. 84", examples=["84"], max_length=3)]


@reference_router.get("/v1/regions", summary="List the 18 regions (INSEE COG)", response_model=list[Region])
async def list_regions() -> list[Region]:
    return service.list_regions()


@reference_router.get(
    "/v1/departements",
    summary="List the 101 départements (INSEE COG), optionally those of one region",
    response_model=list[Departement],
    responses=problem_responses(422),
)
async def list_departements(region_code: RegionQuery = None) -> list[Departement]:
    return service.list_departements(region_code)


# --- territories -----------------------------------------------------------------------------


@router.put(
    "/v1/territories/{territory_id}",
    summary="Register or update a territory (its whole state)",
    description=(
        "Creates the territory (201) or replaces its state (200). A body equal to the current state changes "
        "nothing: same version, no event. Honours If-Match (412) and, for admin tokens, TI-Effective-At."
    ),
    response_model=Territory,
    responses={201: {"model": Territory, "description": "Registered"}, **problem_responses(401, 403, 409, 412, 413, 415, 422)},
)
async def put_territory(
    request: Request,
    territory_id: Annotated[str, Path(pattern=TERRITORY_ID_PATTERN, description="ANCT's id_ti", examples=["ti-8402"])],
    body: Annotated[
        TerritoryFields,
        Body(openapi_examples={"territory": {"summary": "A labelled territory", "value": TERRITORY_EXAMPLE}}),
    ],
    principal: WriterDep,
    uow: PutUowDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.put_territory(
        uow,
        principal,
        territory_id,
        body,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
    )
    await uow.commit()
    return write_response(result, request)


@router.get(
    "/v1/territories",
    summary="List territories, by piloting region and status",
    response_model=Page[Territory],
    responses=problem_responses(422),
)
async def list_territories(
    repo: ReadRepoDep,
    region_code: RegionQuery = None,
    status: Annotated[TerritoryStatus | None, Query(description="active or withdrawn")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[Territory]:
    return await service.list_territories(repo, region_code=region_code, status=status, limit=limit, cursor=cursor)


@router.get(
    "/v1/territories/{territory_id}",
    summary="Get a territory",
    description="Returns `ETag: W/\"<version>\"`; `If-None-Match` with the current ETag gives 304.",
    response_model=Territory,
    responses={304: {"description": "Not modified"}, **problem_responses(404)},
)
async def get_territory(request: Request, response: Response, territory_id: TerritoryIdPath, repo: ReadRepoDep) -> Any:
    resource = await service.get_territory(repo, territory_id)
    if not_modified(request, resource.version):
        return Response(status_code=304, headers={"ETag": etag_of(resource.version)})
    response.headers["ETag"] = etag_of(resource.version)
    return resource


@router.get(
    "/v1/territories/{territory_id}/history",
    summary="Every version of a territory: time, actor, changed fields and full state",
    response_model=Page[TerritoryVersion],
    responses=problem_responses(404, 422),
)
async def get_territory_history(
    territory_id: TerritoryIdPath, repo: ReadRepoDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[TerritoryVersion]:
    return await service.get_territory_history(repo, territory_id, limit=limit, cursor=cursor)


# --- imports ---------------------------------------------------------------------------------

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "examples": {
                    "territories": {
                        "summary": "The territories list",
                        "value": "id_ti;lib_ti;code_reg;codes_dep;phase;date_labellisation;statut\n"
                        "ti-8402;Bassin de Bourg-en-Bresse;84;01;temps-2;09/11/2023;active\n",
                    },
                    "groupements": {
                        "summary": "The groupements file (one row per EPCI)",
                        "value": "id_ti;lib_groupement;siren_groupement\n"
                        "ti-8402;CA du Bassin de Bourg-en-Bresse;200071751\n",
                    },
                },
            },
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            MULTIPART: {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}
            },
        },
    }
}


@router.post(
    "/v1/territories/imports",
    summary="Import ANCT's territories list or groupements file (CSV or XLSX), with a per-row report",
    description=(
        "`kind=territories`: one row per territory (`id_ti;lib_ti;code_reg;codes_dep;…`), or ANCT's commune-level "
        "list (`insee_com;lib_com;id_ti;lib_ti`, one row per commune: told by its `insee_com` column). "
        "`kind=groupements`: one row per EPCI (`id_ti;lib_groupement;siren_groupement`); the EPCIs listed for a "
        "territory replace its EPCI list. `mode=atomic` (default): any rejected row and nothing is imported (422 "
        "with the report); `mode=partial`: the valid rows are imported. `dry_run=true`: the report with 200, nothing "
        "written. Honours `Idempotency-Key`."
    ),
    response_model=ImportReport,
    responses={
        **problem_responses(401, 403, 409, 413, 415),
        422: {
            "model": ImportRejection,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": "Unreadable file, or rows rejected in atomic mode (then with the report)",
        },
    },
    openapi_extra={**accepts(*CSV_TYPES, XLSX_TYPE, MULTIPART, max_body_bytes=MAX_IMPORT_BYTES), **_IMPORT_BODY},
)
async def import_territories(
    request: Request,
    principal: WriterDep,
    uow: UowDep,
    kind: Annotated[ImportKind, Query(description="territories or groupements")] = "territories",
    mode: Annotated[ImportMode, Query(description="atomic (all or nothing) or partial")] = "atomic",
    dry_run: DryRunQuery = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    upload = await read_upload(request, max_bytes=MAX_IMPORT_BYTES)
    async with idempotent(uow, request, principal, idempotency_key, upload=upload, dry_run=dry_run) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.import_territories(uow, principal, upload, kind=kind, mode=mode, dry_run=dry_run)
        return await idem.finish(result, request)
