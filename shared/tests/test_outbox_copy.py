"""The outbox's bulk path (``record_events``: a text ``COPY`` of the envelopes' bytes on PostgreSQL, the
events' data given as a document or as its JSON text) stores the rows the per-row path
(``record_event``) stores, whatever the strings hold."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_shared.db import Database, infra_metadata, outbox_message
from ti_shared.events import TOPIC_GRANTS, NewEvent, encode_new_event, event_type, new_event_ids
from ti_shared.outbox import record_event, record_events

SOURCE = "/services/funding-ledger"
COMMITTED = event_type("grant", "committed")
#: what the text format escapes or could misread, what JSON escapes, and what neither does
HOSTILE = [
    "back\\slash", "tab\there", "line\nfeed", "carriage\rreturn", "\\N", "\\.", "ends with a backslash\\", "\\\\t two",
    'quote " and \' ', "é€😀 à la ligne\r\n", " \t leading and trailing \t ", "N", "\u2028\u2029", "\x01\x1f\x7f", "",
]
TEXT = st.sampled_from(HOSTILE) | st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(TEXT, JSON_VALUES, max_size=6), TEXT.filter(bool), TEXT, st.integers(min_value=1, max_value=10**6))
def test_data_as_json_text_gives_the_envelope_of_data_as_a_document(data: dict[str, Any], subject: str, actor: str, version: int) -> None:
    at = datetime(2024, 6, 12, 11, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    fields: dict[str, Any] = {"source": SOURCE, "type_": COMMITTED, "subject": subject, "time": at, "version": version, "actor": actor}
    id_a, from_document = encode_new_event(**fields, data=data)
    id_b, from_text = encode_new_event(**fields, data=orjson.dumps(data))
    assert id_a != id_b
    assert from_text.replace(id_b.encode(), id_a.encode()) == from_document
    assert orjson.loads(from_text)["data"] == data and orjson.loads(from_text)["subject"] == subject


def _events() -> list[NewEvent]:
    """Events of every hostile string as a subject, an actor and data, their data as a document or its
    JSON text in turn; two events of one subject (their order must hold)."""
    at = datetime(2024, 6, 12, 9, 30, tzinfo=UTC)
    events = []
    for n, text in enumerate(HOSTILE):
        data: dict[str, Any] = {"id": f"ADEME/{n}", "name": f"Nom {text}", text: [text, None, n, {"k": text}]}
        events.append(NewEvent(
            TOPIC_GRANTS, COMMITTED, f"ADEME/{text or 'x'}-{n}", n + 1, f"actor {text}",
            orjson.dumps(data) if n % 2 else data, at + timedelta(seconds=n % 3) if n % 4 else None,
        ))
    events.append(NewEvent(TOPIC_GRANTS, event_type("grant", "amended"), events[0].subject, 2, "a", {"v": 2}))
    return events


async def _outbox(db: Database) -> list[dict[str, Any]]:
    async with db.read_session() as session:
        rows = (await session.execute(sa.select(outbox_message).order_by(outbox_message.c.id))).mappings().all()
        return [dict(r) for r in rows]


def _comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A row without what differs between two writes of one event: its ids and its instant (the payload's
    id replaced by a marker, the rest byte for byte)."""
    return [
        (r["topic"], r["message_key"], r["event_type"], r["payload"].replace(r["event_id"], "<id>"), r["created_at"] is not None)
        for r in rows
    ]


async def _compare(url: str) -> None:
    db = Database(url)
    now = datetime(2024, 6, 13, 8, 0, tzinfo=UTC)
    events = _events()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(infra_metadata.create_all)
        async with db.session() as session:
            one_by_one = []
            for e in events:
                data = orjson.loads(e.data) if isinstance(e.data, bytes) else e.data
                one_by_one.append((await record_event(
                    session, topic=e.topic, source=SOURCE, type_=e.type, subject=e.subject, version=e.version,
                    actor=e.actor, time=e.time or now, data=data,
                )).id)
            await session.commit()
        per_row = await _outbox(db)
        async with db.session() as session:
            await session.execute(sa.delete(outbox_message))
            ids = await record_events(session, events, source=SOURCE, time=now)
            await session.commit()
        bulk = await _outbox(db)
        assert [r["event_id"] for r in per_row] == one_by_one
        assert [r["event_id"] for r in bulk] == ids and len(set(ids)) == len(events)
        assert _comparable(bulk) == _comparable(per_row)
        assert [orjson.loads(r["payload"])["tiactor"] for r in bulk] == [e.actor for e in events]
        assert bulk[0]["id"] < bulk[-1]["id"] and bulk[-1]["event_type"] == event_type("grant", "amended")
        if db.engine.dialect.name != "postgresql":
            return
        assert all(r["xact_id"] is not None for r in bulk)
        async with db.session() as session:  # a refused COPY keeps nothing of its rows
            refused = [*events[:3], NewEvent(TOPIC_GRANTS, COMMITTED, "k" * 300, 1, "a", b"{}")]
            with pytest.raises(asyncpg.StringDataRightTruncationError):  # a key over 256 characters
                await record_events(session, refused, source=SOURCE, time=now)
            await session.rollback()
        assert len(await _outbox(db)) == len(events)
    finally:
        await db.dispose()


async def test_record_events_stores_what_record_event_stores_on_sqlite(tmp_path: object) -> None:
    await _compare(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")


@pytest.mark.integration
@pytest.mark.skipif("TI_KAFKA_BOOTSTRAP" not in os.environ, reason="needs the local infrastructure (var/local.env)")
async def test_record_events_copies_what_record_event_stores_on_postgresql() -> None:
    from ti_shared.testing import create_database, drop_database

    url = await create_database("test_outbox_copy")
    try:
        await _compare(url)
    finally:
        await drop_database(url)


def test_new_event_ids_are_distinct_random_uuids_as_uuid4_writes_them() -> None:
    ids = new_event_ids(20_000)
    assert len(set(ids)) == len(ids) and new_event_ids(0) == []
    for text in ids:
        value = uuid.UUID(text)
        assert str(value) == text and value.version == 4 and value.variant == uuid.RFC_4122
    # every hexadecimal digit but the version's and the variant's bits is drawn: all values appear
    assert {t[19] for t in ids} == set("89ab") and {t[0] for t in ids} == set("0123456789abcdef")
