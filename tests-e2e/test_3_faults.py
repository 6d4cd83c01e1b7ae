"""Scenario 3: faults under traffic — Kafka down for a while, the reporting process killed, PostgreSQL
restarted, poison messages on every topic. Nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

import httpx
import pytest
from e2e_expected import assert_indicators
from e2e_harness import Api, Infra, Model, Platform, Stats, api_of
from e2e_writes import REGIONS
from reporting.feed.handler import FEED_CONSUMER
from ti_shared.bus import OutgoingMessage, make_publisher
from ti_shared.events import DOMAIN_TOPICS
from ti_shared.streams import grant_payloads, site_payloads

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("TI_E2E_KAFKA_OUTAGE_S", "30"))


@pytest.fixture(autouse=True)
def _own_infra(infra: Infra) -> None:
    if not infra.own:
        pytest.skip("faults need the suite's own PostgreSQL and Kafka (TI_E2E_INFRA=own)")


def scopes(pushed: dict[str, str]) -> list[str]:
    return ["national", *(f"region:{r}" for r in REGIONS), f"territory:{sorted(pushed)[0]}"]


class Writer:
    """Pushes grant PUTs one after another until stopped; remembers every answer."""

    def __init__(self, api: Api, p: Platform, grants: dict[tuple[str, str], dict[str, Any]], pause_s: float = 0.1) -> None:
        self.api, self.p, self.pause_s = api, p, pause_s
        self.pending = list(grants.items())
        self.answers: list[tuple[tuple[str, str], int, str]] = []
        self.accepted: dict[tuple[str, str], dict[str, Any]] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        token = self.p.auth("ademe-push", "grants:write", operator="ADEME")
        while self.pending and not self.stop.is_set():
            (op, ref), body = self.pending.pop(0)
            try:
                r = await self.api.request("PUT", "funding-ledger", f"/v1/grants/{op}/{ref}", json=body, headers=token)
                status, ctype = r.status_code, r.headers.get("content-type", "")
            except httpx.HTTPError as exc:
                status, ctype = 0, repr(exc)
            self.answers.append(((op, ref), status, ctype))
            if status in (200, 201):
                self.accepted[(op, ref)] = body
            await asyncio.sleep(self.pause_s)


async def test_kafka_outage_during_writes(infra: Infra, platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]) -> None:
    grants = grant_payloads(random.Random(31), "ADEME", pushed, 2000, tag="S3K")
    async with api_of(platform, stats) as api:
        writer = Writer(api, platform, grants)
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(1)
        await asyncio.to_thread(infra.kafka, "stop")
        down_at = time.monotonic()
        backlog = 0
        async with httpx.AsyncClient() as client:
            while time.monotonic() - down_at < OUTAGE_S:
                _code, body = await platform.readyz(client, "funding-ledger")
                backlog = max(backlog, int(body.get("outbox_pending") or 0))
                await asyncio.sleep(1)
        await asyncio.to_thread(infra.kafka, "start")
        await asyncio.sleep(1)
        writer.stop.set()
        await task
    for key, body in writer.accepted.items():
        model.set_grant(key, body)
    refused = [a for a in writer.answers if a[1] not in (200, 201)]
    assert not refused, f"writes refused while Kafka was down: {refused[:5]}"
    assert len(writer.accepted) > 20
    assert backlog > 0, "the outbox never held a backlog: was Kafka really down?"
    await stats.settle(platform, "kafka_outage", timeout_s=240)
    stats.scenarios["kafka_outage"].update(writes=len(writer.accepted), max_outbox_backlog=backlog, outage_s=OUTAGE_S)
    await assert_indicators(platform, model, scopes(pushed))


async def test_reporting_killed_mid_stream(platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]) -> None:
    token = platform.auth("bpi-push", "grants:write", operator="BPI")
    grants = grant_payloads(random.Random(32), "BPI", pushed, 600, tag="S3R")
    items = [{"operator": op, "operator_ref": ref, **body} for (op, ref), body in grants.items()]
    for key, body in grants.items():
        model.set_grant(key, body)

    async def push(api: Api) -> None:
        for i in range(0, len(items), 100):
            doc = {"mode": "atomic", "items": items[i : i + 100]}
            r = await api.request("POST", "funding-ledger", "/v1/grant-batches", json=doc, headers=token)
            assert r.status_code == 201, r.text[:500]

    lag_seen = 0
    async with api_of(platform, stats) as api, httpx.AsyncClient() as client:
        task = asyncio.create_task(push(api))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _code, body = await platform.readyz(client, "reporting")
            lag_seen = int(body.get("consumer_lag") or 0)
            if lag_seen > 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(platform.kill, "reporting")
        killed_while_writing = not task.done()
        await task
    await asyncio.to_thread(platform.start, "reporting")
    await stats.settle(platform, "reporting_killed", timeout_s=180)
    stats.scenarios["reporting_killed"].update(writes=len(grants), lag_when_killed=lag_seen, killed_while_writing=killed_while_writing)
    await assert_indicators(platform, model, scopes(pushed))


async def test_postgresql_restart_gives_503_then_recovers(
    infra: Infra, platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]
) -> None:
    anct = platform.auth("anct-sites", "sites:write")
    sites = site_payloads(random.Random(33), pushed, 300, tag="S3P")
    answers: list[tuple[str, int, str]] = []
    stop = asyncio.Event()

    async with api_of(platform, stats) as api:

        async def write_sites() -> None:
            for sid, body in sites.items():
                if stop.is_set():
                    return
                try:
                    r = await api.request("PUT", "site-catalog", f"/v1/sites/{sid}", json=body, headers=anct, timeout=20)
                    answers.append((sid, r.status_code, r.headers.get("content-type", "")))
                except httpx.HTTPError as exc:
                    answers.append((sid, 0, repr(exc)))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(write_sites())
        await asyncio.sleep(1)
        await asyncio.to_thread(infra.pg, "stop")
        await asyncio.sleep(5)
        await asyncio.to_thread(infra.pg, "start")
        recovered_at = time.monotonic()
        while time.monotonic() - recovered_at < 60 and not (answers and answers[-1][1] in (200, 201)):
            await asyncio.sleep(0.2)
        stop.set()
        await task
        # every site whose write got no 2xx is sent again (a PUT is idempotent); all must land once
        resent = []
        for sid in {sid for sid, _s, _c in answers}:
            r = await api.request("PUT", "site-catalog", f"/v1/sites/{sid}", json=sites[sid], headers=anct)
            resent.append((sid, r.status_code))
            if r.status_code in (200, 201):
                model.sites[sid] = sites[sid]
        assert all(status in (200, 201) for _sid, status in resent), resent
        statuses = [a[1] for a in answers]
        assert 500 not in statuses and 0 not in statuses, [a for a in answers if a[1] in (0, 500)][:5]
        unavailable = [a for a in answers if a[1] == 503]
        assert unavailable, "no request met the database outage"
        assert all(a[2].startswith("application/problem+json") for a in unavailable)
        assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
        assert statuses[-1] in (200, 201), "site-catalog did not recover"
    await stats.settle(platform, "postgresql_restart", timeout_s=180)
    stats.scenarios["postgresql_restart"].update(answers=len(answers), unavailable_503=len(unavailable))
    await assert_indicators(platform, model, scopes(pushed))


async def test_poison_messages_are_dead_lettered(platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]) -> None:
    await platform.wait_settled()
    # the dead letters' topic is read partition after partition in no fixed order: what is new is told
    # by content, not by position
    before = {json.dumps(d, sort_keys=True) for d in await platform.dead_letters()}
    publisher = make_publisher(platform.settings, "e2e-poison")
    await publisher.start()
    try:
        poison = []
        for topic in DOMAIN_TOPICS:
            poison.append(OutgoingMessage(topic, "poison-raw", b"\x00not json at all {"))
            event = {"specversion": "1.0", "id": f"poison-{topic}", "source": "/e2e", "type": "fr.anct.ti.unknown.thing.v1",
                     "subject": "poison-typed", "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json",
                     "entityversion": 1, "tiactor": "e2e", "data": {}}
            poison.append(OutgoingMessage(topic, "poison-typed", json.dumps(event).encode()))
        await publisher.publish(poison)  # the publisher prepends the platform's topic prefix
    finally:
        await publisher.stop()
    # consumption continues: a write after the poison is counted
    anct = platform.auth("anct-sites", "sites:write")
    async with api_of(platform, stats) as api:
        for sid, body in site_payloads(random.Random(34), pushed, 3, tag="S3X").items():
            await api.put("site-catalog", f"/v1/sites/{sid}", body, anct)
            model.sites[sid] = body
    await stats.settle(platform, "poison", timeout_s=120)
    letters = [d for d in await platform.dead_letters() if json.dumps(d, sort_keys=True) not in before]
    reporting = [d for d in letters if d.get("consumer") == "reporting"]
    assert sorted((d["topic"], d["key"]) for d in reporting) == sorted(
        (t, k) for t in DOMAIN_TOPICS for k in ("poison-raw", "poison-typed")
    ), reporting
    assert all(d.get("reason") for d in letters)
    # the change feed's consumer reads every topic too: it dead-letters the same messages, under its name
    feed = [d for d in letters if d.get("consumer") == FEED_CONSUMER]
    assert sorted((d["topic"], d["key"]) for d in feed) == sorted((d["topic"], d["key"]) for d in reporting), feed
    # the replicas of territories dead-letter the poison of ti.territories too
    replica_letters = [d for d in letters if d.get("consumer") not in ("reporting", FEED_CONSUMER)]
    assert {d["topic"] for d in replica_letters} <= {"ti.territories"}
    stats.scenarios["poison"].update(dead_letters=len(letters))
    await assert_indicators(platform, model, scopes(pushed))
