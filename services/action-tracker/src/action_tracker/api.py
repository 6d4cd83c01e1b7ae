"""The routes of ``/v1/actions``: parse → domain → repository → unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ti_shared.app import ReadSessionDep, UnitOfWork, UowDep
from ti_shared.auth import Principal, scoped
from ti_shared.events import TOPIC_ACTIONS
from ti_shared.geo import REGIONS
from ti_shared.http import (
    CSV_TYPES,
    MULTIPART,
    XLSX_TYPE,
    CursorQuery,
    EffectiveAtHeader,
    LimitQuery,
    TiRoute,
    accepts,
    check_if_match,
    check_not_before,
    decode_cursor,
    encode_cursor,
    etag_of,
    if_none_match,
    not_modified,
    parse_effective_at,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import Problem, clean_pydantic_errors, field_problem, problem_responses, validation_problem
from ti_shared.replica import known_territories
from ti_shared.tabular import read_table
from ti_shared.types import TERRITORY_ID_PATTERN
from ti_shared.uploads import read_upload
from ti_shared.vocabulary import AXIS_LABELS, STATUS_LABELS, THEME_AXES, THEME_LABELS, Axis, Theme
from ti_shared.vocabulary import ActionStatus as Status

from action_tracker import repository as repo
from action_tracker.domain import (
    ACTION_ID_PATTERN,
    RESERVED_ACTION_IDS,
    Change,
    Decision,
    decide_delete,
    decide_write,
    territories_touched,
)
from action_tracker.events import EVENT_OF_CHANGE
from action_tracker.plan_import import PlanRow, plan_columns, read_plan
from action_tracker.schemas import (
    ActionBody,
    ActionPage,
    ActionPatch,
    ActionResource,
    ActionWrite,
    HistoryEntry,
    HistoryPage,
    PlanImportMissing,
    PlanImportReport,
    PlanImportRow,
    PlanImportSummary,
    ThemeTerm,
    Vocabulary,
    VocabularyTerm,
)

#: data rows of one territory's plan file (the largest plans have a few hundred actions)
MAX_PLAN_ROWS = 10_000

router = APIRouter(prefix="/v1/actions", tags=["actions"], route_class=TiRoute)

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
    return Vocabulary(
        axes=[VocabularyTerm(code=c, label=label) for c, label in AXIS_LABELS.items()],
        themes=[ThemeTerm(code=c, label=label, axis=THEME_AXES[c]) for c, label in THEME_LABELS.items()],  # type: ignore[arg-type]
        statuses=[VocabularyTerm(code=c, label=label) for c, label in STATUS_LABELS.items()],
    )


@router.get(
    "",
    summary="List the actions of the plans (deleted ones excluded), by id",
    response_model=ActionPage,
    responses=problem_responses(422),
)
async def list_actions(
    session: ReadSessionDep,
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
    if region_code is not None and region_code not in REGIONS:
        raise field_problem(["query", "region_code"], "is not an INSEE region code (" + ", ".join(REGIONS) + ")")
    key = decode_cursor(cursor)
    if key is not None and (len(key) != 1 or not isinstance(key[0], str)):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    where = repo.ActionFilter(territory_id=territory_id, region_code=region_code, axis=axis, theme=theme, status=status)
    rows = await repo.list_actions(session, where, limit=limit + 1, after=key[0] if key else None)
    page = rows[:limit]
    next_cursor = encode_cursor([page[-1].action_id]) if len(rows) > limit else None
    return ActionPage(items=[ActionResource.model_validate(r.resource()) for r in page], next_cursor=next_cursor)


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
async def get_action(action_id: ActionIdPath, request: Request, session: ReadSessionDep) -> Response:
    stored = await repo.load_action(session, action_id)
    if stored is None or stored.deleted:
        raise _not_found(action_id, stored)
    if not_modified(request, stored.version):
        return Response(status_code=304, headers={"ETag": etag_of(stored.version)})
    return _resource_response(stored, 200)


@router.get(
    "/{action_id}/history",
    summary="Every version of an action: time, actor, changed fields, comment and state",
    response_model=HistoryPage,
    responses=problem_responses(404, 422),
)
async def get_action_history(
    action_id: ActionIdPath, session: ReadSessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> HistoryPage:
    key = decode_cursor(cursor)
    if key is not None and (len(key) != 1 or not isinstance(key[0], int)):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    versions = await repo.list_versions(session, action_id, limit=limit + 1, after=key[0] if key else None)
    if not versions and key is None:
        raise Problem(404, f"No action '{action_id}'")
    page = versions[:limit]
    return HistoryPage(
        action_id=action_id,
        items=[
            HistoryEntry(
                version=v.version,
                time=v.recorded_at,
                actor=v.actor,
                change=v.change,  # type: ignore[arg-type]
                event_type=EVENT_OF_CHANGE[Change(v.change)].type,
                changed_fields=v.changed_fields,
                comment=v.comment,
                state=ActionResource.model_validate(v.state),
            )
            for v in page
        ],
        next_cursor=encode_cursor([page[-1].version]) if len(versions) > limit else None,
    )


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
    uow: UowDep,
    principal: WriterDep,
    effective_at: EffectiveAtHeader = None,
) -> Response:
    if action_id in RESERVED_ACTION_IDS:
        raise field_problem(["path", "action_id"], "is reserved: " + ", ".join(sorted(RESERVED_ACTION_IDS)))
    if body.id is not None and body.id != action_id:
        raise field_problem(["body", "id"], "must equal the action id of the path")
    at = parse_effective_at(effective_at, principal)
    current = await repo.load_action(uow.session, action_id, for_update=True)
    check_if_match(request, _live_version(current))
    if if_none_match(request.headers.get("if-none-match"), _live_etag(current)):
        raise Problem(412, "If-None-Match matches the action's current version")
    new = body.body().canonical()
    await _authorize(uow, principal, current, new)
    stored, decision = await _write(uow, principal, action_id, current, new, comment=body.comment, at=at)
    await uow.commit()
    return _resource_response(stored, 201 if decision.change is Change.CREATED else 200)


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
    effective_at: EffectiveAtHeader = None,
) -> Response:
    if body.id is not None:
        raise field_problem(
            ["body", "id"], "is chosen by the server here; use PUT /v1/actions/{action_id} to choose it"
        )
    at = parse_effective_at(effective_at, principal)
    new = body.body().canonical()
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        await _authorize(uow, principal, None, new)
        action_id = "act-" + uuid.uuid4().hex
        stored, _ = await _write(uow, principal, action_id, None, new, comment=body.comment, at=at)
        response = _resource_response(stored, 201)
        response.headers["Location"] = f"/v1/actions/{action_id}"
        return await idem.commit(response)


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
    effective_at: EffectiveAtHeader = None,
) -> Response:
    at = parse_effective_at(effective_at, principal)
    current = await repo.load_action(uow.session, action_id, for_update=True)
    if current is None or current.deleted:
        raise _not_found(action_id, current)
    check_if_match(request, current.version)
    changes = {k: ([] if v is None and k in ("themes", "partners") else v) for k, v in patch.changes().items()}
    try:
        new = ActionBody.model_validate({**current.body, **changes}).canonical()
    except ValidationError as exc:
        raise validation_problem(
            [{**e, "loc": ["body", *e["loc"]]} for e in clean_pydantic_errors(exc.errors())]
        ) from exc
    await _authorize(uow, principal, current, new)
    stored, _ = await _write(uow, principal, action_id, current, new, comment=patch.comment, at=at)
    await uow.commit()
    return _resource_response(stored, 200)


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
    effective_at: EffectiveAtHeader = None,
) -> Response:
    at = parse_effective_at(effective_at, principal)
    current = await repo.load_action(uow.session, action_id, for_update=True)
    if current is None or current.deleted:
        raise _not_found(action_id, current)
    check_if_match(request, current.version)
    for territory in territories_touched(current.body, None):
        principal.require_territory(territory)
    check_not_before(at, current.updated_at)
    stored = await _apply(
        uow, principal, current, decide_delete(False), current.body, deleted=True, comment=None, at=at
    )
    await uow.commit()
    return _resource_response(stored, 200)


# --- plan imports --------------------------------------------------------------------------------


class PlanImportRefused(Problem):
    """An atomic import with rejected rows: 422, the report tells which rows and why."""

    def __init__(self, report: PlanImportReport, errors: list[dict[str, Any]]) -> None:
        super().__init__(
            422,
            f"{report.summary.rejected} row(s) rejected: the atomic import changed nothing",
            title="Invalid content",
            kind="plan-import-rejected",
            errors=errors,
        )
        self.report = report

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return {**super().body(instance), "report": self.report.model_dump(mode="json")}


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
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at: EffectiveAtHeader = None,
) -> Response:
    principal.require_territory(territory_id)
    at = parse_effective_at(effective_at, principal)
    upload = await read_upload(request, max_bytes=PLAN_MAX_BYTES)
    table = read_table(upload.data, upload.media_type, max_rows=MAX_PLAN_ROWS)
    columns, missing_columns = plan_columns(table[0].keys() if table else ())
    if table and missing_columns:
        raise validation_problem(
            [{"loc": ["body", "columns", c], "msg": "this column is required"} for c in missing_columns]
        )
    async with idempotent(uow, request, principal, idempotency_key, upload=upload) as idem:
        if idem.replay is not None:
            return idem.replay
        if not await known_territories(uow.session, {territory_id}):
            raise field_problem(["query", "territory_id"], f"unknown territory '{territory_id}'")
        report = await _import_plan(
            uow, principal, territory_id, read_plan(table, columns, territory_id), mode, delete_missing, at
        )
        return await idem.commit(JSONResponse(report.model_dump(mode="json"), status_code=200))


async def _import_plan(
    uow: UnitOfWork[Any],
    principal: Principal,
    territory_id: str,
    rows: list[PlanRow],
    mode: Literal["atomic", "partial"],
    delete_missing: bool,
    at: datetime | None,
) -> PlanImportReport:
    ids = {r.action_id for r in rows if r.action_id}
    current = await repo.load_actions(uow.session, ids, for_update=True)
    in_plan = await repo.load_territory_actions(uow.session, territory_id, for_update=True)
    planned: list[tuple[PlanRow, repo.StoredAction | None, dict[str, Any], Decision]] = []
    for row in rows:
        if not row.ok or row.action_id is None or row.body is None:
            continue
        before = current.get(row.action_id)
        new = row.body.canonical()
        decision = decide_write(before.body if before else None, before.deleted if before else False, new)
        if before is not None and not principal.is_admin and before.territory_id not in principal.territories:
            row.errors.append(
                {
                    "loc": ["action_id"],
                    "msg": f"belongs to territory {before.territory_id}, which this token may not write",
                }
            )
        elif not decision.is_noop and at is not None and before is not None and at < before.updated_at:
            if mode == "atomic":
                check_not_before(at, before.updated_at)
            row.errors.append(
                {"loc": ["TI-Effective-At"], "msg": "is earlier than this action's current version's time"}
            )
        else:
            planned.append((row, before, new, decision))
    missing = [a for a in in_plan if a.action_id not in ids]
    rejected = [r for r in rows if r.errors]
    results: dict[int, tuple[Decision, int]] = {
        row.row: (decision, (before.version if before else 0) + (0 if decision.is_noop else 1))
        for row, before, _, decision in planned
    }
    if mode == "atomic" and rejected:
        report = _plan_report(territory_id, mode, delete_missing, rows, results, missing, applied=False)
        raise PlanImportRefused(
            report, [{"loc": ["body", r.row, *e["loc"]], "msg": e["msg"]} for r in rejected for e in r.errors]
        )

    for row, before, new, decision in planned:
        if not decision.is_noop:
            await _apply(
                uow, principal, before, decision, new, deleted=False, comment=None, at=at, action_id=row.action_id
            )
    deleted: dict[str, int] = {}
    if delete_missing:
        for gone in missing:
            if at is not None and at < gone.updated_at:
                check_not_before(at, gone.updated_at)
            stored = await _apply(
                uow,
                principal,
                gone,
                decide_delete(False),
                gone.body,
                deleted=True,
                comment="absent from the plan import",
                at=at,
            )
            deleted[gone.action_id] = stored.version
    return _plan_report(territory_id, mode, delete_missing, rows, results, missing, applied=True, deleted=deleted)


def _plan_report(
    territory_id: str,
    mode: Literal["atomic", "partial"],
    delete_missing: bool,
    rows: list[PlanRow],
    results: dict[int, tuple[Decision, int]],
    missing: list[repo.StoredAction],
    *,
    applied: bool,
    deleted: dict[str, int] | None = None,
) -> PlanImportReport:
    deleted = deleted or {}
    lines: list[PlanImportRow] = []
    for row in rows:
        if row.errors:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="rejected", errors=row.errors))  # type: ignore[arg-type]
            continue
        decision, version = results[row.row]
        if decision.change is None:
            lines.append(PlanImportRow(row=row.row, action_id=row.action_id, outcome="unchanged", version=version))
        else:
            outcome = "created" if decision.change is Change.CREATED else "updated"
            lines.append(
                PlanImportRow(
                    row=row.row, action_id=row.action_id, outcome=outcome, change=decision.change.value, version=version
                )
            )  # type: ignore[arg-type]
    gone = [
        PlanImportMissing(
            action_id=a.action_id,
            outcome="deleted" if a.action_id in deleted else "missing",
            version=deleted.get(a.action_id, a.version),
        )
        for a in missing
    ]
    count = {o: sum(1 for line in lines if line.outcome == o) for o in ("created", "updated", "unchanged", "rejected")}
    return PlanImportReport(
        territory_id=territory_id,
        mode=mode,
        delete_missing=delete_missing,
        applied=applied,
        summary=PlanImportSummary(rows=len(rows), missing=len(gone), deleted=len(deleted), **count),
        rows=lines,
        missing=gone,
    )


# --- the write path ------------------------------------------------------------------------------


async def _authorize(
    uow: UnitOfWork[Any], principal: Principal, current: repo.StoredAction | None, new: dict[str, Any]
) -> None:
    """403 unless the token may write every territory touched; 422 when the new territory is unknown."""
    for territory in sorted(territories_touched(current.body if current else None, new)):
        principal.require_territory(territory)
    territory = new["territory_id"]
    if current is None or current.deleted or current.territory_id != territory:
        if not await known_territories(uow.session, {territory}):
            raise field_problem(
                ["body", "territory_id"], f"unknown territory '{territory}' (not in the territory registry)"
            )


async def _write(
    uow: UnitOfWork[Any],
    principal: Principal,
    action_id: str,
    current: repo.StoredAction | None,
    new: dict[str, Any],
    *,
    comment: str | None,
    at: datetime | None,
) -> tuple[repo.StoredAction, Decision]:
    decision = decide_write(current.body if current else None, current.deleted if current else False, new)
    if decision.is_noop:
        assert current is not None
        return current, decision
    check_not_before(at, current.updated_at if current else None)
    stored = await _apply(
        uow, principal, current, decision, new, deleted=False, comment=comment, at=at, action_id=action_id
    )
    return stored, decision


async def _apply(
    uow: UnitOfWork[Any],
    principal: Principal,
    current: repo.StoredAction | None,
    decision: Decision,
    body: dict[str, Any],
    *,
    deleted: bool,
    comment: str | None,
    at: datetime | None,
    action_id: str | None = None,
) -> repo.StoredAction:
    """Write the new version, its history row and its event, in the unit of work's transaction."""
    assert decision.change is not None
    time = at or uow.now
    if current is None:
        assert action_id is not None
        stored = repo.StoredAction(
            action_id=action_id, body=body, version=1, deleted=deleted, created_at=time, updated_at=time
        )
    else:
        stored = current.next_version(body, deleted=deleted, at=time)
    await repo.save_action(uow.session, stored, is_new=current is None)
    await repo.add_version(
        uow.session,
        stored,
        change=decision.change.value,
        actor=principal.sub,
        changed_fields=decision.changed_fields,
        comment=comment,
    )
    spec = EVENT_OF_CHANGE[decision.change]
    await uow.record(
        topic=TOPIC_ACTIONS,
        type_=spec.type,
        subject=stored.action_id,
        version=stored.version,
        actor=principal.sub,
        data=stored.resource(),
        time=time,
    )
    return stored


# --- helpers -------------------------------------------------------------------------------------


def _live_version(stored: repo.StoredAction | None) -> int | None:
    return stored.version if stored is not None and not stored.deleted else None


def _live_etag(stored: repo.StoredAction | None) -> str | None:
    version = _live_version(stored)
    return etag_of(version) if version is not None else None


def _not_found(action_id: str, stored: repo.StoredAction | None) -> Problem:
    if stored is not None and stored.deleted:
        return Problem(
            404,
            f"Action '{action_id}' was deleted (version {stored.version}); its history is at /v1/actions/{action_id}/history",
        )
    return Problem(404, f"No action '{action_id}'")


def _resource_response(stored: repo.StoredAction, status_code: int) -> JSONResponse:
    return JSONResponse(stored.resource(), status_code=status_code, headers={"ETag": etag_of(stored.version)})
