"""The routes of the site catalogue: parse → domain → repository → unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from ti_shared.app import ReadSessionDep, UnitOfWork, UowDep
from ti_shared.auth import Principal, scoped
from ti_shared.events import TOPIC_SITES
from ti_shared.http import (
    CSV_TYPES,
    MULTIPART,
    XLSX_TYPE,
    CursorQuery,
    EffectiveAtHeader,
    LimitQuery,
    Page,
    TiRoute,
    accepts,
    check_if_match,
    check_not_before,
    decode_cursor,
    encode_cursor,
    etag_of,
    not_modified,
    parse_effective_at,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, field_problem, problem_responses
from ti_shared.replica import known_territories
from ti_shared.tabular import read_table
from ti_shared.types import TERRITORY_ID_PATTERN, DepartementCode, RegionCode
from ti_shared.uploads import Upload, read_upload

from site_catalog.domain import SiteChange, plan_write, territory_to_check
from site_catalog.events import EVENT_OF_CHANGE
from site_catalog.imports import parse_rows
from site_catalog.repository import (
    SiteFilter,
    get_import,
    get_site,
    list_sites,
    save_import,
    save_site,
    site_history,
)
from site_catalog.schemas import (
    RESERVED_SITE_IDS,
    SITE_EXAMPLE,
    SITE_ID_PATTERN,
    ImportCounts,
    ImportMode,
    ImportRow,
    ImportRowError,
    Maturity,
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


# --- writing one site ---------------------------------------------------------------------------


async def write_site(
    uow: UnitOfWork[Any],
    site_id: str,
    current: SiteResource | None,
    body: SiteBody,
    actor: str,
    effective_at: datetime | None,
    known: set[str] | None = None,
) -> SiteChange:
    """Apply ``body`` to the site in the unit of work: the new row, its history row and its event."""
    change = plan_write(site_id, current, body, effective_at or uow.now)
    if not change.changed:
        return change
    check_not_before(effective_at, current.updated_at if current else None)
    territory = territory_to_check(current, body)
    if territory is not None:
        if known is None:
            known = set(await known_territories(uow.session, {territory}))
        if territory not in known:
            raise field_problem(
                ["body", "territory_id"], f"the territory '{territory}' is unknown to the territory registry"
            )
    assert change.kind is not None
    resource = change.resource
    await save_site(uow.session, resource, change.kind, actor)
    await uow.record(
        topic=TOPIC_SITES,
        type_=EVENT_OF_CHANGE[change.kind].type,
        subject=site_id,
        version=resource.version,
        actor=actor,
        data=resource.model_dump(mode="json"),
        time=resource.updated_at,
    )
    return change


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
    response: Response,
    uow: UowDep,
    principal: WriterDep,
    effective_at_header: EffectiveAtHeader = None,
) -> SiteResource:
    if site_id in RESERVED_SITE_IDS:
        raise field_problem(["path", "site_id"], f"'{site_id}' is reserved (it names an endpoint under /v1/sites)")
    effective_at = parse_effective_at(effective_at_header, principal)
    current = await get_site(uow.session, site_id, for_update=True)
    check_if_match(request, current.version if current else None)
    change = await write_site(uow, site_id, current, body, principal.sub, effective_at)
    await uow.commit()
    response.status_code = 201 if change.kind == "labelled" else 200
    response.headers["ETag"] = etag_of(change.resource.version)
    return change.resource


# --- import ---------------------------------------------------------------------------------------


@router.post(
    "/v1/sites/imports",
    summary="Import sites from a CNIG « sites économiques » CSV",
    description="Each row creates, updates or leaves unchanged one site, or is rejected with its reasons. "
    "`mode=atomic` (default) writes nothing when a row is rejected (422 with the report); `mode=partial` writes "
    "the valid rows. Honours `Idempotency-Key`. The column mapping is in docs/site-catalog.md.",
    status_code=201,
    response_model=SiteImportReport,
    responses={
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
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    effective_at = parse_effective_at(effective_at_header, principal)
    upload = await read_upload(request, max_bytes=IMPORT_MAX_BYTES)
    async with idempotent(uow, request, principal, idempotency_key, upload=upload) as idem:
        if idem.replay is not None:
            return idem.replay
        return await idem.commit(await _run_import(request, uow, principal, upload, mode, effective_at))


async def _run_import(
    request: Request,
    uow: UnitOfWork[Any],
    principal: Principal,
    upload: Upload,
    mode: ImportMode,
    effective_at: datetime | None,
) -> JSONResponse:
    parsed = parse_rows(read_table(upload.data, upload.media_type))
    wanted = {p.body.territory_id for p in parsed if p.body is not None and p.body.territory_id}
    known = set(await known_territories(uow.session, wanted))
    rows: list[ImportRow] = []
    pending: list[tuple[int, str, SiteResource | None, SiteBody]] = []
    for p in parsed:
        if p.body is None or p.site_id is None:
            rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="rejected", version=None, errors=p.errors))
            continue
        current = await get_site(uow.session, p.site_id, for_update=True)
        errors = _row_problems(p.site_id, current, p.body, effective_at or uow.now, effective_at, known)
        if errors:
            rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="rejected", version=None, errors=errors))
            continue
        rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="unchanged", version=None))
        pending.append((len(rows) - 1, p.site_id, current, p.body))
    rejected = [r for r in rows if r.outcome == "rejected"]
    refused = mode == "atomic" and bool(rejected)
    if not refused:
        for index, site_id, current, body in pending:
            change = await write_site(uow, site_id, current, body, principal.sub, effective_at, known)
            outcome = "unchanged" if not change.changed else "created" if change.kind == "labelled" else "updated"
            rows[index] = ImportRow(row=rows[index].row, site_id=site_id, outcome=outcome, version=change.resource.version)
    counts = ImportCounts()
    for r in rows:
        setattr(counts, r.outcome, getattr(counts, r.outcome) + 1)
    report = SiteImportReport(
        id=None if refused else str(uuid.uuid4()),
        mode=mode,
        status="refused" if refused else "applied",
        imported_at=uow.now,
        actor=principal.sub,
        row_count=len(rows),
        counts=counts,
        rows=rows,
    )
    document = report.model_dump(mode="json")
    if refused:
        problem_errors = [
            {"loc": ["body", r.row, e.column or "row"], "msg": e.msg}
            for r in rejected
            for e in r.errors
        ]
        problem = Problem(
            422,
            f"{len(rejected)} of {len(rows)} rows are invalid; nothing was imported (mode=atomic)",
            title="Invalid content",
            kind="import-refused",
            errors=problem_errors,
        )
        return JSONResponse({**problem.body(str(request.url.path)), "report": document}, status_code=422, media_type=PROBLEM_MEDIA_TYPE)
    assert report.id is not None
    await save_import(uow.session, report.id, mode, principal.sub, uow.now, document)
    return JSONResponse(document, status_code=201, headers={"Location": f"/v1/sites/imports/{report.id}"})


def _row_problems(
    site_id: str,
    current: SiteResource | None,
    body: SiteBody,
    at: datetime,
    effective_at: datetime | None,
    known: set[str],
) -> list[ImportRowError]:
    if not plan_write(site_id, current, body, at).changed:
        return []
    errors = []
    territory = territory_to_check(current, body)
    if territory is not None and territory not in known:
        errors.append(
            ImportRowError(column="territory_id", field="territory_id", msg=f"the territory '{territory}' is unknown to the territory registry")
        )
    try:
        check_not_before(effective_at, current.updated_at if current else None)
    except Problem as exc:
        errors.append(ImportRowError(column=None, field=None, msg=exc.detail))
    return errors


@router.get(
    "/v1/sites/imports/{import_id}",
    summary="The report of an import",
    response_model=SiteImportReport,
    responses=problem_responses(404, 422),
)
async def get_site_import(import_id: Annotated[str, Path(max_length=36)], session: ReadSessionDep) -> JSONResponse:
    report = await get_import(session, import_id)
    if report is None:
        raise Problem(404, f"No import '{import_id}'")
    return JSONResponse(report)


# --- reads --------------------------------------------------------------------------------------


def _after(cursor: str | None, kind: type) -> Any:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if len(key) != 1 or not isinstance(key[0], kind) or isinstance(key[0], bool):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    return key[0]


@router.get(
    "/v1/sites",
    summary="List sites",
    description="Public. Filters combine; the region is that of the département of the site's commune. "
    "Ordered by id; follow `next_cursor` for the next page.",
    response_model=Page[SiteResource],
    responses=problem_responses(422),
)
async def list_sites_(
    session: ReadSessionDep,
    region_code: Annotated[RegionCode | None, Query(description="INSEE region code, e.g. 93")] = None,
    departement_code: Annotated[DepartementCode | None, Query(description="INSEE département code, e.g. 13")] = None,
    maturity: Annotated[Maturity | None, Query()] = None,
    land_recycling: Annotated[bool | None, Query()] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: Annotated[SiteStatus | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> JSONResponse:
    where = SiteFilter(region_code, departement_code, maturity, land_recycling, territory_id, status)
    items = await list_sites(session, where, _after(cursor, str), limit + 1)
    next_cursor = encode_cursor([items[limit - 1].id]) if len(items) > limit else None
    return JSONResponse({"items": [s.model_dump(mode="json") for s in items[:limit]], "next_cursor": next_cursor})


@router.get(
    "/v1/sites/{site_id}",
    summary="Read a site",
    description="Public. Returns `ETag: W/\"<version>\"`; `If-None-Match` with it gives 304.",
    response_model=SiteResource,
    responses={304: {"description": "Not modified"}, **problem_responses(404, 422)},
)
async def get_site_(site_id: SiteIdPath, request: Request, session: ReadSessionDep) -> Response:
    site = await get_site(session, site_id)
    if site is None:
        raise Problem(404, f"No site '{site_id}'")
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
    site_id: SiteIdPath, session: ReadSessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> SiteHistory:
    if await get_site(session, site_id) is None:
        raise Problem(404, f"No site '{site_id}'")
    entries = await site_history(session, site_id, _after(cursor, int), limit + 1)
    next_cursor = encode_cursor([entries[limit - 1].version]) if len(entries) > limit else None
    return SiteHistory(items=entries[:limit], next_cursor=next_cursor)
