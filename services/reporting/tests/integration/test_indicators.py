"""The reporting service end to end: generated streams on real Kafka, projections on real PostgreSQL.

Expected figures come from the test kit's reference computation of CONTRACT §6 (``ti_testkit.reference``,
which shares no code with this service), over the final entity states of each stream."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import functools
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from reporting import reads
from reporting.decoding import decode
from reporting.domain import Row, TerritoryRow
from reporting.engine import aggregate
from reporting.main import SPEC, create_app
from reporting.projection import ReportingProjection
from reporting.rebuild import LIVE_CONSUMER
from reporting.repository import figures
from ti_shared.app import create_service_app
from ti_shared.geo import REGIONS
from ti_shared.streams import events_until, final_states, generate_stream
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
from ti_testkit.reference import expected_indicators

pytestmark = pytest.mark.integration

# --- the independent computation: the test kit's reference implementation of CONTRACT §6 -------------


def rows_of(events: list[dict[str, Any]]) -> list[Row]:
    """The compact rows of the final state of every entity of a stream."""
    return [decode(e["type"], e["subject"], e["entityversion"], e["data"])
            for finals in final_states(events).values() for e in finals.values()]


def all_scopes(events: list[dict[str, Any]]) -> list[str]:
    territories = sorted(final_states(events)["territory"])
    return ["national", *(f"region:{r}" for r in REGIONS), *(f"territory:{t}" for t in territories)]


# --- harness ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def reporting_platform(**overrides: Any) -> AsyncIterator[tuple[str, Any]]:
    url = await create_database("reporting")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    try:
        yield url, platform_settings(topic_prefix=prefix, **overrides)
    finally:
        await drop_database(url)


async def fetch_all(client: httpx.AsyncClient, scopes: list[str], as_of: str | None = None) -> dict[str, Any]:
    out = {}
    for scope in scopes:
        params = {"scope": scope} | ({"as_of": as_of} if as_of else {})
        response = await client.get("/v1/indicators", params=params)
        assert response.status_code == 200, (scope, response.text)
        body = response.json()
        assert body["scope"] == scope
        out[scope] = body["indicators"]
    return out


def assert_matches(got: dict[str, Any], events: list[dict[str, Any]]) -> None:
    for scope, indicators in got.items():
        expected = expected_indicators(events, scope)
        assert indicators == expected, scope


STREAM_SIZE = {"territories": 45, "actions": 1000, "grants": 200, "sites": 45}


# --- tests ------------------------------------------------------------------------------------------


async def test_golden_stream_every_scope_matches_the_independent_computation() -> None:
    events = generate_stream(11, **STREAM_SIZE)
    assert len(events) >= 3000
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            got = await fetch_all(client, all_scopes(events))
            assert_matches(got, events)
            assert got["national"]["actions.count"] > 500
            assert got["national"]["grants.count"] > 100

            # unknown scopes, bad scopes, conditional requests
            assert (await client.get("/v1/indicators", params={"scope": "region:99"})).status_code == 404
            missing = await client.get("/v1/indicators", params={"scope": "territory:ti-9998"})
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")
            for bad in ("nation", "region:", "territory:8402", "departement:01"):
                response = await client.get("/v1/indicators", params={"scope": bad})
                assert response.status_code == 422, bad
                assert response.json()["errors"][0]["loc"] == ["query", "scope"]
            for bad in ("2024-13-01", "2024-06-30T10:00:00", "yesterday"):
                response = await client.get("/v1/indicators", params={"scope": "national", "as_of": bad})
                assert response.status_code == 422, bad
                assert response.json()["errors"][0]["loc"] == ["query", "as_of"]
            first = await client.get("/v1/indicators", params={"scope": "region:84"})
            again = await client.get("/v1/indicators", params={"scope": "region:84"}, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
            assert again.headers["etag"] == first.headers["etag"]
            # answered from the response cache: the same body and headers as when it was read from the database
            assert reads.cache_of(app.state.ctx).get("region:84") is not None
            cached = await client.get("/v1/indicators", params={"scope": "region:84"})
            assert (cached.status_code, cached.content) == (200, first.content)
            assert {k: cached.headers[k] for k in ("etag", "content-type", "cache-control")} == {
                k: first.headers[k] for k in ("etag", "content-type", "cache-control")
            }

            catalogue = (await client.get("/v1/indicators/catalogue")).json()["items"]
            assert {c["code"] for c in catalogue} == set(got["national"])
            assert all(c["label"] and c["unit"] and c["definition"] for c in catalogue)

            exported = await client.get("/v1/indicators/export.csv", params={"scope": "region:84"})
            assert exported.status_code == 200
            rows = list(csv.DictReader(io.StringIO(exported.text)))
            by_key = {(r["code"], r["key"]): r["value"] for r in rows}
            assert by_key[("grants.amount_eur", "")] == got["region:84"]["grants.amount_eur"]
            assert by_key[("actions.by_status", "en_cours")] == str(got["region:84"]["actions.by_status"]["en_cours"])
            xlsx = await client.get("/v1/indicators/export.xlsx", params={"scope": "national"})
            assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


async def test_duplicates_stale_redeliveries_and_shuffling_change_nothing() -> None:
    clean = generate_stream(12, **STREAM_SIZE)
    noisy = generate_stream(12, **STREAM_SIZE, duplicate_rate=0.05, stale_rate=0.03, shuffle=True)
    assert len(noisy) > len(clean)
    async with reporting_platform() as (url, platform):
        await publish_events(platform, noisy)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            got = await fetch_all(client, all_scopes(clean))
            async with app.state.ctx.db.read_session() as session:
                counters, refs = await figures.load_aggregates(session, 1)
    assert_matches(got, clean)
    # the stored aggregates equal a recomputation from scratch over the final states
    final = rows_of(clean)
    expected = aggregate(final, {r.id: r.region_code for r in final if isinstance(r, TerritoryRow)})
    assert {k: v for k, v in counters.items() if v} == expected.counter_rows()
    assert {k: v for k, v in refs.items() if v} == expected.ref_rows()
    assert min(refs.values()) >= 0


async def test_cached_reads_give_the_new_figures_as_soon_as_they_are_committed() -> None:
    events = generate_stream(15, territories=20, actions=300, grants=60, sites=20)
    half = len(events) // 2
    scopes = ["national", "region:84", "region:11"]
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events[:half])
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            for _ in range(3):  # the second and third reads come from the response cache
                assert_matches(await fetch_all(client, scopes), events[:half])
            await publish_events(platform, events[half:])
            await wait_settled(client, 60)
            # the consumer put the new responses in the cache as it committed them ...
            cache = reads.cache_of(app.state.ctx)
            assert all(cache.get(scope) is not None for scope in scopes)
            written = [await client.get("/v1/indicators", params={"scope": scope}) for scope in scopes]
            assert_matches({s: r.json()["indicators"] for s, r in zip(scopes, written, strict=True)}, events)
            # ... exactly as they read from the database
            cache.clear()
            for scope, response in zip(scopes, written, strict=True):
                read = await client.get("/v1/indicators", params={"scope": scope})
                assert (read.content, read.headers["etag"]) == (response.content, response.headers["etag"])
            # a document written by another process (here: by hand) is served within MAX_AGE_S or so
            async with app.state.ctx.db.session() as session:
                await session.execute(
                    sa.text(
                        "UPDATE indicator_scope SET document = :doc, digest = 'elsewhere', computed_at = now() "
                        "WHERE scope = 'region:11'"
                    ),
                    {"doc": '{"written":"elsewhere"}'},
                )
                await session.commit()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                read = await client.get("/v1/indicators", params={"scope": "region:11"})
                if read.json()["indicators"] == {"written": "elsewhere"}:
                    break
                await asyncio.sleep(reads.MAX_AGE_S / 5)
            assert read.json()["indicators"] == {"written": "elsewhere"}
            assert read.headers["etag"].endswith('-elsewhere"')


async def test_crash_before_commit_and_abrupt_stop_then_restart_give_the_same_figures() -> None:
    events = generate_stream(13, **STREAM_SIZE, shuffle=True)
    half = len(events) // 2
    # windows of three batches of 250 events, their history copied
    small_batches = dataclasses.replace(SPEC, consumers=[
        dataclasses.replace(c, batch_size=250, window_events=750, handler=functools.partial(ReportingProjection, copy_at=100))
        if c.name == LIVE_CONSUMER else c
        for c in SPEC.consumers
    ])
    async with reporting_platform() as (url, platform):
        settings = service_settings("reporting", url, platform)
        await publish_events(platform, events[:half])
        app = create_service_app(small_batches, settings)
        crashes = []
        async with running(app) as client:
            consumer = app.state.ctx.consumer("reporting")

            async def crash_once() -> None:
                if not crashes and consumer.applied_count > 0:
                    crashes.append(consumer.applied_count)
                    raise ConnectionError("simulated crash before commit")
                if crashes:
                    await asyncio.sleep(0.5)  # slower from then on: the stop below comes mid-stream

            consumer.before_commit = crash_once
            await publish_events(platform, events[half:])
            deadline = time.monotonic() + 30
            while not (crashes and consumer.applied_count > crashes[0]) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # a window rolled back by the crash, then applied again
            assert crashes
            assert await consumer.lag() > 0  # stopped mid-stream
        app = create_service_app(small_batches, settings)
        async with running(app) as client:
            await wait_settled(client, 60)
            got = await fetch_all(client, all_scopes(events))
    assert_matches(got, events)


async def test_restarted_with_few_states_live_batches_read_no_state_and_give_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay, a restart (the generation's states, few, all read at start), then small live batches
    each in one statement: none reads a state row, and the figures are the reference's."""
    from reporting.repository import rows
    from ti_shared.bus import make_publisher

    read: list[int] = []
    in_statement: list[int] = []
    load_states, apply_in_statement = rows.load_states, ReportingProjection.apply_in_statement

    async def spied_load_states(session: Any, generation: int, entity: Any, ids: Any) -> Any:
        ids = list(ids)
        read.append(len(ids))
        return await load_states(session, generation, entity, ids)

    async def spied_in_statement(self: Any, session: Any, deliveries: Any, statement: Any) -> None:
        in_statement.append(len(deliveries))
        await apply_in_statement(self, session, deliveries, statement)

    events = generate_stream(17, territories=8, actions=80, grants=30, sites=8, duplicate_rate=0.1, stale_rate=0.1, shuffle=True)
    half = len(events) // 2
    async with reporting_platform() as (url, platform):
        settings = service_settings("reporting", url, platform)
        await publish_events(platform, events[:half])
        async with running(create_app(settings)) as client:
            await wait_settled(client, 60)
        monkeypatch.setattr(rows, "load_states", spied_load_states)
        monkeypatch.setattr(ReportingProjection, "apply_in_statement", spied_in_statement)
        async with running(create_app(settings)) as client:
            await wait_settled(client, 60)
            publisher = make_publisher(platform, "ti-test")
            await publisher.start()
            try:
                for i in range(half, len(events), 5):
                    await publish_events(platform, events[i : i + 5], publisher=publisher)
                    await asyncio.sleep(0.01)
            finally:
                await publisher.stop()
            await wait_settled(client, 60)
            got = await fetch_all(client, all_scopes(events))
    assert len(in_statement) > 10  # live batches (the consumer base hands over only the newer versions)
    assert read == []
    assert_matches(got, events)


async def test_as_of_a_date_gives_the_figures_of_the_events_until_the_end_of_that_day() -> None:
    events = generate_stream(14, territories=30, actions=400, grants=100, sites=30)
    cut = datetime(2024, 7, 1, tzinfo=ZoneInfo("Europe/Paris"))
    first = events_until(events, cut)
    assert 0 < len(first) < len(events)
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            scopes = all_scopes(events)
            as_of_date = await fetch_all(client, scopes, as_of="2024-06-30")
            as_of_instant = await fetch_all(client, ["national", "region:84"], as_of=(cut.astimezone(UTC).isoformat()))
            later = await fetch_all(client, ["national"], as_of="2030-01-01T00:00:00+01:00")
            current = await fetch_all(client, ["national"])
            body = (await client.get("/v1/indicators", params={"scope": "national", "as_of": "2024-06-30"})).json()
    assert body["as_of"] == "2024-06-30"
    assert_matches(as_of_date, first)
    # an instant is inclusive: the first instant of 1 July counts events at exactly that time
    at_cut = [e for e in events if datetime.fromisoformat(e["time"].replace("Z", "+00:00")) <= cut]
    assert_matches(as_of_instant, at_cut)
    assert later["national"] == current["national"]


async def test_rebuild_while_queries_run_swaps_in_identical_figures() -> None:
    events = generate_stream(15, territories=30, actions=500, grants=120, sites=30)
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            scopes = all_scopes(events)
            before = await fetch_all(client, scopes)
            assert (await client.post("/v1/indicators/rebuild")).status_code == 401
            forbidden = await client.post("/v1/indicators/rebuild", headers=bearer(platform, "ops", "actions:write"))
            assert forbidden.status_code == 403
            admin = bearer(platform, "ops", "admin")
            started = await client.post("/v1/indicators/rebuild", headers=admin)
            assert started.status_code == 202, started.text
            generation = started.json()["generation"]
            assert generation == 2
            failures: list[Any] = []
            seen: list[dict[str, Any]] = []
            done = asyncio.Event()

            async def query_meanwhile() -> None:
                while not done.is_set():
                    response = await client.get("/v1/indicators", params={"scope": "national"})
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        seen.append(response.json()["indicators"])
                    await asyncio.sleep(0.01)

            reader = asyncio.create_task(query_meanwhile())
            deadline = time.monotonic() + 60
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = (await client.get("/v1/indicators/rebuild")).json()
                if status["state"] != "running":
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            done.set()
            await reader
            assert status["state"] == "done", status
            assert status["events_applied"] > 0
            assert not failures
            assert seen and all(s == before["national"] for s in seen)
            after = await fetch_all(client, scopes)
            assert after == before
            # the live consumer goes on from the rebuilt offsets
            territory = next(iter(final_states(events)["territory"]))
            extra = {
                "specversion": "1.0", "id": "after-rebuild-1", "source": "/services/action-tracker",
                "type": "fr.anct.ti.action.created.v1", "subject": "AFTER-REBUILD-1", "time": "2025-01-02T10:00:00Z",
                "datacontenttype": "application/json", "entityversion": 1, "tiactor": "tester",
                "data": {"id": "AFTER-REBUILD-1", "territory_id": territory, "title": "Nouvelle action", "description": "",
                         "axis": "foncier", "themes": [], "status": "amont", "planned_start": None, "planned_end": None,
                         "budget_eur": None, "partners": [], "version": 1, "updated_at": "2025-01-02T10:00:00Z"},
            }
            await publish_events(platform, [extra])
            await wait_settled(client, 60)
            national = (await fetch_all(client, ["national"]))["national"]
            assert national["actions.count"] == before["national"]["actions.count"] + 1
            await asyncio.sleep(2.2)  # the previous generation is dropped after a grace period
    assert_matches(before, events)


async def test_rebuild_started_during_the_previous_ones_grace_keeps_its_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild started (and swapped in) while the one before still lets readers finish on the
    generation it retired: when that grace ends, only the retired generation goes, never the live one."""
    from reporting import rebuild

    events = generate_stream(16, territories=12, actions=60, grants=20, sites=10)
    released = asyncio.Event()
    graces: list[asyncio.Task[Any]] = []

    async def held_grace() -> None:
        task = asyncio.current_task()
        assert task is not None
        graces.append(task)
        if len(graces) == 1:  # the first rebuild's grace lasts until the second one has swapped in
            await released.wait()

    monkeypatch.setattr(rebuild, "_grace", held_grace)
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            scopes = all_scopes(events)
            before = await fetch_all(client, scopes)
            assert before["national"]["territories.count"] > 0
            admin = bearer(platform, "ops", "admin")

            async def rebuilt() -> dict[str, Any]:
                started = await client.post("/v1/indicators/rebuild", headers=admin)
                assert started.status_code == 202, started.text
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    status: dict[str, Any] = (await client.get("/v1/indicators/rebuild")).json()
                    if status["state"] != "running":
                        return status
                    await asyncio.sleep(0.1)
                raise AssertionError("the rebuild did not finish in 60 s")

            first = await rebuilt()
            second = await rebuilt()
            assert (first["state"], second["state"]) == ("done", "done")
            assert second["generation"] == first["generation"] + 1
            released.set()
            await asyncio.wait_for(asyncio.gather(*graces), 30)  # both rebuilds have dropped what they retired
            assert await fetch_all(client, scopes) == before
    assert_matches(before, events)


# --- explaining a figure, and what changed between two instants -------------------------------------------


async def explain_pages(client: httpx.AsyncClient, params: dict[str, str], limit: int) -> tuple[Any, list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get("/v1/indicators/explain", params={**params, "limit": str(limit)} | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return body["value"], items


async def test_explain_lists_the_entities_that_make_a_figure_and_diff_the_figures_that_changed() -> None:
    from decimal import Decimal

    from reporting.domain import flatten

    events = generate_stream(21, territories=20, actions=300, grants=80, sites=20)
    cut = datetime(2024, 7, 1, tzinfo=ZoneInfo("Europe/Paris"))
    first = events_until(events, cut)
    async with reporting_platform() as (url, platform):
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)
            value, items = await explain_pages(client, {"scope": "national", "code": "grants.amount_eur"}, 7)
            as_of_value, as_of_items = await explain_pages(
                client, {"scope": "national", "code": "grants.amount_eur", "as_of": "2024-06-30"}, 1000)
            epci_value, epci_items = await explain_pages(client, {"scope": "region:84", "code": "territories.epci_count"}, 5)
            axis_value, axis_items = await explain_pages(
                client, {"scope": "national", "code": "actions.by_axis", "key": "innovation"}, 1000)
            unknown_key = await client.get("/v1/indicators/explain", params={"scope": "national", "code": "actions.by_axis", "key": "nothing"})
            unknown = await client.get("/v1/indicators/explain", params={"scope": "national", "code": "grants.nothing"})
            bad_cursor = await client.get("/v1/indicators/explain", params={"scope": "national", "code": "grants.count", "cursor": "x"})
            diff = await client.get("/v1/indicators/diff", params={"scope": "national", "from": "2024-06-30", "to": "2030-01-01"})
            backwards = await client.get("/v1/indicators/diff", params={"scope": "national", "from": "2030-01-01", "to": "2024-06-30"})
    # the entities listed are the grants of the stream, at their final version and the event that set it
    finals = final_states(events)["grant"]
    assert len({i["id"] for i in items}) == len(items) > 7  # several pages, nothing twice
    for item in items:
        event = finals[item["id"]]
        assert (item["entity"], item["version"], item["event_id"]) == ("grant", event["entityversion"], event["id"])
    assert sum(Decimal(i["contribution"]["grants.amount_eur"]) for i in items) == Decimal(value)
    assert value == expected_indicators(events, "national")["grants.amount_eur"]
    # as of a date: the versions counted then, whose events are before the end of that day
    earlier = final_states(first)["grant"]
    assert {(i["id"], i["version"]) for i in as_of_items} <= {(k, e["entityversion"]) for k, e in earlier.items()}
    assert all(datetime.fromisoformat(i["time"]) < cut for i in as_of_items)
    assert sum(Decimal(i["contribution"]["grants.amount_eur"]) for i in as_of_items) == Decimal(as_of_value)
    assert as_of_value == expected_indicators(first, "national")["grants.amount_eur"]
    # a distinct count: the distinct values brought by the entities listed
    assert len({e for i in epci_items for e in i["contribution"]["epci"]}) == epci_value
    assert epci_value == expected_indicators(events, "region:84")["territories.epci_count"]
    # one breakdown key: its value, and the entities behind that value only
    assert axis_value == expected_indicators(events, "national")["actions.by_axis"]["innovation"] == len(axis_items) > 0
    assert all(i["contribution"] == {"actions.by_axis.innovation": 1} for i in axis_items)
    assert unknown_key.status_code == 422 and unknown_key.json()["errors"][0]["loc"] == ["query", "key"]
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["query", "code"]
    assert bad_cursor.status_code == 422
    assert backwards.status_code == 422
    # the diff: exactly the leaves that differ, each with events between the two instants
    assert diff.status_code == 200, diff.text
    body = diff.json()
    assert (body["scope"], body["from"], body["to"]) == ("national", "2024-06-30", "2030-01-01")
    before = {(c, k): v for c, value in expected_indicators(first, "national").items() for k, v in flatten(value)}
    after = {(c, k): v for c, value in expected_indicators(events, "national").items() for k, v in flatten(value)}
    assert {(i["code"], i["key"]): (i["before"], i["after"]) for i in body["items"]} == {
        k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)
    }
    by_id = {e["id"]: e for e in events}
    for item in body["items"]:
        assert item["events"], item
        for ev in item["events"]:
            published = by_id[ev["event_id"]]
            assert (published["subject"], published["entityversion"]) == (ev["id"], ev["version"])
            assert datetime.fromisoformat(ev["time"]) >= cut
