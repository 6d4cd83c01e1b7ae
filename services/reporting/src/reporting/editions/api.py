"""Routes of the editions: ``/v1/reports/editions`` (HTTP → a service call → the response)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from ti_shared.app import ReadSessionDep, UnitOfWork, UowDep
from ti_shared.auth import Principal, PrincipalDep, scoped
from ti_shared.http import CursorQuery, LimitQuery, TiRoute, if_none_match, write_response
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import problem_responses

from reporting.dashboard.client import reader_for_request
from reporting.editions import service
from reporting.editions.schemas import Edition, EditionBody, EditionPage, Restatements, SignOff, SignOffBody

router = APIRouter(prefix=service.PREFIX, tags=["reports"], route_class=TiRoute)

AdminDep = Annotated[Principal, scoped("admin")]
EditionPath = Annotated[str, Path(max_length=36, description="The edition's id", examples=["4f6c1a0e-5b7d-4c1e-9d55-0c5e2b1d3a77"])]


async def _uow(uow: UowDep) -> UnitOfWork[service.EditionRepository]:
    uow.repo = service.EditionRepository(uow.session)
    return uow


async def _repo(session: ReadSessionDep) -> service.EditionRepository:
    return service.EditionRepository(session)


EditionsUowDep = Annotated[UnitOfWork[service.EditionRepository], Depends(_uow)]
RepoDep = Annotated[service.EditionRepository, Depends(_repo)]


def _frozen(part: service.FrozenPart, request: Request, filename: str | None = None) -> Response:
    headers = {"ETag": part.etag, "Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept"}
    if if_none_match(request.headers.get("if-none-match"), part.etag):
        return Response(status_code=304, headers=headers)
    if filename is not None:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return Response(part.body, media_type=part.media_type, headers=headers)


@router.post(
    "",
    summary="Freeze the Bilan of a scope as of an instant: indicators, HTML and PDF, kept byte for byte (admin)",
    status_code=201,
    response_model=Edition,
    responses=problem_responses(404),
)
async def freeze_edition(
    request: Request, body: EditionBody, uow: EditionsUowDep, principal: AdminDep, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        async with reader_for_request(request) as reader:
            root = str(request.scope.get("root_path", "")).rstrip("/")
            result = await service.freeze_edition(uow, principal, body, reader=reader, root=root)
        return await idem.commit(write_response(result, request))


@router.get("", summary="The editions, newest first", response_model=EditionPage)
async def list_editions(repo: RepoDep, limit: LimitQuery = 100, cursor: CursorQuery = None) -> EditionPage:
    return await service.list_editions(repo, cursor=cursor, limit=limit)


#: the frozen part a GET of the edition answers for an ``Accept`` media type (JSON otherwise)
_NEGOTIATED = {"text/html": "html", "application/pdf": "pdf"}


def _wanted_part(accept: str | None) -> str | None:
    """The first of text/html, application/pdf, application/json that ``Accept`` names (q ignored)."""
    for item in (accept or "").split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in _NEGOTIATED:
            return _NEGOTIATED[media]
        if media in ("application/json", "application/*", "*/*"):
            return None
    return None


@router.get(
    "/{edition_id}",
    summary="An edition: what it froze, its digests, the sources' marks, its sign-offs (JSON); the frozen "
    "Bilan itself, byte for byte, for Accept: text/html or application/pdf",
    response_model=Edition,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The edition"},
               304: {"description": "Not modified (If-None-Match)"}},
)
async def get_edition(edition_id: EditionPath, request: Request, repo: RepoDep) -> Response:
    part = _wanted_part(request.headers.get("accept"))
    if part is not None:
        return _frozen(await service.get_edition_part(repo, edition_id, part), request, f"edition-{edition_id}.{part}")
    edition = await service.get_edition(repo, edition_id)
    etag = f'W/"{edition.content_hash[:32]}-{len(edition.sign_offs)}"'  # the frozen parts, then each sign-off
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept"}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(edition.model_dump_json(), media_type="application/json", headers=headers)


@router.get(
    "/{edition_id}/indicators",
    summary="The frozen indicators document, byte for byte",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "The document as frozen"},
               304: {"description": "Not modified (If-None-Match)"}},
)
async def get_edition_indicators(edition_id: EditionPath, request: Request, repo: RepoDep) -> Response:
    return _frozen(await service.get_edition_part(repo, edition_id, "indicators"), request)


@router.get(
    "/{edition_id}/bilan",
    summary="The frozen Bilan (HTML or PDF), byte for byte",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The Bilan as frozen"},
               304: {"description": "Not modified (If-None-Match)"}},
)
async def get_edition_bilan(
    edition_id: EditionPath, request: Request, repo: RepoDep, format: Literal["html", "pdf"] = "html"
) -> Response:
    part = await service.get_edition_part(repo, edition_id, format)
    return _frozen(part, request, f"edition-{edition_id}.{format}")


@router.post(
    "/{edition_id}/sign-offs",
    summary="Sign an edition: an admin (the edition becomes final), or a project lead for its territory",
    status_code=201,
    response_model=SignOff,
    responses={200: {"model": SignOff, "description": "This signer had already signed: nothing changes"}, **problem_responses(409)},
)
async def sign_edition(
    edition_id: EditionPath, request: Request, body: SignOffBody, uow: EditionsUowDep, principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.sign_edition(uow, principal, edition_id, body)
        return await idem.commit(write_response(result, request))


@router.get(
    "/{edition_id}/restatements",
    summary="The figures of the edition that later, back-dated writes changed: published value, value now, the events",
    response_model=Restatements,
)
async def list_restatements(edition_id: EditionPath, repo: RepoDep) -> Restatements:
    return await service.list_restatements(repo, edition_id, now=datetime.now(UTC))
