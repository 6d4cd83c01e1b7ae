"""The routes of ``/v1/actions``: HTTP → a service call → the response (status, ETag, problem)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    TiRoute,
    accepts,
    etag_of,
    not_modified,
    parse_effective_at,
    write_response,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import problem_responses
from ti_shared.types import TERRITORY_ID_PATTERN
from ti_shared.uploads import read_upload
from ti_shared.vocabulary import ActionStatus as Status
from ti_shared.vocabulary import Axis, Theme

from action_tracker import service
from action_tracker.schemas import (
    ACTION_ID_PATTERN,
    ActionPage,
    ActionPatch,
    ActionResource,
    ActionWrite,
    HistoryPage,
    PlanImportReport,
    Vocabulary,
)

router = APIRouter(prefix="/v1/actions", tags=["actions"], route_class=TiRoute)

UowDep = Annotated[UnitOfWork[service.Repository], Depends(unit_of_work)]
#: a PUT's unit of work: its statements are all prepared ones, run on the driver's connection
PutUowDep = Annotated[UnitOfWork[service.Repository], Depends(driver_unit_of_work)]
ReadRepoDep = Annotated[service.Repository, Depends(read_repository)]
WriterDep = Annotated[Principal, scoped("actions:write")]
ActionIdPath = Annotated[
    str, Path(pattern=ACTION_ID_PATTERN, description="The action's stable id", examples=["grist-ti-8402-17"])
]

ETAG_HEADER = {"ETag": {"description": 'W/"<version>"', "schema": {"type": "string"}}}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ActionResource,
        "description": "Updated, or unchanged (same version, no event)",
        "headers": ETAG_HEADER,
    },
    201: {"model": ActionResource, "description": "Created (or re-created after a deletion)", "headers": ETAG_HEADER},
    **problem_responses(401, 403, 404, 409, 412, 413, 415, 422),
}

PLAN_FILE_TYPES = (*CSV_TYPES, XLSX_TYPE, MULTIPART, "application/vnd.ms-excel", "application/octet-stream")
PLAN_MAX_BYTES = 16 * 1024 * 1024
PLAN_EXAMPLE_CSV = (
    "action_id;title;description;axis;themes;status;planned_start;planned_end;budget_eur;partners\n"
    "grist-17;Campus des métiers;Ouverture d'une formation;competences_attractivite;"
    "nouvelles_formations|besoin_formation;en_cours;2024-01-15;;120 000,00;Région|BPI\n"
)
PLAN_IMPORT_OPENAPI: dict[str, Any] = {
    **accepts(*PLAN_FILE_TYPES, max_body_bytes=PLAN_MAX_BYTES),
    "requestBody": {
        "required": True,
        "description": "The territory's plan: one action per row (a GRIST export).",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": PLAN_EXAMPLE_CSV},
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    },
}
PATCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/merge-patch+json": {
                "schema": {"$ref": "#/components/schemas/ActionPatch"},
                "example": {"status": "realise", "comment": "Inauguration le 12 septembre"},
            }
        }
    }
}


# --- reading -------------------------------------------------------------------------------------


@router.get(
    "/vocabulary",
    summary="The axes, themes and statuses of action plans, with their French labels",
    response_model=Vocabulary,
)
async def get_vocabulary() -> Vocabulary:
    return service.get_vocabulary()


@router.get(
    "",
    summary="List the actions of the plans (deleted ones excluded), by id",
    response_model=ActionPage,
    responses=problem_responses(422),
)
async def list_actions(
    repo: ReadRepoDep,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN, examples=["ti-8402"])] = None,
    region_code: Annotated[
        str | None, Query(description="Region of the action's territory (INSEE code)", examples=["84"])
    ] = None,
    axis: Axis | None = None,
    theme: Annotated[Theme | None, Query(description="Actions carrying this theme")] = None,
    status: Status | None = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> ActionPage:
    return await service.list_actions(
        repo,
        territory_id=territory_id,
        region_code=region_code,
        axis=axis,
        theme=theme,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/{action_id}",
    summary="Read one action (404 once deleted; its history stays readable)",
    response_model=ActionResource,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified (If-None-Match)"},
        **problem_responses(404, 422),
    },
)
async def get_action(action_id: ActionIdPath, request: Request, response: Response, repo: ReadRepoDep) -> Any:
    action = await service.get_action(repo, action_id)
    if not_modified(request, action.version):
        return Response(status_code=304, headers={"ETag": etag_of(action.version)})
    response.headers["ETag"] = etag_of(action.version)
    return action


@router.get(
    "/{action_id}/history",
    summary="Every version of an action: time, actor, changed fields, comment and state",
    response_model=HistoryPage,
    responses=problem_responses(404, 422),
)
async def get_action_history(
    action_id: ActionIdPath, repo: ReadRepoDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> HistoryPage:
    return await service.get_action_history(repo, action_id, limit=limit, cursor=cursor)


# --- writing -------------------------------------------------------------------------------------


@router.put(
    "/{action_id}",
    summary="Create or replace an action under a stable id chosen by the client",
    response_model=ActionResource,
    status_code=200,
    responses=WRITE_RESPONSES,
)
async def put_action(
    action_id: ActionIdPath,
    body: Annotated[ActionWrite, Body()],
    request: Request,
    uow: PutUowDep,
    principal: WriterDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.put_action(
        uow,
        principal,
        action_id,
        body,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )
    await uow.commit()
    return write_response(result, request)


@router.post(
    "",
    summary="Create an action with an id chosen by the server",
    response_model=ActionResource,
    status_code=201,
    responses={
        201: {
            "model": ActionResource,
            "description": "Created",
            "headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 409, 413, 415, 422),
    },
)
async def create_action(
    body: ActionWrite,
    request: Request,
    uow: UowDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    at = parse_effective_at(effective_at_header, principal)
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.create_action(uow, principal, body, effective_at=at)
        return await idem.commit(write_response(result, request))


@router.patch(
    "/{action_id}",
    summary="Change some fields of an action (JSON merge patch), typically its status with a comment",
    response_model=ActionResource,
    responses={k: v for k, v in WRITE_RESPONSES.items() if k != 201},
    openapi_extra=PATCH_OPENAPI,
)
async def patch_action(
    action_id: ActionIdPath,
    patch: ActionPatch,
    request: Request,
    uow: UowDep,
    principal: WriterDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.patch_action(
        uow,
        principal,
        action_id,
        patch,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
    )
    await uow.commit()
    return write_response(result, request)


@router.delete(
    "/{action_id}",
    summary="Remove an action from its plan (kept in its history, with deleted: true)",
    response_model=ActionResource,
    responses={
        200: {"description": "Deleted: the last state with deleted: true"},
        **problem_responses(401, 403, 404, 409, 412, 422),
    },
)
async def delete_action(
    action_id: ActionIdPath,
    request: Request,
    uow: UowDep,
    principal: WriterDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.delete_action(
        uow,
        principal,
        action_id,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
    )
    await uow.commit()
    return write_response(result, request)


# --- plan imports --------------------------------------------------------------------------------


@router.post(
    "/plan-imports",
    summary="Import a territory's plan (semester campaign) from a CSV or XLSX file, with a per-row report",
    response_model=PlanImportReport,
    responses=problem_responses(401, 403, 409, 413, 415, 422),
    openapi_extra=PLAN_IMPORT_OPENAPI,
)
async def import_plan(
    request: Request,
    uow: UowDep,
    principal: WriterDep,
    territory_id: Annotated[
        str,
        Query(pattern=TERRITORY_ID_PATTERN, description="The territory whose plan the file is", examples=["ti-8402"]),
    ],
    mode: Annotated[
        Literal["atomic", "partial"], Query(description="atomic: all rows or nothing; partial: the valid rows")
    ] = "atomic",
    delete_missing: Annotated[bool, Query(description="Delete the territory's actions absent from the file")] = False,
    dry_run: DryRunQuery = False,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    at = parse_effective_at(effective_at_header, principal)
    upload = await read_upload(request, max_bytes=PLAN_MAX_BYTES)
    async with idempotent(uow, request, principal, idempotency_key, upload=upload, dry_run=dry_run) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.import_plan(
            uow, principal, territory_id, upload, mode=mode, delete_missing=delete_missing, effective_at=at, dry_run=dry_run
        )
        return await idem.finish(result, request)
