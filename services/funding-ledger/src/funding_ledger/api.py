"""HTTP routes of the funding ledger: each translates the request to a call of ``service`` and its
result back to HTTP (status, ``ETag``, ``Location``, problem)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from ti_shared.app import UnitOfWork, read_repository, unit_of_work
from ti_shared.auth import Principal, PrincipalDep, scoped
from ti_shared.http import (
    CSV_TYPES,
    MULTIPART,
    XLSX_TYPE,
    CursorQuery,
    DryRunQuery,
    EffectiveAtHeader,
    Page,
    TiRoute,
    accepts,
    etag_of,
    json_body,
    not_modified,
    parse_effective_at,
    write_response,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.openapi import model_ref
from ti_shared.problems import PROBLEM_MEDIA_TYPE, field_problem, problem_responses
from ti_shared.uploads import read_upload

from funding_ledger import service
from funding_ledger.batches import collector_paused, parse_control_query, parse_csv_batch, parse_json_batch
from funding_ledger.schemas import (
    BATCH_EXAMPLE,
    OPERATOR_CODE_PATTERN,
    OPERATOR_REF_PATTERN,
    PROGRAMME_CODE_PATTERN,
    TERRITORY_ID_PATTERN,
    BeneficiaryKind,
    DisbursementBody,
    Grant,
    GrantBatch,
    GrantBatchBody,
    GrantBody,
    GrantLedger,
    GrantStatus,
    Operator,
    OperatorBody,
    OperatorList,
    Programme,
    ProgrammeBody,
    ProgrammeList,
)

BATCH_MAX_BYTES = 32 * 1024 * 1024

catalogue_router = APIRouter(route_class=TiRoute, tags=["catalogue"])
grant_router = APIRouter(route_class=TiRoute, tags=["grants"])
batch_router = APIRouter(route_class=TiRoute, tags=["batches"])

OperatorPath = Annotated[
    str, Path(pattern=OPERATOR_CODE_PATTERN, description="Operator code, e.g. ADEME", examples=["ADEME"])
]
RefPath = Annotated[
    str,
    Path(
        pattern=OPERATOR_REF_PATTERN,
        description="The operator's own reference of the grant (letters, digits and . _ : - ; no slash), 1–64 characters",
        examples=["FV-2024-0042"],
    ),
]
ProgrammePath = Annotated[str, Path(pattern=PROGRAMME_CODE_PATTERN, examples=["fonds_vert_ti_te"])]
GrantsWriter = Annotated[Principal, scoped("grants:write")]
Admin = Annotated[Principal, scoped("admin")]
UowDep = Annotated[UnitOfWork[service.Repository], Depends(unit_of_work)]
ReadRepoDep = Annotated[service.Repository, Depends(read_repository)]


# --- operators and programmes ---------------------------------------------------------------


@catalogue_router.get("/v1/operators", summary="List the operators", response_model=OperatorList)
async def list_operators(repo: ReadRepoDep) -> dict[str, Any]:
    return {"items": [o.model_dump(mode="json") for o in await service.list_operators(repo)]}


@catalogue_router.get(
    "/v1/programmes",
    summary="List the programmes and the operators running them",
    response_model=ProgrammeList,
)
async def list_programmes(repo: ReadRepoDep) -> dict[str, Any]:
    return {"items": [p.model_dump(mode="json") for p in await service.list_programmes(repo)]}


@catalogue_router.put(
    "/v1/operators/{code}",
    summary="Register or relabel an operator (admin)",
    response_model=Operator,
    status_code=200,
    responses={201: {"model": Operator, "description": "Registered"}, **problem_responses(401, 403, 415, 422)},
)
async def put_operator(code: OperatorPath, body: OperatorBody, request: Request, uow: UowDep, principal: Admin) -> Response:
    result = await service.put_operator(uow, principal, code, body)
    await uow.commit()
    return write_response(result, request)


@catalogue_router.put(
    "/v1/programmes/{code}",
    summary="Register or change a programme and the operators running it (admin)",
    response_model=Programme,
    responses={201: {"model": Programme, "description": "Registered"}, **problem_responses(401, 403, 415, 422)},
)
async def put_programme(
    code: ProgrammePath, body: ProgrammeBody, request: Request, uow: UowDep, principal: Admin
) -> Response:
    result = await service.put_programme(uow, principal, code, body)
    await uow.commit()
    return write_response(result, request)


# --- grants ----------------------------------------------------------------------------------


@grant_router.get(
    "/v1/grants",
    summary="List grants (an operator sees its own, admin all)",
    response_model=Page[Grant],
    responses=problem_responses(401, 403, 422),
)
async def list_grants(
    repo: ReadRepoDep,
    principal: PrincipalDep,
    operator: Annotated[str | None, Query(pattern=OPERATOR_CODE_PATTERN)] = None,
    programme: Annotated[str | None, Query(max_length=64)] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: GrantStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, max 1000)")] = 100,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    where = service.GrantFilter(operator, programme, territory_id, status)
    page = await service.list_grants(repo, principal, where, limit=limit, cursor=cursor)
    return page.model_dump(mode="json")


@grant_router.get(
    "/v1/grants/export.csv",
    summary="Export grants as SCDL « subventions » 2.1.1 CSV (profile=scdl), or with the platform's columns",
    description="What each column holds, and the defaults written for SCDL fields a grant does not keep: docs/imports.md.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV (`,` for profile=scdl, `;` for full, unless `delimiter`)"},
        **problem_responses(401, 403, 422),
    },
)
async def export_grants(
    repo: ReadRepoDep,
    principal: PrincipalDep,
    operator: Annotated[str | None, Query(pattern=OPERATOR_CODE_PATTERN)] = None,
    programme: Annotated[str | None, Query(max_length=64)] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: GrantStatus | None = None,
    profile: Annotated[
        Literal["full", "scdl"],
        Query(description="scdl: exactly the 16 columns of SCDL « subventions » 2.1.1; full: those and the platform's"),
    ] = "full",
    delimiter: Annotated[
        Literal[",", ";"] | None, Query(description="The separator (default: `,` for scdl, `;` for full)")
    ] = None,
) -> StreamingResponse:
    where = service.GrantFilter(operator, programme, territory_id, status)
    lines = service.export_grants(repo, principal, where, profile=profile, delimiter=delimiter)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subventions-territoires-industrie.csv"'},
    )


@grant_router.get(
    "/v1/grants/{operator}/{operator_ref}",
    summary="Read one grant",
    response_model=Grant,
    responses={304: {"description": "Not modified (If-None-Match)"}, **problem_responses(401, 403, 404, 422)},
)
async def get_grant(
    operator: OperatorPath, operator_ref: RefPath, request: Request, repo: ReadRepoDep, principal: PrincipalDep
) -> Response:
    grant = await service.get_grant(repo, principal, operator, operator_ref)
    etag = etag_of(grant.version)
    if not_modified(request, grant.version):
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(grant.model_dump(mode="json"), headers={"ETag": etag})


@grant_router.put(
    "/v1/grants/{operator}/{operator_ref}",
    summary="Create, amend, cancel or re-activate a grant (natural key: the operator's reference)",
    response_model=Grant,
    responses={201: {"model": Grant, "description": "Created"}, **problem_responses(401, 403, 409, 412, 413, 415, 422)},
)
async def put_grant(
    operator: OperatorPath,
    operator_ref: RefPath,
    body: GrantBody,
    request: Request,
    uow: UowDep,
    principal: GrantsWriter,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    result = await service.put_grant(
        uow,
        principal,
        operator,
        operator_ref,
        body,
        effective_at=parse_effective_at(effective_at_header, principal),
        if_match=request.headers.get("if-match"),
    )
    await uow.commit()
    return write_response(result, request)


@grant_router.post(
    "/v1/grants/{operator}/{operator_ref}/disbursements",
    summary="Record a payment on a grant (idempotent per ref)",
    response_model=Grant,
    status_code=201,
    responses={
        200: {"model": Grant, "description": "This ref was already recorded with the same values: nothing changed"},
        **problem_responses(401, 403, 404, 409, 413, 415, 422),
    },
)
async def record_disbursement(
    operator: OperatorPath,
    operator_ref: RefPath,
    body: DisbursementBody,
    request: Request,
    uow: UowDep,
    principal: GrantsWriter,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    effective_at = parse_effective_at(effective_at_header, principal)
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.record_disbursement(uow, principal, operator, operator_ref, body, effective_at=effective_at)
        return await idem.commit(write_response(result, request))


@grant_router.get(
    "/v1/grants/{operator}/{operator_ref}/ledger",
    summary="The grant's ledger: every entry with running totals",
    response_model=GrantLedger,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_grant_ledger(
    operator: OperatorPath, operator_ref: RefPath, repo: ReadRepoDep, principal: PrincipalDep
) -> GrantLedger:
    return await service.get_grant_ledger(repo, principal, operator, operator_ref)


# --- batches ---------------------------------------------------------------------------------


@batch_router.post(
    "/v1/grant-batches",
    summary="Push many grants at once: JSON {items, mode} or an SCDL « subventions » file (CSV or XLSX, ?mode=)",
    description=(
        "A file's rows are read as docs/imports.md says (headers in any case, French numbers and dates, each departure "
        "a warning); a row's key is its `operator_ref` column, else its SCDL identity. `programme` and "
        "`beneficiary_kind` give the rows that have none theirs. Two rows of one grant are both rejected. A batch that "
        "writes nothing (atomic with a rejected row, or every row rejected) is `rejected`: 422 with the report. "
        "`dry_run=true`: the report with 200, nothing written."
    ),
    response_model=GrantBatch,
    status_code=201,
    openapi_extra={
        **accepts("application/json", *CSV_TYPES, XLSX_TYPE, MULTIPART, max_body_bytes=BATCH_MAX_BYTES),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model_ref(GrantBatchBody), "example": BATCH_EXAMPLE},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "nomAttribuant,idAttribuant,dateConvention,referenceDecision,nomBeneficiaire,idBeneficiaire,"
                    "rnaBeneficiaire,objet,montant,nature,conditionsVersement,datesPeriodeVersement,idRAE,notificationUE,"
                    "pourcentageSubvention,dispositifAide,operator,operator_ref,commune_insee,investment_eur,beneficiary_kind\n"
                    "ADEME,38529030900454,2024-06-12,DEL-2024-12,AEROMETAL,73282932000074,,Recyclage de métaux stratégiques,"
                    '"1 500 000,00",aide en numéraire,échelonné,2024-09-01/2025-06-30,,non,0.31,fonds_vert_ti_te,'
                    'ADEME,FV-2024-0042,71076,"4 800 000,00",entreprise\n',
                },
            },
        },
    },
    responses={
        200: {"model": GrantBatch, "description": "A dry run's report (nothing was written)"},
        422: {
            "description": "Invalid batch; a batch that writes nothing (atomic with invalid rows, or every row invalid) "
            "comes back here with its report in `batch`",
            "content": {PROBLEM_MEDIA_TYPE: {}},
        },
        **{k: v for k, v in problem_responses(401, 403, 409, 413, 415).items()},
    },
)
async def post_grant_batch(
    request: Request,
    uow: UowDep,
    principal: GrantsWriter,
    mode: Annotated[
        Literal["partial", "atomic"] | None, Query(description="A file only: partial (default) or atomic")
    ] = None,
    programme: Annotated[
        str | None, Query(pattern=PROGRAMME_CODE_PATTERN, description="A file only: the programme of rows that have none")
    ] = None,
    beneficiary_kind: Annotated[
        BeneficiaryKind | None,
        Query(description="A file only: the kind of beneficiaries whose kind a row neither gives nor lets infer"),
    ] = None,
    control: Annotated[
        list[str] | None,
        Query(
            description="A file only: the operator's control totals, `PROGRAMME:COUNT:AMOUNT` once per programme "
            "(e.g. `fonds_vert_ti_te:12:1500000.00`); a JSON batch gives them as `control` in its body",
        ),
    ] = None,
    dry_run: DryRunQuery = False,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    with collector_paused():  # a batch allocates without cycles: batches.collector_paused
        effective_at = parse_effective_at(effective_at_header, principal)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        upload = None
        if media in ("application/json", ""):
            if programme is not None or beneficiary_kind is not None or control is not None:
                raise field_problem(
                    ["query"], "programme, beneficiary_kind and control are for files; a JSON batch gives them in its body"
                )
            batch = parse_json_batch(await json_body(request), media_type=media or "application/json", query_mode=mode)
        else:
            upload = await read_upload(request, max_bytes=BATCH_MAX_BYTES)
            batch = parse_csv_batch(
                upload.data,
                principal.operator,
                media_type=upload.media_type,
                query_mode=mode,
                programme=programme,
                beneficiary_kind=beneficiary_kind,
                control=parse_control_query(control),
            )
        async with idempotent(uow, request, principal, idempotency_key, upload=upload, dry_run=dry_run) as idem:
            if idem.replay is not None:
                return idem.replay
            result = await service.post_grant_batch(uow, principal, batch, effective_at=effective_at)
            return await idem.finish(result, request)


@batch_router.get(
    "/v1/grant-batches/{batch_id}",
    summary="Read a batch and its per-row report again",
    response_model=GrantBatch,
    responses=problem_responses(401, 403, 404),
)
async def get_grant_batch(
    batch_id: Annotated[str, Path(max_length=36)], repo: ReadRepoDep, principal: PrincipalDep
) -> GrantBatch:
    return await service.get_grant_batch(repo, principal, batch_id)
