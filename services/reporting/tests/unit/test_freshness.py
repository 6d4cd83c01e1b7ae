"""The freshness tallies and the waiters of ``after=`` (no database: the history probe is a function here)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from reporting import freshness
from reporting.domain import Stamp
from reporting.freshness import Applied, Freshness, Tally, summary

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_tallies_count_per_source_and_operator_and_keep_the_latest_by_time_then_id() -> None:
    applied = Applied()
    before = {("funding-ledger", "ADEME"): Tally(10, T0, "e-10")}
    applied.add(before, "grant", "ADEME/FV-1", Stamp(T0 - timedelta(days=30), "e-old"))  # back-dated: not the latest
    applied.add(before, "grant", "ADEME/FV-2", Stamp(T0, "e-11"))  # same time, greater id: the latest
    applied.add(before, "grant", "BPI/R-1", Stamp(T0, "e-b"))
    applied.add(before, "territory", "ti-8401", Stamp(T0 + timedelta(seconds=1), "e-t"))
    assert applied.changed == {
        ("funding-ledger", "ADEME"): Tally(12, T0, "e-11"),
        ("funding-ledger", "BPI"): Tally(1, T0, "e-b"),
        ("territory-registry", ""): Tally(1, T0 + timedelta(seconds=1), "e-t"),
    }
    assert applied.ids == ["e-old", "e-11", "e-b", "e-t"]
    assert before == {("funding-ledger", "ADEME"): Tally(10, T0, "e-10")}  # the committed tallies are not touched

    doc = summary({**before, **applied.changed}, T0 + timedelta(seconds=3))
    assert list(doc) == ["territory-registry", "action-tracker", "funding-ledger", "site-catalog"]
    ledger = doc["funding-ledger"]
    # the service: its operators' latest, by time then id (BPI's "e-b" > ADEME's "e-11" at the same time)
    assert (ledger["events_applied"], ledger["last_event_id"], ledger["lag_s"]) == (13, "e-b", 3.0)
    assert ledger["operators"]["BPI"] == {"events_applied": 1, "last_event_time": "2026-01-05T08:00:00Z",
                                          "last_event_id": "e-b", "lag_s": 3.0}
    assert doc["action-tracker"] == {"events_applied": 0, "last_event_time": None, "last_event_id": None,
                                     "lag_s": None, "operators": {}}
    assert "lag_s" not in summary(applied.changed)["territory-registry"]  # without an instant: no lags


def test_a_transaction_notes_so_many_ids_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "NOTED_IDS", 3)
    applied = Applied()
    for i in range(5):
        applied.add({}, "action", f"a-{i}", Stamp(T0, f"e-{i}"))
    assert applied.ids is None and applied.changed[("action-tracker", "")].events == 5


async def test_waiters_are_woken_by_the_commit_that_applied_their_event() -> None:
    fresh = Freshness(1, {})
    probes: list[str] = []

    async def never(event_ids: Sequence[str]) -> set[str]:
        probes.extend(event_ids)
        return set()

    waiting = asyncio.create_task(fresh.wait_applied("e-1", 10, never))
    other = asyncio.create_task(fresh.wait_applied("e-2", 0.2, never))
    while fresh.waiting < 2:
        await asyncio.sleep(0)
    fresh.committed(1, {("site-catalog", ""): Tally(1, T0, "e-1")}, [f"x-{i}" for i in range(50)] + ["e-1"])
    assert await waiting is True
    assert await other is False  # its event never came: past its wait
    assert fresh.waiting == 0 and fresh.tallies == {("site-catalog", ""): Tally(1, T0, "e-1")}
    assert probes.count("e-1") == 1  # told by the commit: no second probe


async def test_waiters_probe_again_when_the_commit_does_not_tell_which_events() -> None:
    fresh = Freshness(1, {})
    applied: set[str] = set()

    async def probe(event_ids: Sequence[str]) -> set[str]:
        return applied.intersection(event_ids)

    waiting = asyncio.create_task(fresh.wait_applied("e-1", 10, probe))
    while fresh.waiting < 1:
        await asyncio.sleep(0)
    applied.add("e-1")
    fresh.committed(2, {}, None)  # a big catch-up window, or a rebuild swapped in
    assert await waiting is True
    assert await fresh.wait_applied("e-1", 0, probe) is True  # applied already: at once
    assert fresh.generation == 2


def test_the_sources_spliced_into_a_response_change_with_the_commits_only() -> None:
    fresh = Freshness(1, {("action-tracker", ""): Tally(3, T0, "e-3")})
    body = fresh.splice(b'{"scope":"national","indicators":{}}')
    assert body.startswith(b'{"scope":"national","indicators":{},"sources":{"territory-registry":')
    assert body == fresh.splice(b'{"scope":"national","indicators":{}}')
    fresh.committed(1, {("action-tracker", ""): Tally(4, T0, "e-4")}, [])
    assert b'"e-4"' in fresh.splice(b'{"indicators":{}}')


async def test_waiters_are_bounded_and_a_request_beyond_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "MAX_WAITERS", 2)
    fresh = Freshness(1, {})

    async def never(event_ids: Sequence[str]) -> set[str]:
        return set()

    first = asyncio.create_task(fresh.wait_applied("e-1", 10, never))
    second = asyncio.create_task(fresh.wait_applied("e-1", 10, never))
    while fresh.waiting < 2:
        await asyncio.sleep(0)
    with pytest.raises(freshness.TooManyWaiting):
        await fresh.wait_applied("e-2", 10, never)
    assert fresh.waiting == 2  # the refused one left nothing behind
    fresh.committed(1, {}, ["e-1"])
    assert await first is True and await second is True
    assert fresh.waiting == 0
    assert await fresh.wait_applied("e-2", 0, never) is False  # room again


async def test_one_history_check_a_second_for_all_the_waiters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "RECHECK_S", 0.05)
    fresh = Freshness(1, {})
    applied: set[str] = set()
    checks: list[list[str]] = []

    async def probe(event_ids: Sequence[str]) -> set[str]:
        checks.append(sorted(event_ids))
        return applied.intersection(event_ids)

    waiters = [asyncio.create_task(fresh.wait_applied(f"e-{i}", 10, probe)) for i in range(20)]
    while fresh.waiting < 20:
        await asyncio.sleep(0)
    assert all(len(c) == 1 for c in checks)  # each checked the history once, as it started waiting
    applied.update(("e-3", "e-7"))  # applied by another process: no commit of this one tells
    done, _ = await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert {t.result() for t in done} == {True}
    assert next(c for c in checks if len(c) > 1) == sorted(f"e-{i}" for i in range(20))  # all at once
    fresh.committed(1, {}, [f"e-{i}" for i in range(20)])
    assert await asyncio.gather(*waiters) == [True] * 20
    assert len(checks) < 20 + 5  # not one check per waiter and per recheck


async def test_the_first_checks_asked_while_one_is_under_way_share_the_next_one() -> None:
    fresh = Freshness(1, {})
    checks: list[list[str]] = []

    async def slow(event_ids: Sequence[str]) -> set[str]:
        checks.append(list(event_ids))
        await asyncio.sleep(0.05)
        return {"e-9"} & set(event_ids)

    waiters = [asyncio.create_task(fresh.wait_applied(f"e-{i}", 1.0, slow)) for i in range(10)]
    assert await asyncio.gather(*waiters) == [i == 9 for i in range(10)]
    assert len(checks) < 10 and sorted(i for c in checks for i in c) == sorted(f"e-{i}" for i in range(10))
    assert len(checks) <= 2  # the first one's, then all the others at once

    async def broken(event_ids: Sequence[str]) -> set[str]:
        raise OSError("the database went away")

    with pytest.raises(OSError):
        await fresh.wait_applied("e-1", 1, broken)
    assert fresh.waiting == 0
