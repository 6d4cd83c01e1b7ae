"""The response cache of the current indicators, and the ETag rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from reporting.reads import IndicatorCache, Mark, body_of, etag_of
from ti_shared.http import if_none_match as matches

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)


def cache_with(*marks: Mark) -> tuple[IndicatorCache, list[int]]:
    reads = [0]
    seen = list(marks)

    async def read_mark() -> Mark:
        reads[0] += 1
        return seen[min(reads[0], len(seen)) - 1]

    return IndicatorCache(read_mark), reads


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_load_once_and_share_the_answer() -> None:
    cache, _ = cache_with((1, T1))
    loads = 0
    gate = asyncio.Event()

    async def load() -> tuple[str, bytes]:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 'W/"1-a"', b"{}"

    tasks = [asyncio.create_task(cache.get_or_load("national", load)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*tasks)) == {('W/"1-a"', b"{}")}
    assert loads == 1 and cache.get("national") == ('W/"1-a"', b"{}")


async def test_an_answer_loaded_across_a_commit_is_returned_but_not_kept() -> None:
    cache, _ = cache_with((1, T1))

    async def load() -> tuple[str, bytes]:
        cache.refresh({"national": ('W/"1-new"', b"{}")}, (1, T2))  # new figures committed meanwhile
        return 'W/"1-old"', b"{}"

    assert await cache.get_or_load("region:84", load) == ('W/"1-old"', b"{}")
    assert cache.get("region:84") is None and cache.get("national") == ('W/"1-new"', b"{}")


async def test_a_failed_load_fails_its_caller_and_the_waiters_load_on_their_own() -> None:
    cache, _ = cache_with((1, T1))
    gate = asyncio.Event()

    async def failing() -> tuple[str, bytes]:
        await gate.wait()
        raise RuntimeError("database down")

    async def working() -> tuple[str, bytes]:
        return 'W/"2-b"', b"[]"

    first = asyncio.create_task(cache.get_or_load("national", failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get_or_load("national", working))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second == ('W/"2-b"', b"[]")


async def test_nothing_stored_is_not_cached() -> None:
    cache, _ = cache_with((1, T1))

    async def load() -> None:
        return None

    assert await cache.get_or_load("national", load) is None
    assert cache.get("national") is None


async def test_entries_are_dropped_when_the_database_mark_differs_from_what_the_cache_knows() -> None:
    cache, reads = cache_with((1, T1), (1, T2))
    cache.refresh({"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon()
    await settle()
    assert reads[0] == 1 and cache.get("national") == ('W/"1-a"', b"a")  # same mark: kept
    cache.validate_soon()  # validated less than MAX_AGE_S ago: no query
    await settle()
    assert reads[0] == 1
    cache._validated -= 1.0
    cache.validate_soon()  # another process wrote documents (T2)
    await settle()
    assert reads[0] == 2 and cache.get("national") is None


async def test_a_commit_of_another_generation_drops_the_entries_of_the_previous_one() -> None:
    cache, _ = cache_with((1, T1))
    cache.refresh({"national": ('W/"1-a"', b"a"), "region:84": ('W/"1-b"', b"b")}, (1, T1))
    cache.refresh({"national": ('W/"2-c"', b"c")}, (2, T2))
    assert cache.get("national") == ('W/"2-c"', b"c") and cache.get("region:84") is None
    cache.refresh({"region:84": ('W/"2-d"', b"d")}, None)  # nothing else changed
    assert cache.get("national") == ('W/"2-c"', b"c")


async def test_a_validation_overtaken_by_a_commit_of_this_process_changes_nothing() -> None:
    gate = asyncio.Event()

    async def read_mark() -> Mark:
        await gate.wait()
        return (1, T1)  # read before the commit below

    cache = IndicatorCache(read_mark)
    cache.refresh({"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon()
    await settle()
    cache.refresh({"national": ('W/"1-b"', b"b")}, (1, T2))
    gate.set()
    await settle()
    assert cache.get("national") == ('W/"1-b"', b"b")


async def test_a_failed_validation_keeps_the_entries_and_is_tried_again_at_the_next_read() -> None:
    async def failing() -> Mark:
        raise RuntimeError("database down")

    cache = IndicatorCache(failing)
    cache.refresh({"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon()
    await settle()
    assert cache.get("national") == ('W/"1-a"', b"a")
    assert cache._validated == float("-inf")  # due again at once


def test_etags_and_bodies() -> None:
    etag = etag_of(3, "abc")
    assert etag == 'W/"3-abc"'
    assert matches('W/"3-abc"', etag) and matches('"3-abc"', etag) and matches('"x", W/"3-abc"', etag) and matches("*", etag)
    assert not matches('"3-abd"', etag) and not matches(None, etag) and not matches("", etag)
    assert body_of("region:84", T1, '{"a":1}') == b'{"scope":"region:84","as_of":null,"generated_at":"2026-01-01T00:00:00Z","indicators":{"a":1}}'
