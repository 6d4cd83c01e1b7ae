"""``GET /v1/changes``: the change feed as pages (JSON), as one NDJSON stream, or live (Server-Sent
Events, resumed from ``Last-Event-ID``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from ti_shared.app import ContextDep, ServiceContext
from ti_shared.auth import OptionalPrincipalDep, Principal, unauthorized
from ti_shared.http import Page, TiRoute, decode_cursor, encode_cursor
from ti_shared.problems import Problem, field_problem, problem_responses
from ti_shared.types import parse_instant

from reporting.feed import repository
from reporting.feed.domain import PROTECTED_TYPES, SSE_KEEPALIVE, Reader, sse_frame, unknown_types
from reporting.feed.handler import NOTIFIER
from reporting.feed.repository import FeedFilter, StoredChange
from reporting.feed.schemas import Change

router = APIRouter(tags=["changes"], route_class=TiRoute)

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
#: changes read per query when streaming
CHUNK = 500
#: how long a live stream waits for this process's consumer before looking again (other processes)
POLL_S = 1.0
#: a comment on an idle live stream every so often
KEEPALIVE_S = 15.0

AfterQuery = Annotated[
    str | None, Query(description="The cursor of the last change read (a change's `cursor`, a page's `next_cursor`)", max_length=512)
]
SinceQuery = Annotated[
    str | None,
    Query(description="Only the changes whose event time is ≥ this RFC 3339 instant", max_length=40,
          openapi_examples={"instant": {"value": "2024-11-30T10:00:00Z"}}),
]
TypesQuery = Annotated[
    str | None,
    Query(description="Comma-separated event types (`fr.anct.ti.action.deleted.v1,…`)", max_length=2000),
]
SubjectQuery = Annotated[str | None, Query(description="One entity's changes (its id, as the events' subject)", max_length=256)]
FeedLimitQuery = Annotated[
    int | None,
    Query(ge=1, le=1000, description="Changes per page (default 100, max 1000); a stream: at most this many (default all)"),
]
LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", description="A live stream resumes after this cursor", max_length=512)
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The changes after the position, in order. `next_cursor` is null once the page reaches the "
        "end of the feed; poll again with the last change's `cursor`. As `application/x-ndjson`: one Change per "
        "line. As `text/event-stream`: one event per Change (`id` its cursor, `event` its type, `data` the Change).",
        "content": {
            NDJSON: {},  # one Change per line
            SSE: {},  # one event per Change: `id` its cursor, `event` its type, `data` the Change
        },
    },
    **problem_responses(403),
}


def _position(cursor: str | None) -> int:
    keys = decode_cursor(cursor, (int,))
    return int(keys[0]) if keys else 0


def _filter(principal: Principal | None, types: str | None, subject: str | None, since: str | None) -> FeedFilter:
    reader = Reader.of(
        authenticated=principal is not None,
        is_admin=principal is not None and principal.is_admin,
        operator=principal.operator if principal is not None else None,
    )
    wanted = frozenset(t.strip() for t in (types or "").split(",") if t.strip())
    unknown = unknown_types(wanted)
    if unknown:
        raise field_problem(["query", "types"], "unknown event types: " + ", ".join(unknown))
    if wanted & PROTECTED_TYPES and not reader.grants:
        if principal is None:
            raise unauthorized("Grant changes need a token (an operator's sees its own grants, an admin token all)")
        raise Problem(403, "Reading grant changes needs an operator token (ti_operator) or an admin token")
    try:
        since_at = parse_instant(since) if since is not None else None
    except ValueError as exc:
        raise field_problem(["query", "since"], "must be an RFC 3339 instant with its offset") from exc
    return FeedFilter(reader=reader, types=wanted, subject=subject, since=since_at)


def change_item(change: StoredChange) -> dict[str, Any]:
    return {**change.event, "previous": change.previous, "changed": change.changed, "cursor": encode_cursor([change.seq])}


@router.get(
    "/v1/changes",
    summary="Every change of the platform's entities, in order, with the state before it",
    response_model=Page[Change],
    responses=_RESPONSES,
)
async def list_changes(
    request: Request,
    ctx: ContextDep,
    principal: OptionalPrincipalDep,
    after: AfterQuery = None,
    since: SinceQuery = None,
    types: TypesQuery = None,
    subject: SubjectQuery = None,
    limit: FeedLimitQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    """The CloudEvent of each change as it was published, plus `previous` (the entity's state before,
    null on creation), `changed` (the fields that changed) and `cursor`. Public entities' changes are
    open; grant changes follow the grant read rules (an operator's token its own operator's, an admin
    token all; without one they are left out). `Accept: application/x-ndjson` streams every change
    after the position (one per line); `Accept: text/event-stream` streams them and then the new ones
    as they are applied, resuming after `Last-Event-ID`."""
    where = _filter(principal, types, subject, since)
    accept = request.headers.get("accept", "")
    if SSE in accept:
        start = _position(last_event_id or after)
        return StreamingResponse(_live(ctx, where, start, limit), media_type=SSE, headers={"Cache-Control": "no-cache"})
    position = _position(after)
    if NDJSON in accept:
        return StreamingResponse(_lines(ctx, where, position, limit), media_type=NDJSON)
    size = limit or 100
    async with ctx.db.read_session() as session:  # not a dependency: a stream holds no connection
        found = await repository.list_changes(session, where, after=position, limit=size + 1)
    page = found[:size]
    body = {"items": [change_item(c) for c in page], "next_cursor": encode_cursor([page[-1].seq]) if len(found) > size else None}
    return Response(orjson.dumps(body), media_type="application/json")


async def _chunks(ctx: ServiceContext, where: FeedFilter, position: int, limit: int | None) -> AsyncIterator[StoredChange]:
    """Every change after ``position`` as it is now (at most ``limit``), read a chunk at a time."""
    left = limit
    while left is None or left > 0:
        size = CHUNK if left is None else min(CHUNK, left)
        async with ctx.db.read_session() as session:
            found = await repository.list_changes(session, where, after=position, limit=size)
        for change in found:
            yield change
        if len(found) < size:
            return
        position = found[-1].seq
        left = None if left is None else left - len(found)


async def _lines(ctx: ServiceContext, where: FeedFilter, position: int, limit: int | None) -> AsyncIterator[bytes]:
    async for change in _chunks(ctx, where, position, limit):
        yield orjson.dumps(change_item(change)) + b"\n"


async def _live(ctx: ServiceContext, where: FeedFilter, position: int, limit: int | None) -> AsyncIterator[bytes]:
    """The changes after ``position``, then each new one as the feed's consumer applies it (until the
    client goes, or ``limit`` changes were sent)."""
    sent = 0
    yield b"retry: 2000\n\n"
    idle = 0.0
    while limit is None or sent < limit:
        got = 0
        async for change in _chunks(ctx, where, position, None if limit is None else limit - sent):
            item = change_item(change)
            yield sse_frame(item["cursor"], change.type, item)
            position, got = change.seq, got + 1
        sent += got
        if limit is not None and sent >= limit:
            return
        if got:
            idle = 0.0
            continue
        await NOTIFIER.wait(POLL_S)
        idle += POLL_S
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield SSE_KEEPALIVE
