"""The change feed on real Kafka and PostgreSQL: a generated programme stream (duplicates, stale
redeliveries, interleaving) published straight to the topics, read back from the feed as pages, as
NDJSON and live (Server-Sent Events over a real server on loopback, resumed after a disconnect)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from reporting.feed import repository
from reporting.feed.handler import FEED_CONSUMER, ChangeFeed
from reporting.main import SPEC, create_app
from ti_shared.app import create_service_app
from ti_shared.events import EVENT_TOPICS
from ti_shared.http import decode_cursor
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
)

pytestmark = pytest.mark.integration

GRANT_TYPES = sorted(t for t, topic in EVENT_TOPICS.items() if topic == "ti.grants")
BOOKKEEPING = {"version", "updated_at"}


def stream(seed: int = 3) -> list[dict[str, Any]]:
    return generate_stream(seed, territories=6, actions=40, grants=24, sites=8, duplicate_rate=0.1, stale_rate=0.1, shuffle=True)


def applied(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a consumer keeps of a stream: each event newer than every earlier one of its subject."""
    newest: dict[tuple[str, str], int] = {}
    kept = []
    for e in events:
        key = (EVENT_TOPICS[e["type"]], e["subject"])
        if e["entityversion"] > newest.get(key, 0):
            newest[key] = e["entityversion"]
            kept.append(e)
    return kept


def by_subject(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for e in items:
        out.setdefault((EVENT_TOPICS[e["type"]], e["subject"]), []).append(e["id"])
    return out


def assert_previous_and_changed(every: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each item of the feed is its published event, with the data of its subject's previous item and
    the fields that differ from it."""
    published = {e["id"]: e for e in expected}
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for item in every:
        event = published[item["id"]]
        assert {k: item[k] for k in ("type", "subject", "entityversion", "tiactor", "data")} == {
            k: event[k] for k in ("type", "subject", "entityversion", "tiactor", "data")}
        key = (EVENT_TOPICS[item["type"]], item["subject"])
        before = previous.get(key)
        assert item["previous"] == before
        if before is None:
            assert set(item["changed"]) == set(item["data"]) - BOOKKEEPING
        else:
            for k in set(item["data"]) | set(before):
                if k not in BOOKKEEPING:
                    assert (k in item["changed"]) == (before.get(k) != item["data"].get(k)), (k, item)
        previous[key] = item["data"]


class Reporting:
    def __init__(self, client: httpx.AsyncClient, platform: PlatformSettings, app: Any) -> None:
        self.client, self.platform, self.app = client, platform, app

    async def publish(self, events: list[dict[str, Any]]) -> None:
        await publish_events(self.platform, events)
        await asyncio.sleep(0.3)  # the relay-less publication is visible to the consumers' next fetch
        await wait_settled(self.client, timeout_s=60)

    async def pages(self, headers: dict[str, str] | None = None, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            r = await self.client.get("/v1/changes", params={**params, **({"after": after} if after else {})}, headers=headers or {})
            assert r.status_code == 200, r.text
            page = r.json()
            items += page["items"]
            after = page["next_cursor"]
            if after is None:
                return items


@contextlib.asynccontextmanager
async def reporting() -> AsyncIterator[Reporting]:
    url = await create_database("rep_feed")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    app = create_app(service_settings("reporting", url, platform))
    try:
        async with running(app) as client:
            yield Reporting(client, platform, app)
    finally:
        await drop_database(url)


#: the feed's consumer in catch-up windows of three batches of 40, each fetch of 20 or more copied, and
#: the newest change of 25 subjects at most in memory (fewer than the stream has)
SMALL_WINDOWS = dataclasses.replace(SPEC, consumers=[
    dataclasses.replace(c, batch_size=40, window_events=120, handler=functools.partial(ChangeFeed, copy_at=20, max_known=25))
    if c.name == FEED_CONSUMER else c
    for c in SPEC.consumers
])


async def test_catch_up_windows_a_crash_a_restart_and_a_bounded_memory_give_the_same_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bool] = []
    looked_up: list[int] = []
    add_changes, newest_changes = repository.add_changes, repository.newest_changes

    async def counted_add(session: Any, changes: Any, *, copy: bool) -> None:
        writes.append(copy)
        await add_changes(session, changes, copy=copy)

    async def counted_newest(session: Any, keys: Any) -> Any:
        looked_up.append(len(keys))
        return await newest_changes(session, keys)

    monkeypatch.setattr(repository, "add_changes", counted_add)
    monkeypatch.setattr(repository, "newest_changes", counted_newest)
    events = stream(seed=5)
    half = len(events) // 2
    expected = applied(events)
    url = await create_database("rep_feed")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    settings = service_settings("reporting", url, platform)
    try:
        await publish_events(platform, events[:half])
        async with running(create_service_app(SMALL_WINDOWS, settings)) as client:
            await wait_settled(client, timeout_s=60)
        app = create_service_app(SMALL_WINDOWS, settings)  # restarted: nothing in memory, the feed not empty
        async with running(app) as client:
            consumer = app.state.ctx.consumer(FEED_CONSUMER)
            crashes: list[int] = []

            async def crash_once() -> None:
                if not crashes:
                    crashes.append(consumer.applied_count)
                    raise ConnectionError("simulated crash before commit")

            consumer.before_commit = crash_once
            rep = Reporting(client, platform, app)
            await rep.publish(events[half:])
            assert crashes
            every = await rep.pages(bearer(platform, "anct-admin", "admin"), limit=1000)
    finally:
        await drop_database(url)
    # fetches written by COPY (the stream of the first test, smaller than COPY_AT, goes by statements), and
    # subjects read back from the feed (after the restart, and once forgotten)
    assert True in writes and sum(looked_up) > 0
    assert sorted(e["id"] for e in every) == sorted(e["id"] for e in expected)
    assert by_subject(every) == by_subject(expected)
    assert_previous_and_changed(every, expected)
    positions = [decode_cursor(e["cursor"], (int,)) for e in every]
    assert positions == sorted(positions) and len({p[0] for p in positions if p}) == len(every)


async def test_restarted_with_few_subjects_the_feed_reads_their_newest_changes_once_not_batch_by_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[int] = []
    loaded: list[int | None] = []
    newest_changes, all_newest_changes = repository.newest_changes, repository.all_newest_changes

    async def counted_newest(session: Any, keys: Any) -> Any:
        looked_up.append(len(keys))
        return await newest_changes(session, keys)

    async def counted_all(session: Any, *, at_most: int) -> Any:
        found = await all_newest_changes(session, at_most=at_most)
        loaded.append(None if found is None else len(found))
        return found

    monkeypatch.setattr(repository, "newest_changes", counted_newest)
    monkeypatch.setattr(repository, "all_newest_changes", counted_all)
    events = stream(seed=7)
    half = len(events) // 2
    expected = applied(events)
    url = await create_database("rep_feed")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    settings = service_settings("reporting", url, platform)
    try:
        await publish_events(platform, events[:half])
        async with running(create_app(settings)) as client:
            await wait_settled(client, timeout_s=60)
        assert loaded == [0]  # an empty feed: nothing to read, ever
        app = create_app(settings)  # restarted: the feed's subjects are fewer than half of MAX_KNOWN
        async with running(app) as client:
            rep = Reporting(client, platform, app)
            await rep.publish(events[half:])
            every = await rep.pages(bearer(platform, "anct-admin", "admin"), limit=1000)
    finally:
        await drop_database(url)
    first = applied(events[:half])
    subjects = {(EVENT_TOPICS[e["type"]], e["subject"]) for e in first}
    assert loaded == [0, len(subjects)] and looked_up == []
    # the second half changes subjects of the first: their previous is the one read at the start
    assert {(EVENT_TOPICS[e["type"]], e["subject"]) for e in expected[len(first):]} & subjects
    assert sorted(e["id"] for e in every) == sorted(e["id"] for e in expected)
    assert by_subject(every) == by_subject(expected)
    assert_previous_and_changed(every, expected)


async def test_the_feed_is_the_stream_as_applied_with_previous_states_and_read_rules() -> None:
    events = stream()
    expected = applied(events)
    async with reporting() as rep:
        await rep.publish(events)
        admin = bearer(rep.platform, "anct-admin", "admin")
        every = await rep.pages(admin, limit=37)
        # the feed read from the start is the stream as applied: every kept event once, each subject in order
        assert sorted(e["id"] for e in every) == sorted(e["id"] for e in expected)
        assert by_subject(every) == by_subject(expected)
        kinds = {e["type"].split(".")[3] + "." + e["type"].split(".")[4] for e in every}
        assert {"action.deleted", "territory.withdrawn", "grant.cancelled"} <= kinds
        assert_previous_and_changed(every, expected)

        # the grant read rules: without a token no grant, an operator its own, admin all
        public = await rep.pages()
        assert public == [e for e in every if e["type"] not in GRANT_TYPES]
        operators = sorted({e["data"]["operator"] for e in every if e["type"] in GRANT_TYPES})
        assert len(operators) >= 2
        own = await rep.pages(bearer(rep.platform, "push", "grants:write", operator=operators[0]))
        assert own == [e for e in every if e["type"] not in GRANT_TYPES or e["data"]["operator"] == operators[0]]
        asked = {"types": ",".join(GRANT_TYPES)}
        assert (await rep.client.get("/v1/changes", params=asked)).status_code == 401
        assert (await rep.client.get("/v1/changes", params=asked, headers=bearer(rep.platform, "x", "sites:write"))).status_code == 403
        grants = await rep.pages(admin, **asked)
        assert grants == [e for e in every if e["type"] in GRANT_TYPES]

        # filters: one subject, since an instant, unknown types refused
        subject = every[-1]["subject"]
        assert await rep.pages(admin, subject=subject) == [e for e in every if e["subject"] == subject]
        times = sorted(e["time"] for e in every)
        since = times[len(times) // 2]
        later = await rep.pages(admin, since=since)
        assert later == [e for e in every if e["time"] >= since] and 0 < len(later) < len(every)
        bad = await rep.client.get("/v1/changes", params={"types": "fr.anct.ti.planet.exploded.v1"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "types"]
        assert (await rep.client.get("/v1/changes", params={"after": "nope"})).status_code == 422
        assert (await rep.client.get("/v1/changes", params={"since": "2024-01-01"})).status_code == 422

        # NDJSON: the whole feed after a position in one response
        lines = await rep.client.get("/v1/changes", headers={**admin, "Accept": "application/x-ndjson"})
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(x) for x in lines.text.splitlines()] == every
        tail = await rep.client.get("/v1/changes", params={"after": every[9]["cursor"], "limit": 5}, headers={**admin, "Accept": "application/x-ndjson"})
        assert [json.loads(x) for x in tail.text.splitlines()] == every[10:15]

        # a stale redelivery of something already in the feed adds nothing
        await rep.publish(events[:5])
        assert await rep.pages(admin, limit=1000) == every


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _read_sse(client: httpx.AsyncClient, url: str, count: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The first ``count`` events of a live stream (then the connection is dropped)."""
    got: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    async with client.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line == "":
                if "data" in frame:
                    got.append({**json.loads(frame["data"]), "sse_id": frame["id"], "sse_event": frame["event"]})
                    if len(got) == count:
                        return got
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                frame[name] = value.removeprefix(" ")
    return got


async def test_the_live_stream_resumes_after_a_disconnect_without_a_gap() -> None:
    events = applied(stream(5))
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    async with reporting() as rep:
        await rep.publish(first)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(rep.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        admin = bearer(rep.platform, "anct-admin", "admin")
        url = f"http://127.0.0.1:{port}/v1/changes"
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                head = await _read_sse(client, url, 10, admin)
                assert [e["id"] for e in head] == [e["id"] for e in (await rep.pages(admin))[:10]]
                assert all(e["sse_id"] == e["cursor"] and e["sse_event"] == e["type"] for e in head)
                # while nobody listens, the rest is published; the stream resumes after the last id it sent
                reading = asyncio.create_task(_read_sse(client, url, len(events) - 10, {**admin, "Last-Event-ID": head[-1]["cursor"]}))
                await asyncio.sleep(0.5)
                await rep.publish(second)
                rest = await asyncio.wait_for(reading, 60)
            feed = [e["id"] for e in head + rest]
            assert len(feed) == len(set(feed)) == len(events)
            assert feed == [e["id"] for e in await rep.pages(admin)]
        finally:
            server.should_exit = True
            await serving


async def test_live_small_batches_go_in_one_statement_each_through_a_crash_and_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both consumers of the process, once caught up: small batches (duplicates and stale versions
    among them) each written in one statement, a crash before that statement, a restart (nothing in
    memory: what the handlers read goes in the statement's transaction) — the feed is the stream as
    applied and the indicators are the reference's."""
    from reporting.projection import ReportingProjection
    from ti_shared.bus import make_publisher
    from ti_testkit.reference import expected_indicators

    ways: list[str] = []

    def counted(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            ways.append(f"{cls.__name__}.{name}")
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    for cls, name in ((ChangeFeed, "apply"), (ReportingProjection, "finish")):  # the transaction's way
        counted(cls, name)
        counted(cls, "apply_in_statement")
    events = generate_stream(8, territories=6, actions=40, grants=16, sites=6, duplicate_rate=0.1, stale_rate=0.1, shuffle=True)
    first, live = events[: len(events) // 2], events[len(events) // 2 :]
    url = await create_database("rep_live")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    settings = service_settings("reporting", url, platform)
    crashes: list[str] = []
    scopes = ["national", "region:84", "region:11"]

    async def publish_in_small_batches(rep: Reporting, part: list[dict[str, Any]]) -> None:
        publisher = make_publisher(platform, "ti-test")
        await publisher.start()
        try:
            for i in range(0, len(part), 4):
                await publish_events(platform, part[i : i + 4], publisher=publisher)
                await asyncio.sleep(0.01)
        finally:
            await publisher.stop()
        await rep.publish([])

    try:
        async with running(create_app(settings)) as client:
            await Reporting(client, platform, None).publish(first)  # replayed on an empty generation: transactions
        for restart in (False, True):
            app = create_app(settings)
            async with running(app) as client:
                rep = Reporting(client, platform, app)
                await wait_settled(client, timeout_s=60)
                ways.clear()
                for name in ("reporting", FEED_CONSUMER):
                    consumer = app.state.ctx.consumer(name)

                    async def crash_once(name: str = name) -> None:
                        if name not in crashes:
                            crashes.append(name)
                            raise ConnectionError("simulated crash before the statement")

                    consumer.before_commit = crash_once
                half = len(live) // 2
                await publish_in_small_batches(rep, live[half:] if restart else live[:half])
                assert ways and set(ways) == {"ChangeFeed.apply_in_statement", "ReportingProjection.apply_in_statement"}
                if restart:
                    every = await rep.pages(bearer(platform, "anct-admin", "admin"), limit=1000)
                    got = {s: (await client.get("/v1/indicators", params={"scope": s})).json()["indicators"] for s in scopes}
    finally:
        await drop_database(url)
    assert sorted(crashes) == sorted(["reporting", FEED_CONSUMER])
    expected = applied(events)
    assert sorted(e["id"] for e in every) == sorted(e["id"] for e in expected)
    assert by_subject(every) == by_subject(expected)
    assert_previous_and_changed(every, expected)
    assert got == {s: expected_indicators(events, s) for s in scopes}
