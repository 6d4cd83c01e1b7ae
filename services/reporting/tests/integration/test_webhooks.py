"""Webhooks end to end: a receiver on loopback started by the test, the reporting service on real
Kafka and PostgreSQL, a generated stream published straight to the topics. Signatures are verified
with the Standard Webhooks specification's own library (``standardwebhooks``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from reporting.main import create_app
from standardwebhooks.webhooks import Webhook
from ti_shared.events import EVENT_TOPICS
from ti_shared.settings import PlatformSettings
from ti_shared.streams import generate_stream
from ti_shared.testing import (
    bearer,
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    publish_events,
    running,
    service_settings,
    wait_settled,
    wait_until,
)

pytestmark = pytest.mark.integration

GRANT_TYPES = {t for t, topic in EVENT_TOPICS.items() if topic == "ti.grants"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers what ``status()`` says."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.status: Callable[[], int] = lambda: 204
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        status = self.status()
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        self.statuses.append(status)
        return web.Response(status=status)

    def ids(self) -> list[str]:
        return [h["webhook-id"] for h, _ in self.received]

    def accepted(self) -> dict[str, dict[str, Any]]:
        """The changes received with a 2xx, once each (deduplicated on webhook-id)."""
        return {h["webhook-id"]: json.loads(b) for (h, b), s in zip(self.received, self.statuses, strict=True) if s < 300}


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


class Reporting:
    def __init__(self, client: httpx.AsyncClient, platform: PlatformSettings) -> None:
        self.client, self.platform = client, platform
        self.admin = bearer(platform, "anct-admin", "admin")

    async def publish(self, events: list[dict[str, Any]]) -> None:
        await publish_events(self.platform, events)
        await asyncio.sleep(0.3)
        await wait_settled(self.client, timeout_s=60)

    async def feed(self, headers: dict[str, str]) -> list[dict[str, Any]]:
        r = await self.client.get("/v1/changes", params={"limit": 1000}, headers=headers)
        assert r.status_code == 200 and r.json()["next_cursor"] is None
        return list(r.json()["items"])

    async def subscribe(self, sub_id: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.put(f"/v1/subscriptions/{sub_id}", json=body, headers=headers or self.admin)


@contextlib.asynccontextmanager
async def reporting(**settings: Any) -> AsyncIterator[Reporting]:
    url = await create_database("rep_hooks")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix, **settings)  # webhooks: loopback targets only
    app = create_app(service_settings("reporting", url, platform))
    try:
        async with running(app) as client:
            yield Reporting(client, platform)
    finally:
        await drop_database(url)


def stream(seed: int) -> list[dict[str, Any]]:
    return generate_stream(seed, territories=6, actions=40, grants=24, sites=8, duplicate_rate=0.1, stale_rate=0.1, shuffle=True)


def verified(rec: Receiver, secret: str) -> None:
    """Every request the receiver got carries a valid Standard Webhooks signature for ``secret``."""
    hook = Webhook(secret)
    for headers, body in rec.received:
        hook.verify(body, headers)  # raises WebhookVerificationError


def in_order(received: list[dict[str, Any]], feed: list[dict[str, Any]]) -> bool:
    """Each subject's changes were first received in feed order."""
    first: list[str] = []
    for item in received:
        if item["id"] not in first:
            first.append(item["id"])
    position = {e["id"]: i for i, e in enumerate(feed)}
    by_subject: dict[str, list[int]] = {}
    for event_id in first:
        by_subject.setdefault(next(e["subject"] for e in feed if e["id"] == event_id), []).append(position[event_id])
    return all(p == sorted(p) for p in by_subject.values())


async def test_a_receiver_gets_every_change_once_in_effect_signed_with_replay_rotation_and_read_rules() -> None:
    async with receiver() as rec, receiver() as own, reporting() as rep:
        created = await rep.subscribe("reuser-all", {"url": rec.url, "description": "tout"})
        assert created.status_code == 201 and created.headers["etag"] == 'W/"1"', created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        again = await rep.subscribe("reuser-all", {"url": rec.url, "description": "tout"})
        assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["secret"] is None
        operators = sorted({e["data"]["operator"] for e in stream(3) if e["type"] in GRANT_TYPES})
        operator_token = bearer(rep.platform, "op-push", "grants:write", operator=operators[0])
        mine = await rep.subscribe("op-grants", {"url": own.url, "types": sorted(GRANT_TYPES)}, operator_token)
        assert mine.status_code == 201, mine.text
        refused = await rep.subscribe("op-other", {"url": own.url, "operator": operators[1]}, operator_token)
        assert refused.status_code == 403
        no_grants = await rep.subscribe("x", {"url": own.url, "types": sorted(GRANT_TYPES)}, bearer(rep.platform, "s", "sites:write"))
        assert no_grants.status_code == 403
        assert (await rep.subscribe("bad", {"url": "ftp://127.0.0.1/x"})).status_code == 422
        off_machine = await rep.subscribe("bad", {"url": "http://192.0.2.1/hook"})  # nothing is sent there: refused
        assert off_machine.status_code == 422 and off_machine.json()["errors"][0]["loc"] == ["body", "url"]

        await rep.publish(stream(3))
        feed = await rep.feed(rep.admin)
        await wait_until(lambda: _all(rec, feed), timeout_s=60, interval_s=0.2)
        received = rec.accepted()
        assert set(received) == {e["id"] for e in feed}
        assert all(received[e["id"]] == e for e in feed)  # the body is the feed's item: previous and changed included
        assert {"fr.anct.ti.action.deleted.v1", "fr.anct.ti.territory.withdrawn.v1"} <= {e["type"] for e in received.values()}
        assert in_order([json.loads(b) for _, b in rec.received], feed)
        verified(rec, secret)
        own_grants = [e for e in feed if e["type"] in GRANT_TYPES and e["data"]["operator"] == operators[0]]
        await wait_until(lambda: _all(own, own_grants), timeout_s=30, interval_s=0.2)
        assert sorted(own.accepted()) == sorted(e["id"] for e in own_grants)
        verified(own, mine.json()["secret"])

        log = await rep.client.get("/v1/subscriptions/reuser-all/deliveries", params={"limit": 5}, headers=rep.admin)
        assert log.status_code == 200 and len(log.json()["items"]) == 5 and log.json()["next_cursor"]
        assert all(d["outcome"] == "delivered" and d["http_status"] == 204 and d["latency_ms"] >= 0 for d in log.json()["items"])
        assert (await rep.client.get("/v1/subscriptions/reuser-all", headers=operator_token)).status_code == 404

        # a replay sends the same changes again, with the same webhook-ids: deduplicated, nothing changes
        count = len(rec.received)
        replay = await rep.client.post("/v1/subscriptions/reuser-all/replay", json={"after": feed[-6]["cursor"]}, headers=rep.admin)
        assert replay.status_code == 202, replay.text
        await wait_until(lambda: _count(rec, count + 5), timeout_s=30, interval_s=0.2)
        assert [h["webhook-id"] for h, _ in rec.received[count:]] == [e["id"] for e in feed[-5:]]
        assert set(rec.accepted()) == {e["id"] for e in feed}

        # rotation: the new secret is shown once; both secrets sign for a while
        rotated = await rep.subscribe("reuser-all", {"url": rec.url, "description": "tout", "rotate_secret": True})
        assert rotated.status_code == 200 and rotated.json()["version"] == 3
        new_secret = rotated.json()["secret"]
        assert new_secret and new_secret != secret
        count = len(rec.received)
        await rep.client.post("/v1/subscriptions/reuser-all/replay", json={"after": feed[-2]["cursor"]}, headers=rep.admin)
        await wait_until(lambda: _count(rec, count + 1), timeout_s=30, interval_s=0.2)
        for headers, body in rec.received[count:]:
            assert len(headers["webhook-signature"].split(" ")) == 2
            Webhook(new_secret).verify(body, headers)
            Webhook(secret).verify(body, headers)
        deleted = await rep.client.delete("/v1/subscriptions/reuser-all", headers=rep.admin)
        assert deleted.status_code == 204
        assert (await rep.client.get("/v1/subscriptions/reuser-all", headers=rep.admin)).status_code == 404


async def _all(rec: Receiver, feed: list[dict[str, Any]]) -> bool:
    return set(rec.accepted()) >= {e["id"] for e in feed}


async def _count(rec: Receiver, n: int) -> bool:
    return len(rec.received) >= n


async def test_a_receiver_down_for_30_s_loses_nothing() -> None:
    async with receiver() as rec, reporting(webhook_retry_base_seconds=0.5, webhook_retry_cap_seconds=4) as rep:
        down_until = time.monotonic() + 30
        rec.status = lambda: 503 if time.monotonic() < down_until else 200
        first = await rep.subscribe("flaky", {"url": rec.url})
        await rep.publish(stream(5))
        feed = await rep.feed(rep.admin)
        await wait_until(lambda: _all(rec, feed), timeout_s=90, interval_s=0.3)
        assert time.monotonic() >= down_until
        # during the outage the first change was retried; then every change once, in feed order
        assert [h["webhook-id"] for h, _ in rec.received[-len(feed):]] == [e["id"] for e in feed]
        assert set(rec.ids()[: -len(feed)]) == {feed[0]["id"]} and rec.statuses[-len(feed):] == [200] * len(feed)
        verified(rec, first.json()["secret"])
        log = (await rep.client.get("/v1/subscriptions/flaky/deliveries", params={"limit": 1000}, headers=rep.admin)).json()["items"]
        failures = [d for d in log if d["outcome"] == "failed"]
        assert len(failures) >= 5 and all(d["http_status"] == 503 and d["error"] == "HTTP 503" for d in failures)
        assert all(d["next_retry_at"] is not None for d in failures) and {d["event_id"] for d in failures} == {feed[0]["id"]}
        retries = sorted(d["attempted_at"] for d in failures)
        assert retries[-1] > retries[0]  # spread over the outage by the backoff, not a tight loop
        assert sum(d["outcome"] == "delivered" for d in log) == len(feed)


async def test_a_subscription_that_keeps_failing_is_paused_with_the_reason_then_resumed_by_a_put() -> None:
    async with receiver() as broken, reporting(webhook_retry_base_seconds=0.2, webhook_retry_cap_seconds=1, webhook_max_failures=4) as rep:
        broken.status = lambda: 500
        body = {"url": broken.url, "types": ["fr.anct.ti.site.labelled.v1"]}
        assert (await rep.subscribe("hopeless", body)).status_code == 201
        await rep.publish(stream(5))
        paused: dict[str, Any] = {}

        async def is_paused() -> bool:
            paused.update((await rep.client.get("/v1/subscriptions/hopeless", headers=rep.admin)).json())
            return paused["state"] == "paused"

        await wait_until(is_paused, timeout_s=30, interval_s=0.3)
        assert paused["failures"] == 4 and paused["paused_reason"] == "4 failed deliveries in a row; last: HTTP 500"
        assert len(broken.received) == 4 and len(set(broken.ids())) == 1
        await asyncio.sleep(1.5)
        assert len(broken.received) == 4  # paused: nothing more is sent

        broken.status = lambda: 204
        resumed = await rep.subscribe("hopeless", body)
        assert resumed.status_code == 200 and resumed.json()["state"] == "active" and resumed.json()["failures"] == 0
        assert resumed.json()["paused_reason"] is None and resumed.json()["version"] == 2
        labelled = [e for e in await rep.feed(rep.admin) if e["type"] == "fr.anct.ti.site.labelled.v1"]
        await wait_until(lambda: _all(broken, labelled), timeout_s=30, interval_s=0.2)
        assert [h["webhook-id"] for h, _ in broken.received[4:]] == [e["id"] for e in labelled]
