"""The same indicators whatever the delivery: a property test over the consumer base and the handler.

A generated stream is delivered as Kafka may deliver it — interleaved across entities (each entity's
own events in order), with duplicates and stale redeliveries, in batches of any size, with catch-up
windows or not, and with a crash between applying a batch and committing it — to the real consumer
and handler on a SQLite database (the embedded mode's); the stored documents must equal those of one
clean pass, which must equal the test kit's reference computation. The PostgreSQL paths (binary COPY, the one-statement batch) are exercised by the
integration tests.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reporting.main import SPEC
from reporting.projection import ReportingProjection
from reporting.tables import indicator_scope
from ti_shared.consumer import EventConsumer
from ti_shared.db import Database
from ti_shared.migrations import upgrade
from ti_shared.streams import generate_stream, redeliver
from ti_shared.testing import MemorySource
from ti_testkit.reference import expected_indicators

STREAMS = {seed: generate_stream(seed, territories=6, actions=60, grants=25, sites=8) for seed in (51, 52)}


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("delivery") / "empty.db"

    async def create() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db, SPEC.migrations_dir)
        await db.dispose()

    asyncio.run(create())
    return path


async def deliver(path: Path, events: list[dict[str, Any]], *, batch: int, window: int, crash_at: int | None) -> dict[str, Any]:
    """Apply ``events`` with the real consumer and handler; the stored documents of every scope."""
    db = Database(f"sqlite+aiosqlite:///{path}")
    source = MemorySource.of_events(events)
    consumer = EventConsumer(name="reporting", service="reporting", db=db, source=source,
                             handler=ReportingProjection(), batch_size=batch, window_events=window)
    commits = 0

    async def crash() -> None:
        nonlocal commits
        commits += 1
        if commits == crash_at:
            raise ConnectionError("simulated crash between apply and commit")

    consumer.before_commit = crash
    try:
        while True:
            try:
                if await consumer.run_once(0) == 0 and await consumer.lag() == 0:
                    break
            except ConnectionError:
                await source.seek(consumer.positions)  # what the consumer's loop does after a failure
        async with db.read_session() as session:
            result = await session.execute(sa.select(indicator_scope.c.scope, indicator_scope.c.document))
            return {r.scope: orjson.loads(r.document) for r in result}
    finally:
        await consumer.stop()
        await db.dispose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(sorted(STREAMS)),
    order=st.randoms(use_true_random=False),
    duplicates=st.sampled_from([0.0, 0.1]),
    stale=st.sampled_from([0.0, 0.05]),
    batch=st.sampled_from([3, 40, 300]),
    window=st.sampled_from([0, 100]),
    crash_at=st.none() | st.integers(1, 6),
)
async def test_any_interleaving_duplication_batching_or_crash_gives_the_indicators_of_one_clean_pass(
    empty_database: Path, tmp_path: Path, seed: int, order: random.Random, duplicates: float, stale: float,
    batch: int, window: int, crash_at: int | None,
) -> None:
    events = STREAMS[seed]
    clean_db, noisy_db = tmp_path / f"clean-{seed}.db", tmp_path / f"noisy-{order.random()}.db"
    if seed not in CLEAN:
        shutil.copy(empty_database, clean_db)
        CLEAN[seed] = await deliver(clean_db, events, batch=10_000, window=0, crash_at=None)
        assert CLEAN[seed] == {scope: expected_indicators(events, scope) for scope in CLEAN[seed]}  # the test kit's
    shutil.copy(empty_database, noisy_db)
    delivered = redeliver(events, order, duplicate_rate=duplicates, stale_rate=stale)
    got = await deliver(noisy_db, delivered, batch=batch, window=window, crash_at=crash_at)
    assert got == CLEAN[seed]
    assert len(got) == 1 + 18 + 6  # national, every region, every known territory


CLEAN: dict[int, dict[str, Any]] = {}


@pytest.mark.parametrize("load_all_at_most", [None, 5])
async def test_a_restart_reads_every_state_at_once_when_few_enough_and_gives_the_figures_of_one_clean_pass(
    empty_database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load_all_at_most: int | None,
) -> None:
    """Restarted on a generation with few states, the handler reads them all at start: the batches
    after read none (no ``load_states``); above the bound (here 5) it reads them batch by batch as
    before. Either way the documents are those of one clean pass."""
    from reporting import projection
    from reporting.repository import rows

    if load_all_at_most is not None:
        monkeypatch.setattr(projection, "LOAD_ALL_AT_MOST", load_all_at_most)
    events = STREAMS[51]
    clean_db, restarted_db = tmp_path / "clean.db", tmp_path / "restarted.db"
    shutil.copy(empty_database, clean_db)
    shutil.copy(empty_database, restarted_db)
    clean = await deliver(clean_db, events, batch=10_000, window=0, crash_at=None)
    await deliver(restarted_db, events[: len(events) // 2], batch=40, window=0, crash_at=None)
    read: list[int] = []
    load_states, load_all_states = rows.load_states, rows.load_all_states
    loaded_all: list[str] = []

    async def spied_load_states(session: Any, generation: int, entity: Any, ids: Any) -> Any:
        ids = list(ids)
        read.append(len(ids))
        return await load_states(session, generation, entity, ids)

    async def spied_load_all_states(session: Any, generation: int, entity: Any) -> Any:
        loaded_all.append(entity)
        return await load_all_states(session, generation, entity)

    monkeypatch.setattr(rows, "load_states", spied_load_states)
    monkeypatch.setattr(rows, "load_all_states", spied_load_all_states)
    got = await deliver(restarted_db, events, batch=7, window=0, crash_at=3)  # resumes at the first half's end
    assert got == clean
    if load_all_at_most is None:
        assert read == []
        assert sorted(loaded_all) == sorted(["territory", "action", "grant", "site"])  # once each, at start
    else:
        assert read and sum(read) > 0
        assert loaded_all == ["territory"]
