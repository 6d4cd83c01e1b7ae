"""HTTP routes of the funding ledger: thin — parse, authorize, let the domain decide, write, commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from ti_shared.app import ContextDep, ReadSessionDep, UowDep
from ti_shared.auth import Principal, PrincipalDep, scoped
from ti_shared.http import (
    CSV_TYPES,
    CursorQuery,
    EffectiveAtHeader,
    Page,
    TiRoute,
    accepts,
    check_if_match,
    check_not_before,
    decode_cursor,
    encode_cursor,
    etag_of,
    json_body,
    not_modified,
    parse_effective_at,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.openapi import model_ref
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, field_problem, problem_responses, validation_problem
from ti_shared.replica import known_territories

from funding_ledger import repository as repo
from funding_ledger.batches import batch_problem_body, parse_csv_batch, parse_json_batch, run_batch
from funding_ledger.domain import (
    ZERO,
    DomainError,
    GrantWrite,
    cross_field_errors,
    grant_id,
    plan_disbursement,
    plan_grant_write,
)
from funding_ledger.events import GRANT_EVENTS
from funding_ledger.scdl import export_header, export_line
from funding_ledger.schemas import (
    BATCH_EXAMPLE,
    OPERATOR_CODE_PATTERN,
    OPERATOR_REF_PATTERN,
    PROGRAMME_CODE_PATTERN,
    TERRITORY_ID_PATTERN,
    DisbursementBody,
    Grant,
    GrantBatch,
    GrantBatchBody,
    GrantBody,
    GrantLedger,
    GrantStatus,
    LedgerEntry,
    Operator,
    OperatorBody,
    OperatorList,
    Programme,
    ProgrammeBody,
    ProgrammeList,
)

PARIS = ZoneInfo("Europe/Paris")
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


def today() -> date:
    return datetime.now(PARIS).date()


def _body_errors(errors: list[dict[str, Any]]) -> Problem:
    return validation_problem([{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in errors])


def _domain_problem(exc: DomainError, prefix: str = "body") -> Problem:
    if exc.status == 422:
        return field_problem([prefix, *exc.loc], exc.msg)
    return Problem(409, exc.msg, errors=[{"loc": [prefix, *exc.loc], "msg": exc.msg}])


def _grant_response(g: Grant, status_code: int, extra: dict[str, str] | None = None) -> JSONResponse:
    headers = {"ETag": etag_of(g.version), **(extra or {})}
    return JSONResponse(g.model_dump(mode="json"), status_code=status_code, headers=headers)


async def _persist(uow: Any, write: GrantWrite, *, created: bool, actor: str) -> None:
    g = write.grant
    assert g is not None and write.change is not None
    if created:
        await repo.insert_grants(uow.session, [g], g.updated_at)
    else:
        await repo.update_grants(uow.session, [g])
    await repo.insert_entries(uow.session, repo.entry_rows(g, write.entries, actor=actor))
    spec = GRANT_EVENTS[write.change]
    await uow.record(
        topic=spec.topic,
        type_=spec.type,
        subject=g.id,
        version=g.version,
        actor=actor,
        data=g.model_dump(mode="json"),
        time=g.updated_at,
    )


def _require_reader(principal: Principal) -> None:
    if not principal.is_admin and principal.operator is None:
        raise Problem(403, "Reading grants needs an operator token (ti_operator) or an admin token")


# --- operators and programmes ---------------------------------------------------------------


@catalogue_router.get("/v1/operators", summary="List the operators", response_model=OperatorList)
async def list_operators(session: ReadSessionDep) -> dict[str, Any]:
    return {"items": [o.model_dump(mode="json") for o in await repo.list_operators(session)]}


@catalogue_router.get(
    "/v1/programmes",
    summary="List the programmes and the operators running them",
    response_model=ProgrammeList,
)
async def list_programmes(session: ReadSessionDep) -> dict[str, Any]:
    return {"items": [p.model_dump(mode="json") for p in await repo.list_programmes(session)]}


@catalogue_router.put(
    "/v1/operators/{code}",
    summary="Register or relabel an operator (admin)",
    response_model=Operator,
    status_code=200,
    responses={201: {"model": Operator, "description": "Registered"}, **problem_responses(401, 403, 415, 422)},
)
async def put_operator(code: OperatorPath, body: OperatorBody, uow: UowDep, principal: Admin) -> JSONResponse:
    current = await repo.get_operator(uow.session, code)
    value = Operator(code=code, **body.model_dump())
    if current == value:
        return JSONResponse(value.model_dump(mode="json"), status_code=200)
    await repo.save_operator(uow.session, value, exists=current is not None, now=uow.now)
    await uow.commit()
    return JSONResponse(value.model_dump(mode="json"), status_code=200 if current else 201)


@catalogue_router.put(
    "/v1/programmes/{code}",
    summary="Register or change a programme and the operators running it (admin)",
    response_model=Programme,
    responses={201: {"model": Programme, "description": "Registered"}, **problem_responses(401, 403, 415, 422)},
)
async def put_programme(code: ProgrammePath, body: ProgrammeBody, uow: UowDep, principal: Admin) -> JSONResponse:
    operators = sorted(set(body.operators))
    known = await repo.known_operators(uow.session, operators)
    unknown = [
        {"loc": ["body", "operators", body.operators.index(o)], "msg": f"unknown operator '{o}'"}
        for o in operators
        if o not in known
    ]
    if unknown:
        raise validation_problem(unknown)
    value = Programme(code=code, label=body.label, operators=operators)
    runners = await repo.programme_runners(uow.session)
    existing = {p.code: p for p in await repo.list_programmes(uow.session)}.get(code)
    if existing == value:
        return JSONResponse(value.model_dump(mode="json"), status_code=200)
    await repo.save_programme(uow.session, value, exists=code in runners, now=uow.now)
    await uow.commit()
    return JSONResponse(value.model_dump(mode="json"), status_code=200 if existing else 201)


# --- grants ----------------------------------------------------------------------------------


@grant_router.get(
    "/v1/grants",
    summary="List grants (an operator sees its own, admin all)",
    response_model=Page[Grant],
    responses=problem_responses(401, 403, 422),
)
async def list_grants(
    session: ReadSessionDep,
    principal: PrincipalDep,
    operator: Annotated[str | None, Query(pattern=OPERATOR_CODE_PATTERN)] = None,
    programme: Annotated[str | None, Query(max_length=64)] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: GrantStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, max 1000)")] = 100,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    operator = _visible_operator(principal, operator)
    after = decode_cursor(cursor)
    if after is not None and (len(after) != 2 or not all(isinstance(k, str) for k in after)):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    grants = await repo.list_grants(
        session,
        operator_code=operator,
        programme_code=programme,
        territory_id=territory_id,
        status=status,
        limit=limit + 1,
        after=(after[0], after[1]) if after else None,
    )
    page = grants[:limit]
    next_cursor = encode_cursor([page[-1].operator, page[-1].operator_ref]) if len(grants) > limit else None
    return {"items": [g.model_dump(mode="json") for g in page], "next_cursor": next_cursor}


def _visible_operator(principal: Principal, operator: str | None) -> str | None:
    _require_reader(principal)
    if principal.is_admin:
        return operator
    if operator is not None and operator != principal.operator:
        raise Problem(403, f"This token may not read the grants of operator '{operator}'")
    return principal.operator


@grant_router.get(
    "/v1/grants/export.csv",
    summary="Export grants as SCDL « subventions » 2.1.1 CSV (plus the platform's columns)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "`;`-separated UTF-8 CSV"},
        **problem_responses(401, 403, 422),
    },
)
async def export_grants(
    ctx: ContextDep,
    principal: PrincipalDep,
    operator: Annotated[str | None, Query(pattern=OPERATOR_CODE_PATTERN)] = None,
    programme: Annotated[str | None, Query(max_length=64)] = None,
    territory_id: Annotated[str | None, Query(pattern=TERRITORY_ID_PATTERN)] = None,
    status: GrantStatus | None = None,
) -> StreamingResponse:
    operator = _visible_operator(principal, operator)

    async def lines() -> AsyncIterator[bytes]:
        yield export_header().encode()
        async with ctx.db.read_session() as session:
            operators = await repo.operator_labels(session)
            programmes = await repo.programme_labels(session)
            async for chunk in repo.stream_grants(
                session, operator_code=operator, programme_code=programme, territory_id=territory_id, status=status
            ):
                yield "".join(export_line(g, operators, programmes) for g in chunk).encode()

    return StreamingResponse(
        lines(),
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
    operator: OperatorPath, operator_ref: RefPath, request: Request, session: ReadSessionDep, principal: PrincipalDep
) -> Response:
    _require_reader(principal)
    principal.require_operator(operator)
    g = await repo.get_grant(session, operator, operator_ref)
    if g is None:
        raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
    if not_modified(request, g.version):
        return Response(status_code=304, headers={"ETag": etag_of(g.version)})
    return _grant_response(g, 200)


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
) -> JSONResponse:
    principal.require_operator(operator)
    effective_at = parse_effective_at(effective_at_header, principal)
    if operator not in await repo.known_operators(uow.session, [operator]):
        raise field_problem(["path", "operator"], f"unknown operator '{operator}'")
    errors = cross_field_errors(body, today())
    runners = await repo.programme_runners(uow.session)
    if body.programme not in runners:
        errors.append({"loc": ["programme"], "msg": f"unknown programme '{body.programme}'"})
    elif operator not in runners[body.programme]:
        if not principal.is_admin:
            raise Problem(403, f"Operator '{operator}' does not run programme '{body.programme}'")
        errors.append({"loc": ["programme"], "msg": f"is not run by operator '{operator}'"})
    if body.territory_id and not await known_territories(uow.session, {body.territory_id}):
        errors.append({"loc": ["territory_id"], "msg": f"unknown territory '{body.territory_id}'"})
    if errors:
        raise _body_errors(errors)
    current = await repo.get_grant(uow.session, operator, operator_ref, for_update=True)
    check_if_match(request, current.version if current else None)
    if current is not None:
        check_not_before(effective_at, current.updated_at)
    try:
        write = plan_grant_write(
            current, body, operator=operator, operator_ref=operator_ref, now=effective_at or uow.now
        )
    except DomainError as exc:
        raise _domain_problem(exc) from exc
    if write.grant is None:
        assert current is not None
        return _grant_response(current, 200)
    await _persist(uow, write, created=current is None, actor=principal.sub)
    await uow.commit()
    return _grant_response(write.grant, 201 if current is None else 200)


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
    principal.require_operator(operator)
    effective_at = parse_effective_at(effective_at_header, principal)
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        current = await repo.get_grant(uow.session, operator, operator_ref, for_update=True)
        if current is None:
            raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
        check_not_before(effective_at, current.updated_at)
        try:
            write = plan_disbursement(current, body, today=today(), now=effective_at or uow.now)
        except DomainError as exc:
            raise _domain_problem(exc) from exc
        result = write.grant or current
        if write.grant is not None:
            await _persist(uow, write, created=False, actor=principal.sub)
        return await idem.commit(_grant_response(result, 200 if write.grant is None else 201))


@grant_router.get(
    "/v1/grants/{operator}/{operator_ref}/ledger",
    summary="The grant's ledger: every entry with running totals",
    response_model=GrantLedger,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_grant_ledger(
    operator: OperatorPath, operator_ref: RefPath, session: ReadSessionDep, principal: PrincipalDep
) -> GrantLedger:
    _require_reader(principal)
    principal.require_operator(operator)
    rows = await repo.ledger_entries(session, operator, operator_ref)
    if not rows:
        raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
    committed = disbursed = investment = ZERO
    entries: list[LedgerEntry] = []
    for r in rows:
        amount, inv = Decimal(r.amount_delta_eur), Decimal(r.investment_delta_eur)
        if r.kind == "disbursement":
            disbursed += amount
        else:
            committed += amount
            investment += inv
        entries.append(
            LedgerEntry(
                seq=len(entries) + 1,
                kind=r.kind,
                amount_delta_eur=amount,
                investment_delta_eur=inv,
                disbursement_ref=r.disbursement_ref,
                paid_on=r.paid_on,
                grant_version=r.grant_version,
                recorded_at=r.recorded_at,
                actor=r.actor,
                committed_eur=committed,
                disbursed_eur=disbursed,
            )
        )
    return GrantLedger(
        id=grant_id(operator, operator_ref),
        committed_eur=committed,
        disbursed_eur=disbursed,
        investment_eur=investment,
        entries=entries,
    )


# --- batches ---------------------------------------------------------------------------------


@batch_router.post(
    "/v1/grant-batches",
    summary="Push many grants at once: JSON {items, mode} or SCDL « subventions » CSV (text/csv, ?mode=)",
    response_model=GrantBatch,
    status_code=201,
    openapi_extra={
        **accepts("application/json", *CSV_TYPES, max_body_bytes=BATCH_MAX_BYTES),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model_ref(GrantBatchBody), "example": BATCH_EXAMPLE},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;"
                    "objet;montant;nature;conditionsVersement;datesPeriodeVersement;idRAE;notificationUE;"
                    "pourcentageSubvention;dispositifAide;operator;programme;commune_insee;investment_eur;beneficiary_kind\n"
                    "ADEME;;2024-06-12;FV-2024-0042;AEROMETAL;73282932000074;Recyclage de métaux stratégiques;"
                    "1 500 000,00;aide en numéraire;échelonné;;;non;0,31;Fonds vert;ADEME;fonds_vert_ti_te;71076;"
                    "4 800 000,00;entreprise\n",
                },
            },
        },
    },
    responses={
        422: {
            "description": "Invalid batch; an atomic batch with invalid rows comes back here with its report in `batch`",
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
        Literal["partial", "atomic"] | None, Query(description="CSV only: partial (default) or atomic")
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    effective_at_header: EffectiveAtHeader = None,
) -> Response:
    effective_at = parse_effective_at(effective_at_header, principal)
    data = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    batch_mode: str
    if media in CSV_TYPES:
        rows, batch_mode = parse_csv_batch(data, principal.operator), mode or "partial"
    else:
        if mode is not None:
            raise field_problem(["query", "mode"], "is for CSV bodies; a JSON batch gives its mode in the body")
        rows, batch_mode = parse_json_batch(await json_body(request))
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await run_batch(
            uow.session,
            rows=rows,
            mode=batch_mode,
            principal=principal,
            now=uow.now,
            effective_at=effective_at,
            today=today(),
            csv_locs=media in CSV_TYPES,
        )
        at = effective_at or uow.now
        await repo.insert_grants(uow.session, result.inserts, at)
        await repo.update_grants(uow.session, result.updates)
        await repo.insert_entries(uow.session, result.entries)
        await uow.record_many(result.events)
        await repo.insert_batch(
            uow.session,
            result.doc,
            received_at=result.received_at,
            operator_code=principal.operator,
            actor=principal.sub,
            media_type=media or "application/json",
        )
        location = f"/v1/grant-batches/{result.id}"
        if result.status == "rejected":
            status_code, content = 422, batch_problem_body(result.doc, location)
            headers = {"Location": location, "Content-Type": PROBLEM_MEDIA_TYPE}
        else:
            status_code, content = 201, result.doc
            headers = {"Location": location}
        response = Response(orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json")
        return await idem.commit(response)


@batch_router.get(
    "/v1/grant-batches/{batch_id}",
    summary="Read a batch and its per-row report again",
    response_model=GrantBatch,
    responses=problem_responses(401, 403, 404),
)
async def get_grant_batch(
    batch_id: Annotated[str, Path(max_length=36)], session: ReadSessionDep, principal: PrincipalDep
) -> GrantBatch:
    found = await repo.get_batch(session, batch_id)
    if found is None:
        raise Problem(404, f"No batch {batch_id}")
    batch, operator, actor = found
    if (
        not principal.is_admin
        and not (principal.operator is not None and principal.operator == operator)
        and principal.sub != actor
    ):
        raise Problem(403, "This batch was sent for another operator")
    return batch
