"""The registry's routes: reference data, territories (PUT, GET, list, history) and file imports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from ti_shared.app import ReadSessionDep, UnitOfWork, UowDep, concurrent_write
from ti_shared.auth import Principal, scoped
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.geo import DEPARTEMENTS, REGIONS
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
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, field_problem, problem_responses, validation_problem
from ti_shared.tabular import read_table
from ti_shared.types import TERRITORY_ID_PATTERN
from ti_shared.uploads import read_upload

from territory_registry import repository
from territory_registry.domain import FIELDS, PlannedChange, plan_change, territory_problems, territory_state
from territory_registry.events import TYPE_OF_CHANGE
from territory_registry.imports import (
    GROUPEMENT_COLUMNS,
    GROUPEMENT_REQUIRED,
    TERRITORY_COLUMNS,
    TERRITORY_REQUIRED,
    Candidate,
    file_territory_ids,
    groupement_candidates,
    resolve_columns,
    territory_candidates,
)
from territory_registry.schemas import (
    TERRITORY_EXAMPLE,
    Departement,
    ImportCounts,
    ImportKind,
    ImportMode,
    ImportRejection,
    ImportReport,
    ImportRowReport,
    Region,
    RowError,
    RowOutcome,
    Territory,
    TerritoryFields,
    TerritoryStatus,
    TerritoryVersion,
)

WRITE_SCOPE = "territories:write"
MAX_IMPORT_BYTES = 16 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000

WriterDep = Annotated[Principal, scoped(WRITE_SCOPE)]
TerritoryIdPath = Annotated[str, Path(description="ANCT's id_ti, e.g. ti-8402", examples=["ti-8402"])]

reference_router = APIRouter(route_class=TiRoute, tags=["reference"])
router = APIRouter(route_class=TiRoute, tags=["territories"])


# --- reference data --------------------------------------------------------------------------


def _region_query(value: str | None) -> str | None:
    if value is not None and value not in REGIONS:
        raise field_problem(["query", "region_code"], "is not an INSEE region code (" + ", ".join(REGIONS) + ")")
    return value


RegionQuery = Annotated[str | None, Query(description="An INSEE region code, e.g. 84", examples=["84"], max_length=3)]


@reference_router.get("/v1/regions", summary="List the 18 regions (INSEE COG)", response_model=list[Region])
async def list_regions() -> list[Region]:
    return [Region(code=code, name=name) for code, name in REGIONS.items()]


@reference_router.get(
    "/v1/departements",
    summary="List the 101 départements (INSEE COG), optionally those of one region",
    response_model=list[Departement],
    responses=problem_responses(422),
)
async def list_departements(region_code: RegionQuery = None) -> list[Departement]:
    wanted = _region_query(region_code)
    return [
        Departement(code=code, name=name, region_code=region)
        for code, (name, region) in DEPARTEMENTS.items()
        if wanted is None or region == wanted
    ]


# --- territories -----------------------------------------------------------------------------


async def save_territory(
    uow: UnitOfWork[Any],
    territory_id: str,
    current: Territory | None,
    fields: TerritoryFields,
    *,
    actor: str,
    effective_at: datetime | None,
) -> tuple[Territory, PlannedChange | None]:
    """Write ``fields`` over ``current`` with its history row and event; nothing when unchanged."""
    new_state = territory_state(fields)
    current_state = current.model_dump(mode="json", include=set(FIELDS)) if current is not None else None
    planned = plan_change(current_state, current.version if current is not None else None, new_state)
    if planned is None:
        assert current is not None
        return current, None
    time = effective_at or uow.now
    resource = Territory.model_validate({**new_state, "id": territory_id, "version": planned.version, "updated_at": time})
    if current is None:
        written = await repository.insert_territory(uow.session, resource, actor)
    else:
        written = await repository.update_territory(uow.session, resource, actor, previous_version=current.version)
    if not written:
        raise concurrent_write()
    await repository.add_version(uow.session, resource, planned, actor=actor, recorded_at=uow.now)
    await uow.record(
        topic=TOPIC_TERRITORIES,
        type_=TYPE_OF_CHANGE[planned.change],
        subject=territory_id,
        version=resource.version,
        actor=actor,
        data=resource.model_dump(mode="json"),
        time=time,
    )
    return resource, planned


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
    response: Response,
    territory_id: Annotated[str, Path(pattern=TERRITORY_ID_PATTERN, description="ANCT's id_ti", examples=["ti-8402"])],
    body: Annotated[
        TerritoryFields,
        Body(openapi_examples={"territory": {"summary": "A labelled territory", "value": TERRITORY_EXAMPLE}}),
    ],
    principal: WriterDep,
    uow: UowDep,
    effective_at_header: EffectiveAtHeader = None,
) -> Territory:
    effective_at = parse_effective_at(effective_at_header, principal)
    problems = territory_problems(body)
    if problems:
        raise validation_problem([{"loc": ["body", *p["loc"]], "msg": p["msg"]} for p in problems])
    current = await repository.get_territory(uow.session, territory_id, for_update=True)
    check_if_match(request, current.version if current is not None else None)
    check_not_before(effective_at, current.updated_at if current is not None else None)
    resource, planned = await save_territory(
        uow, territory_id, current, body, actor=principal.sub, effective_at=effective_at
    )
    if planned is not None:
        await uow.commit()
        if planned.change == "registered":
            response.status_code = 201
            response.headers["Location"] = f"/v1/territories/{territory_id}"
    response.headers["ETag"] = etag_of(resource.version)
    return resource


@router.get(
    "/v1/territories",
    summary="List territories, by piloting region and status",
    response_model=Page[Territory],
    responses=problem_responses(422),
)
async def list_territories(
    session: ReadSessionDep,
    region_code: RegionQuery = None,
    status: Annotated[TerritoryStatus | None, Query(description="active or withdrawn")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[Territory]:
    key = decode_cursor(cursor)
    if key is not None and (len(key) != 1 or not isinstance(key[0], str)):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    items = await repository.list_territories(
        session, region_code=_region_query(region_code), status=status, after=key[0] if key else None, limit=limit + 1
    )
    next_cursor = encode_cursor([items[limit - 1].id]) if len(items) > limit else None
    return Page[Territory](items=items[:limit], next_cursor=next_cursor)


@router.get(
    "/v1/territories/{territory_id}",
    summary="Get a territory",
    description="Returns `ETag: W/\"<version>\"`; `If-None-Match` with the current ETag gives 304.",
    response_model=Territory,
    responses={304: {"description": "Not modified"}, **problem_responses(404)},
)
async def get_territory(request: Request, response: Response, territory_id: TerritoryIdPath, session: ReadSessionDep) -> Any:
    resource = await repository.get_territory(session, territory_id)
    if resource is None:
        raise Problem(404, f"Territory {territory_id} is not registered")
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
    territory_id: TerritoryIdPath, session: ReadSessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[TerritoryVersion]:
    key = decode_cursor(cursor)
    if key is not None and (len(key) != 1 or not isinstance(key[0], int)):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    versions = await repository.list_versions(session, territory_id, after=key[0] if key else None, limit=limit + 1)
    if not versions and key is None:
        raise Problem(404, f"Territory {territory_id} is not registered")
    next_cursor = encode_cursor([versions[limit - 1].version]) if len(versions) > limit else None
    return Page[TerritoryVersion](items=versions[:limit], next_cursor=next_cursor)


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


def _row_report(candidate: Candidate, outcome: RowOutcome, version: int | None, changed: list[str]) -> ImportRowReport:
    return ImportRowReport(
        row=candidate.rows[0],
        rows=candidate.rows,
        territory_id=candidate.territory_id,
        outcome=outcome,
        version=version,
        changed_fields=changed,
        errors=[RowError.model_validate(e) for e in candidate.errors],
    )


async def _run_import(
    uow: UnitOfWork[Any], rows: list[dict[str, str]], kind: ImportKind, mode: ImportMode, actor: str
) -> ImportReport:
    header = list(rows[0]) if rows else []
    if kind == "territories":
        columns = resolve_columns(header, TERRITORY_COLUMNS, TERRITORY_REQUIRED)
    else:
        columns = resolve_columns(header, GROUPEMENT_COLUMNS, GROUPEMENT_REQUIRED)
    current = await repository.get_territories(uow.session, file_territory_ids(rows, columns["id_ti"]), for_update=True)
    states = {i: t.model_dump(mode="json") for i, t in current.items()}
    if kind == "territories":
        candidates = territory_candidates(rows, columns, states)
    else:
        candidates = groupement_candidates(rows, columns, states)
    rejected = any(c.fields is None for c in candidates)
    imported = not (rejected and mode == "atomic")
    reports: list[ImportRowReport] = []
    counts = ImportCounts()
    for candidate in candidates:
        if candidate.fields is None or candidate.territory_id is None:
            reports.append(_row_report(candidate, "rejected", None, []))
            counts.rejected += 1
            continue
        existing = current.get(candidate.territory_id)
        if imported:
            resource, planned = await save_territory(
                uow, candidate.territory_id, existing, candidate.fields, actor=actor, effective_at=None
            )
            version: int | None = resource.version
        else:
            existing_state = existing.model_dump(mode="json") if existing is not None else None
            planned = plan_change(existing_state, existing.version if existing else None, territory_state(candidate.fields))
            version = existing.version if existing is not None else None
        outcome: RowOutcome = (
            "unchanged" if planned is None else "created" if planned.change == "registered" else "updated"
        )
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        reports.append(_row_report(candidate, outcome, version, planned.changed_fields if planned else []))
    return ImportReport(kind=kind, mode=mode, imported=imported, counts=counts, rows=reports)


@router.post(
    "/v1/territories/imports",
    summary="Import ANCT's territories list or groupements file (CSV or XLSX), with a per-row report",
    description=(
        "`kind=territories`: one row per territory (`id_ti;lib_ti;code_reg;codes_dep;…`). "
        "`kind=groupements`: one row per EPCI (`id_ti;lib_groupement;siren_groupement`); the EPCIs listed for a "
        "territory replace its EPCI list. `mode=atomic` (default): any rejected row and nothing is imported (422 "
        "with the report); `mode=partial`: the valid rows are imported. Honours `Idempotency-Key`."
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
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    upload = await read_upload(request, max_bytes=MAX_IMPORT_BYTES)
    async with idempotent(uow, request, principal, idempotency_key, upload=upload) as idem:
        if idem.replay is not None:
            return idem.replay
        rows = read_table(upload.data, upload.media_type)
        if not rows:
            raise Problem(422, "The file has a header but no data row", title="Invalid content")
        if len(rows) > MAX_IMPORT_ROWS:
            raise Problem(422, f"The file has {len(rows)} rows; at most {MAX_IMPORT_ROWS} per import", title="Invalid content")
        report = await _run_import(uow, rows, kind, mode, principal.sub)
        body: dict[str, Any] = report.model_dump(mode="json")
        status_code, headers = 200, {}
        if not report.imported:
            errors = [e for r in report.rows for e in r.model_dump(mode="json")["errors"]]
            problem = Problem(
                422,
                f"{report.counts.rejected} territory row(s) rejected; nothing was imported (mode=atomic)",
                title="Invalid content",
                kind="import-rejected",
                errors=errors,
            )
            body = {**problem.body(request.url.path), "report": body}
            status_code, headers = 422, {"content-type": PROBLEM_MEDIA_TYPE}
        return await idem.commit(JSONResponse(body, status_code=status_code, headers=headers))
