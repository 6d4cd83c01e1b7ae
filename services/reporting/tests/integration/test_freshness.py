"""Freshness on real Kafka and PostgreSQL: what reporting has applied of each source, ``sources`` in every
indicator response, ``after=<event-id>&wait=`` (read your own writes), the event time → applied histogram,
and rebuilds asked twice at once.

Expected tallies are computed here from the published stream (an event counts when its version is newer
than every version of its subject before it), not read from the service's tables."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from reporting.main import create_app
from reporting.repository import sources
from ti_shared.streams import entity_of, generate_stream
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
    territory_event,
    wait_settled,
    wait_until,
)

pytestmark = pytest.mark.integration

SERVICE_OF = {"territory": "territory-registry", "action": "action-tracker", "grant": "funding-ledger", "site": "site-catalog"}


def expected_sources(events: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, str]]:
    """(service, operator) → (events applied, id of the latest event by time then id)."""
    seen: dict[tuple[str, str], int] = {}
    counts: dict[tuple[str, str], int] = {}
    latest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for e in events:
        entity = entity_of(e)
        if e["entityversion"] <= seen.get((entity, e["subject"]), 0):
            continue  # a duplicate or a stale version: not applied
        seen[(entity, e["subject"])] = e["entityversion"]
        key = (SERVICE_OF[entity], e["subject"].split("/")[0] if entity == "grant" else "")
        counts[key] = counts.get(key, 0) + 1
        stamp = (datetime.fromisoformat(e["time"].replace("Z", "+00:00")), e["id"])
        latest[key] = max(latest.get(key, stamp), stamp)
    return {key: (n, latest[key][1]) for key, n in counts.items()}


def applied_ids(events: list[dict[str, Any]]) -> set[str]:
    """The ids of the events a clean pass applies (a duplicate or a stale version is not applied)."""
    seen: dict[tuple[str, str], int] = {}
    out: set[str] = set()
    for e in events:
        key = (entity_of(e), e["subject"])
        if e["entityversion"] > seen.get(key, 0):
            seen[key] = e["entityversion"]
            out.add(e["id"])
    return out


def tallies_of(sources: dict[str, Any]) -> dict[tuple[str, str], tuple[int, str]]:
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for service, entry in sources.items():
        if entry["operators"]:
            out.update({(service, op): (o["events_applied"], o["last_event_id"]) for op, o in entry["operators"].items()})
        elif entry["events_applied"]:
            out[(service, "")] = (entry["events_applied"], entry["last_event_id"])
    return out


def applied_observations(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        if family.name == "ti_consumer_event_age_seconds":
            return sum(s.value for s in family.samples
                       if s.name.endswith("_count") and s.labels.get("consumer") == "reporting")
    return 0.0


@contextlib.asynccontextmanager
async def reporting_service() -> AsyncIterator[tuple[httpx.AsyncClient, Any, Any]]:
    url = await create_database("reporting_fresh")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    try:
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            yield client, platform, app
    finally:
        await drop_database(url)


async def test_freshness_sources_and_after_follow_the_applied_events() -> None:
    events = generate_stream(21, territories=12, actions=120, grants=40, sites=12, duplicate_rate=0.05, stale_rate=0.05)
    async with reporting_service() as (client, platform, _app):
        empty = (await client.get("/v1/indicators/freshness")).json()
        assert set(empty["sources"]) == set(SERVICE_OF.values())
        assert all(s["events_applied"] == 0 and s["last_event_time"] is None for s in empty["sources"].values())

        await publish_events(platform, events)
        await wait_settled(client, 60)
        fresh = (await client.get("/v1/indicators/freshness")).json()
        assert tallies_of(fresh["sources"]) == expected_sources(events)
        assert fresh["consumer_lag"] == 0
        # after='s check of the history, for many events at once (one array parameter on PostgreSQL)
        asked = [e["id"] for e in events] + ["no-such-event"]
        async with _app.state.ctx.db.reads() as connection:
            found = await sources.applied_among(connection, asked)
            assert await sources.applied_among(connection, asked[:1]) == {asked[0]} & found
        assert found == applied_ids(events) and len(found) < len(set(asked))
        assert len(fresh["sources"]["funding-ledger"]["operators"]) >= 2  # per operator
        ledger = fresh["sources"]["funding-ledger"]
        assert ledger["events_applied"] == sum(o["events_applied"] for o in ledger["operators"].values())
        assert ledger["lag_s"] > 3600  # the stream's events are of 2024

        # every indicator response carries the same summary: cached, read, as of, after=
        cached = await client.get("/v1/indicators", params={"scope": "national"})
        assert cached.status_code == 200 and tallies_of(cached.json()["sources"]) == expected_sources(events)
        region = (await client.get("/v1/indicators", params={"scope": "region:84"})).json()
        as_of = (await client.get("/v1/indicators", params={"scope": "region:84", "as_of": "2024-06-30"})).json()
        assert tallies_of(region["sources"]) == tallies_of(as_of["sources"]) == expected_sources(events)
        again = await client.get("/v1/indicators", params={"scope": "national"}, headers={"If-None-Match": cached.headers["etag"]})
        assert again.status_code == 304  # the ETag is the figures'

        # a write of now: after= waits for it (asked before it is published), then every figure shows it
        observed = applied_observations((await client.get("/metrics")).text)
        assert observed >= sum(n for n, _ in expected_sources(events).values())
        before = region["indicators"]["territories.count"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        new = territory_event("ti-8499", "84", time=now)
        waiting = asyncio.create_task(
            client.get("/v1/indicators", params={"scope": "region:84", "after": new["id"], "wait": "20"}, timeout=30)
        )

        async def one_waits() -> bool:
            return _waiting(_app) == 1

        await wait_until(one_waits, 10, 0.01)
        await publish_events(platform, [new])
        answered = await waiting
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["indicators"]["territories.count"] == before + 1
        territories_source = body["sources"]["territory-registry"]
        assert territories_source["last_event_id"] == new["id"] and "lag_s" not in territories_source  # a response is a function of the figures
        assert territories_source["events_applied"] == fresh["sources"]["territory-registry"]["events_applied"] + 1
        now_fresh = (await client.get("/v1/indicators/freshness")).json()["sources"]["territory-registry"]
        assert now_fresh["last_event_id"] == new["id"] and now_fresh["lag_s"] < 3600
        assert applied_observations((await client.get("/metrics")).text) == observed + 1
        # applied already: at once, wait=0 included
        done = await client.get("/v1/indicators", params={"scope": "national", "after": new["id"], "wait": "0"})
        assert done.status_code == 200 and done.json()["sources"]["territory-registry"]["last_event_id"] == new["id"]
        older = await client.get("/v1/indicators", params={"after": events[0]["id"]})
        assert older.status_code == 200

        # an event reporting never receives: 504 problem past the wait, nothing waits afterwards
        for wait in ("0", "0.3"):
            missing = await client.get("/v1/indicators", params={"after": "no-such-event", "wait": wait})
            assert missing.status_code == 504, missing.text
            assert missing.headers["content-type"].startswith("application/problem+json")
            assert "no-such-event" in missing.json()["detail"]
        assert _waiting(_app) == 0

        # bad input: 422 problems
        for params in ({"after": "x", "wait": "-1"}, {"after": "x", "wait": "31"}, {"after": "x", "wait": "soon"},
                       {"after": "x", "wait": "nan"}, {"after": "x", "wait": "inf"}, {"after": ""}, {"wait": "1"},
                       {"after": "x" * 201}, {"after": "a b"}, {"after": "x\x00"}, {"after": "é"}):
            bad = await client.get("/v1/indicators", params=params)
            assert bad.status_code == 422, (params, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")


def _waiting(app: Any) -> int:
    from reporting import reads

    return reads.freshness_of(app.state.ctx).waiting


async def test_a_rebuild_gives_the_same_tallies_and_a_second_rebuild_at_once_is_refused() -> None:
    events = generate_stream(22, territories=10, actions=80, grants=30, sites=10, duplicate_rate=0.05)
    async with reporting_service() as (client, platform, _app):
        await publish_events(platform, events)
        await wait_settled(client, 60)
        before = tallies_of((await client.get("/v1/indicators/freshness")).json()["sources"])
        assert before == expected_sources(events)
        admin = bearer(platform, "ops", "admin")
        first, second = await asyncio.gather(
            client.post("/v1/indicators/rebuild", headers=admin), client.post("/v1/indicators/rebuild", headers=admin)
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [202, 409], (first.text, second.text)
        refused = first if first.status_code == 409 else second
        assert refused.headers["content-type"].startswith("application/problem+json")
        started = (first if first.status_code == 202 else second).json()["generation"]

        async def done() -> bool:
            run = (await client.get("/v1/indicators/rebuild")).json()
            assert run["state"] != "failed", run
            return bool(run["state"] == "done")

        await wait_until(done, 60, 0.1)
        await _app.state.ctx.extras["rebuild_task"]  # its end: the previous generation deleted
        fresh = (await client.get("/v1/indicators/freshness")).json()
        assert fresh["generation"] == started
        assert tallies_of(fresh["sources"]) == before
