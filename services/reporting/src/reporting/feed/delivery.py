"""Webhook deliveries: each active subscription gets the changes it may read, in feed order, one
POST each, signed as Standard Webhooks says; a failure is retried with exponential backoff and
jitter, and after too many in a row the subscription is paused with the reason.

At least once: the position moves only after a 2xx, so a change whose answer was lost is sent again
(with the same ``webhook-id``, the change's event id: receivers deduplicate on it). One subscription
is delivered by one process at a time (its row is locked, ``SKIP LOCKED`` on PostgreSQL).

The loop does not poll: it is woken when this process's change feed commits new changes (only while a
subscription is active: with none, the feed's commits leave it asleep) or a subscription is created,
resumed or replayed here (:data:`SUBSCRIPTIONS`), sleeps otherwise until the earliest retry is due, and
looks anyway every :data:`FALLBACK_POLL_S` (what another process changed)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from ti_shared.app import ServiceContext
from ti_shared.logging import get_logger

from reporting.feed import repository
from reporting.feed.api import change_item
from reporting.feed.domain import Reader
from reporting.feed.handler import NOTIFIER, FeedNotifier
from reporting.feed.repository import FeedFilter, StoredChange
from reporting.feed.webhooks import refused_address, retry_delay, signature_header

log = get_logger(__name__)

#: the longest a receiver may take to answer
TIMEOUT_S = 10.0
#: changes sent to one subscription before the others get their turn
BURST = 100
#: subscriptions delivered at the same time by one process
PARALLEL = 4
#: how long the previous secret keeps signing after a rotation
ROTATION_GRACE = timedelta(hours=24)
USER_AGENT = "ti-platform-webhooks/1"
#: the longest the loop sleeps without being woken (changes and subscriptions of another process)
FALLBACK_POLL_S = 30.0
#: the pause when a retry is past due but could not be made (its subscription locked by another process)
BUSY_ELSEWHERE_S = 0.5

#: wakes this process's delivery loop: a subscription created, resumed or replayed
SUBSCRIPTIONS = FeedNotifier()


class TargetRefused(ValueError):
    """A webhook URL that may not be called (its scheme, or an address the configuration refuses)."""


TargetRule = Literal["public", "loopback", "any"]
LOCALHOST = frozenset({"localhost", "localhost.localdomain"})


async def check_target(url: str, rule: TargetRule) -> None:
    """Refuse a URL that is not http(s) or that the configuration's rule (``TI_WEBHOOK_TARGETS``) does not
    allow: ``loopback`` takes only localhost and loopback addresses, written as such (nothing is
    resolved); ``public`` resolves the host and refuses loopback, private, link-local and reserved
    addresses; ``any`` takes every host. Checked at the PUT and again before every delivery."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise TargetRefused("must not carry credentials")
    host = parts.hostname.lower()
    if rule == "any":
        return
    if rule == "loopback":
        if host in LOCALHOST or _is_loopback(host):
            return
        raise TargetRefused("only loopback targets (127.0.0.1, ::1, localhost) are allowed here (TI_WEBHOOK_TARGETS)")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"its host does not resolve: {exc}") from exc
    for info in infos:
        reason = refused_address(str(info[4][0]))
        if reason is not None:
            raise TargetRefused(f"{reason}; only public targets are allowed here (TI_WEBHOOK_TARGETS)")


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def feed_filter(sub: dict[str, Any]) -> FeedFilter:
    """The changes a subscription receives: what its creator may read, narrowed by its types and operator."""
    reader = Reader(grants=sub["reader_grants"], operator=sub["reader_operator"] or sub["operator"])
    return FeedFilter(reader=reader, types=frozenset(sub["types"]))


def _secrets(sub: dict[str, Any], now: datetime) -> list[str]:
    until = sub["previous_secret_until"]
    if sub["previous_secret"] and until is not None and until > now:
        return [sub["secret"], sub["previous_secret"]]
    return [sub["secret"]]


async def _send(http: httpx.AsyncClient, sub: dict[str, Any], change: StoredChange, body: bytes, rule: TargetRule) -> tuple[int | None, str | None]:
    """(HTTP status, error) of one POST of ``body``."""
    now = datetime.now(UTC)
    stamp = int(now.timestamp())
    msg_id = str(change.event["id"])
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header(_secrets(sub, now), msg_id, stamp, body),
    }
    try:
        await check_target(sub["url"], rule)
        response = await http.post(sub["url"], content=body, headers=headers)
    except TargetRefused as exc:
        return None, f"target refused: {exc}"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


async def deliver_subscription(ctx: ServiceContext, http: httpx.AsyncClient, subscription_id: str) -> int:
    """Deliver up to :data:`BURST` changes to one subscription; the number delivered."""
    platform = ctx.settings.platform
    delivered = 0
    while delivered < BURST:
        async with ctx.db.session() as session:
            sub = await repository.claim_subscription(session, subscription_id)
            if sub is None or (sub["next_attempt_at"] is not None and sub["next_attempt_at"] > datetime.now(UTC)):
                return delivered
            found = await repository.list_changes(session, feed_filter(sub), after=sub["position"], limit=1)
            if not found:
                return delivered
            change = found[0]
            body = orjson.dumps(change_item(change))
            started = time.perf_counter()
            status, error = await _send(http, sub, change, body, platform.webhook_target_rule)
            latency = int((time.perf_counter() - started) * 1000)
            now = datetime.now(UTC)
            attempt = sub["failures"] + 1
            if error is None:
                update: dict[str, Any] = {"position": change.seq, "failures": 0, "next_attempt_at": None}
                next_retry = None
            else:
                failures = sub["failures"] + 1
                next_retry = now + timedelta(
                    seconds=retry_delay(failures, base_s=platform.webhook_retry_base_seconds, cap_s=platform.webhook_retry_cap_seconds)
                )
                update = {"failures": failures, "next_attempt_at": next_retry}
                if failures >= platform.webhook_max_failures:
                    update |= {"state": "paused", "next_attempt_at": None,
                               "paused_reason": f"{failures} failed deliveries in a row; last: {error}"}
                    next_retry = None
            await repository.add_delivery(session, {
                "subscription_id": subscription_id, "change_seq": change.seq, "event_id": str(change.event["id"]),
                "attempt": attempt, "attempted_at": now, "outcome": "delivered" if error is None else "failed",
                "http_status": status, "error": error, "latency_ms": latency, "next_retry_at": next_retry,
            })
            await repository.update_subscription(session, subscription_id, update)
            await session.commit()
        if error is not None:
            log.info("webhook delivery failed", subscription=subscription_id, error=error, failures=update["failures"])
            return delivered
        delivered += 1
    return delivered


async def deliver_webhooks(ctx: ServiceContext) -> None:
    """The delivery loop of a running reporting service (``ServiceSpec.background``)."""
    limit = asyncio.Semaphore(PARALLEL)

    async def one(http: httpx.AsyncClient, subscription_id: str) -> int:
        async with limit:
            return await deliver_subscription(ctx, http, subscription_id)

    async def deliver_due(http: httpx.AsyncClient) -> tuple[float, bool]:
        """Deliver what is due; the seconds to sleep before looking again (unless woken), and whether a
        subscription is active."""
        async with ctx.db.reads() as conn:  # each look sees what has committed, no BEGIN/ROLLBACK
            due, retry_at = await repository.due_subscriptions(conn, datetime.now(UTC), limit=100)
        active = bool(due) or retry_at is not None
        if due:
            done = await asyncio.gather(*(one(http, s) for s in due))
            if any(n >= BURST for n in done):
                return 0.0, True
            async with ctx.db.reads() as conn:  # each look sees what has committed, no BEGIN/ROLLBACK
                retry_at = await repository.next_attempt_at(conn)
        if retry_at is None:
            return FALLBACK_POLL_S, active
        wait_s = (retry_at - datetime.now(UTC)).total_seconds()
        return min(wait_s if wait_s > 0 else BUSY_ELSEWHERE_S, FALLBACK_POLL_S), active

    async def look(http: httpx.AsyncClient) -> tuple[float, bool]:
        try:
            return await deliver_due(http)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop never dies: it logs and goes on
            log.warning("webhook deliveries failed, retrying", error=repr(exc))
            return 1.0, True

    async def rest(pause: float) -> None:
        if pause > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await wake.wait()

    wake = asyncio.Event()
    #: the last look found an active subscription (until a look finds none, the feed's commits wake the loop)
    active = True
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http:
        with SUBSCRIPTIONS.listening(wake):
            while True:
                listening = active
                with NOTIFIER.listening(wake) if listening else contextlib.nullcontext():
                    wake.clear()  # what is notified from here on wakes the next sleep
                    pause, active = await look(http)
                    if active and not listening:
                        continue  # looked again at once, the feed's commits waking it (those made meanwhile seen)
                    if active:
                        await rest(pause)
                if not active:
                    await rest(pause)  # no subscription to deliver: only one created (or the fallback poll) wakes it
