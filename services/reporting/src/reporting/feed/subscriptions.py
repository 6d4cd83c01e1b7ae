"""Webhook subscriptions: ``PUT|GET|DELETE /v1/subscriptions/{id}``, the deliveries' log and replays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from ti_shared.app import ContextDep, UowDep
from ti_shared.auth import Principal, PrincipalDep
from ti_shared.http import (
    CursorQuery,
    Page,
    TiRoute,
    check_if_match,
    decode_cursor,
    encode_cursor,
    etag_of,
    not_modified,
)
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent
from ti_shared.problems import Problem, field_problem, problem_responses

from reporting.feed import repository
from reporting.feed.delivery import ROTATION_GRACE, SUBSCRIPTIONS, TargetRefused, TargetRule, check_target
from reporting.feed.domain import PROTECTED_TYPES, Reader, unknown_types
from reporting.feed.schemas import SUBSCRIPTION_ID_PATTERN, DeliveryAttempt, ReplayBody, Subscription, SubscriptionBody
from reporting.feed.webhooks import new_secret

router = APIRouter(prefix="/v1/subscriptions", tags=["changes"], route_class=TiRoute)

SubscriptionPath = Annotated[str, Path(pattern=SUBSCRIPTION_ID_PATTERN, description="The subscription's id, chosen by its owner")]


def _resource(sub: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    return Subscription(
        id=sub["id"], url=sub["url"], types=sub["types"], operator=sub["operator"], description=sub["description"],
        state=sub["state"], paused_reason=sub["paused_reason"], failures=sub["failures"],
        position=encode_cursor([sub["position"]]) if sub["position"] else None, next_attempt_at=sub["next_attempt_at"],
        version=sub["version"], created_at=sub["created_at"], updated_at=sub["updated_at"], secret=secret,
    ).model_dump(mode="json")


def _answer(sub: dict[str, Any], status: int, secret: str | None = None) -> Response:
    headers = {"ETag": etag_of(sub["version"])}
    if status == 201:
        headers["Location"] = f"/v1/subscriptions/{sub['id']}"
    return Response(orjson.dumps(_resource(sub, secret)), status_code=status, media_type="application/json", headers=headers)


def _reader(principal: Principal) -> Reader:
    return Reader.of(authenticated=True, is_admin=principal.is_admin, operator=principal.operator)


def _owned(sub: dict[str, Any] | None, principal: Principal, subscription_id: str) -> dict[str, Any]:
    """The subscription if this token manages it (its creator or an admin): else 404, whether it exists or not."""
    if sub is None or (sub["owner"] != principal.sub and not principal.is_admin):
        raise Problem(404, f"No subscription '{subscription_id}'")
    return sub


async def _checked(body: SubscriptionBody, principal: Principal, rule: TargetRule) -> Reader:
    reader = _reader(principal)
    unknown = unknown_types(body.types)
    if unknown:
        raise field_problem(["body", "types"], "unknown event types: " + ", ".join(unknown))
    if (set(body.types) & PROTECTED_TYPES or body.operator is not None) and not reader.grants:
        raise Problem(403, "Grant changes need an operator token (ti_operator) or an admin token")
    if body.operator is not None and reader.operator not in (None, body.operator):
        raise Problem(403, f"This token may not receive the grants of operator '{body.operator}'")
    try:
        await check_target(body.url, rule)
    except TargetRefused as exc:
        raise field_problem(["body", "url"], str(exc)) from exc
    return reader


@router.put(
    "/{subscription_id}",
    summary="Create or change a webhook subscription (its secret is shown once; a PUT resumes a paused one)",
    response_model=Subscription,
    responses={201: {"model": Subscription, "description": "Created (with its secret)"}, **problem_responses(403, 412)},
)
async def put_subscription(
    subscription_id: SubscriptionPath, body: SubscriptionBody, request: Request, uow: UowDep, ctx: ContextDep, principal: PrincipalDep
) -> Response:
    """Every change the token may read (the feed's rules) and the subscription's `types` and `operator`
    select is POSTed to `url`, in feed order, signed as Standard Webhooks says (`webhook-id` the event
    id, `webhook-timestamp`, `webhook-signature` HMAC-SHA256 with the secret). Failures are retried with
    exponential backoff; after `TI_WEBHOOK_MAX_FAILURES` in a row the subscription is paused with the reason."""
    reader = await _checked(body, principal, ctx.settings.platform.webhook_target_rule)
    now = datetime.now(UTC)
    current = await repository.get_subscription(uow.session, subscription_id, for_update=True)
    if current is not None:
        _owned(current, principal, subscription_id)
    check_if_match(request, current["version"] if current is not None else None)
    fields = {"url": body.url, "types": sorted(set(body.types)), "operator": body.operator, "description": body.description}
    if current is None:
        first = new_secret()
        sub = {
            "id": subscription_id, "owner": principal.sub, **fields, "reader_grants": reader.grants,
            "reader_operator": reader.operator, "secret": first, "previous_secret": None, "previous_secret_until": None,
            "state": "active", "paused_reason": None, "failures": 0, "position": 0, "next_attempt_at": None,
            "version": 1, "created_at": now, "updated_at": now,
        }
        await repository.insert_subscription(uow.session, sub)
        await uow.commit()
        SUBSCRIPTIONS.notify()
        return _answer(sub, 201, first)
    changes: dict[str, Any] = {k: v for k, v in fields.items() if current[k] != v}
    secret = None
    if body.rotate_secret:
        secret = new_secret()
        changes |= {"secret": secret, "previous_secret": current["secret"], "previous_secret_until": now + ROTATION_GRACE}
    if current["state"] == "paused":
        changes |= {"state": "active", "paused_reason": None, "failures": 0, "next_attempt_at": None}
    if not changes:
        return _answer(current, 200)
    changes |= {"version": current["version"] + 1, "updated_at": now}
    await repository.update_subscription(uow.session, subscription_id, changes)
    await uow.commit()
    SUBSCRIPTIONS.notify()
    return _answer({**current, **changes}, 200, secret)


@router.get("/{subscription_id}", summary="A webhook subscription (without its secret)", response_model=Subscription,
            responses={304: {"description": "Not modified (If-None-Match)"}})
async def get_subscription(subscription_id: SubscriptionPath, request: Request, ctx: ContextDep, principal: PrincipalDep) -> Response:
    async with ctx.db.read_session() as session:
        sub = _owned(await repository.get_subscription(session, subscription_id), principal, subscription_id)
    if not_modified(request, sub["version"]):
        return Response(status_code=304, headers={"ETag": etag_of(sub["version"])})
    return _answer(sub, 200)


@router.delete("/{subscription_id}", summary="Delete a webhook subscription and its deliveries' log", status_code=204)
async def delete_subscription(subscription_id: SubscriptionPath, uow: UowDep, principal: PrincipalDep) -> Response:
    _owned(await repository.get_subscription(uow.session, subscription_id, for_update=True), principal, subscription_id)
    await repository.delete_subscription(uow.session, subscription_id)
    await uow.commit()
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    summary="The subscription's delivery attempts, newest first (status, latency, next retry)",
    response_model=Page[DeliveryAttempt],
)
async def list_deliveries(
    subscription_id: SubscriptionPath,
    ctx: ContextDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, max 1000)")] = 100,
    cursor: CursorQuery = None,
) -> Response:
    keys = decode_cursor(cursor, (int,))
    async with ctx.db.read_session() as session:
        _owned(await repository.get_subscription(session, subscription_id), principal, subscription_id)
        rows = await repository.list_deliveries(session, subscription_id, before=int(keys[0]) if keys else None, limit=limit + 1)
    page = rows[:limit]
    items = [
        DeliveryAttempt(
            id=r["id"], change_cursor=encode_cursor([r["change_seq"]]), event_id=r["event_id"], attempt=r["attempt"],
            attempted_at=r["attempted_at"], outcome=r["outcome"], http_status=r["http_status"], error=r["error"],
            latency_ms=r["latency_ms"], next_retry_at=r["next_retry_at"],
        ).model_dump(mode="json")
        for r in page
    ]
    body = {"items": items, "next_cursor": encode_cursor([page[-1]["id"]]) if len(rows) > limit else None}
    return Response(orjson.dumps(body), media_type="application/json")


@router.post(
    "/{subscription_id}/replay",
    summary="Deliver again from a cursor or an instant (the same webhook-ids: receivers deduplicate)",
    response_model=Subscription,
    status_code=202,
)
async def replay_subscription(
    subscription_id: SubscriptionPath,
    body: ReplayBody,
    request: Request,
    uow: UowDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    if (body.after is None) == (body.since is None):
        raise field_problem(["body"], "give after (a cursor) or since (an instant), not both")
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        sub = _owned(await repository.get_subscription(uow.session, subscription_id, for_update=True), principal, subscription_id)
        if body.after is not None:
            keys = decode_cursor(body.after, (int,))
            assert keys is not None
            position = int(keys[0])
        else:
            assert body.since is not None
            position = await repository.position_before(uow.session, body.since)
        changes = {"position": position, "failures": 0, "next_attempt_at": None, "version": sub["version"] + 1, "updated_at": datetime.now(UTC)}
        await repository.update_subscription(uow.session, subscription_id, changes)
        answer = await idem.commit(_answer({**sub, **changes}, 202))
    SUBSCRIPTIONS.notify()
    return answer
