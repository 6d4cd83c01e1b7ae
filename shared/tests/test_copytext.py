"""Text ``COPY`` (``ti_shared.copytext``): the rows it stores are those asyncpg's binary ``COPY`` stores,
whatever the strings hold."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_shared.copytext import (
    NULL,
    InstantTexts,
    bytes_line,
    copy_text,
    escape,
    escape_bytes,
    instant_text,
    lines_buffer,
    text_line,
)
from ti_shared.db import Database, JSONType, copy_records

_meta = sa.MetaData()
_table = sa.Table(
    "copy_probe",
    _meta,
    sa.Column("k", sa.Integer(), primary_key=True),
    sa.Column("s", sa.Text(), nullable=True),
    sa.Column("n", sa.Numeric(14, 2), nullable=True),
    sa.Column("d", sa.Date(), nullable=True),
    sa.Column("t", sa.DateTime(timezone=True), nullable=True),
    sa.Column("j", JSONType, nullable=True),
)
_COLUMNS = ("k", "s", "n", "d", "t", "j")

#: what the text format must escape or could misread, and what it need not
TRICKY = st.sampled_from(["\\", "\\N", "N", "\\.", ".", "\t", "\n", "\r", "\r\n", "\\t", "\\\\", "", " ", '"', "'", ",", ";", "é", "😀"])
STRINGS = st.lists(TRICKY | st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8), max_size=5).map("".join)


def _unescape(field: str) -> str | None:
    """A field of the text format read back as PostgreSQL reads it (the escapes text_line writes)."""
    if field == NULL:
        return None
    out, i = [], 0
    while i < len(field):
        ch = field[i]
        if ch == "\\":
            nxt = field[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(st.none() | STRINGS, min_size=1, max_size=6))
def test_a_line_reads_back_as_its_values(values: list[str | None]) -> None:
    line = text_line(values)
    assert "\n" not in line and "\r" not in line
    assert [_unescape(f) for f in line.split("\t")] == values


def test_escape_and_instants() -> None:
    assert escape(None) == NULL and escape("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"
    paris = timezone(timedelta(hours=1))
    at = datetime(2024, 6, 12, 10, 0, tzinfo=paris)
    assert instant_text(at) == "2024-06-12T09:00:00+00:00"
    texts = InstantTexts()
    assert texts(at) == texts(at.astimezone(UTC)) == "2024-06-12T09:00:00+00:00" and texts(None) is None
    with pytest.raises(ValueError):
        instant_text(datetime(2024, 6, 12))


async def _stored(url: str, rows: list[tuple[object, ...]]) -> tuple[list[object], list[object]]:
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_meta.create_all)
        texts = InstantTexts()
        text_rows = [
            (str(k), s, None if n is None else str(n), None if d is None else d.isoformat(), texts(t), j)
            for k, s, n, d, t, j in rows
        ]
        async with db.session() as session:
            assert await copy_text(session, _table, _COLUMNS, lines_buffer(text_rows)) == len(rows)
            await session.commit()
        got_text = await _read(db)
        async with db.session() as session:
            await session.execute(_table.delete())
            await copy_records(session, _table, _COLUMNS, rows)
            await session.commit()
        return got_text, await _read(db)
    finally:
        await db.dispose()


async def _read(db: Database) -> list[object]:
    async with db.read_session() as session:
        return [tuple(r) for r in await session.execute(sa.select(_table).order_by(_table.c.k))]


@pytest.mark.integration
@pytest.mark.skipif("TI_KAFKA_BOOTSTRAP" not in os.environ, reason="needs the local infrastructure (var/local.env)")
async def test_text_copy_stores_what_binary_copy_stores() -> None:
    from ti_shared.testing import create_database, drop_database

    strings = ["\\", "\\N", "N", "\\.", "a\tb", "a\nb", "a\rb", "x\\ty", "ends\\", "", " ", "é€😀", '{"a": "\\""}', None]
    at = datetime(2024, 6, 12, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    rows: list[tuple[object, ...]] = [
        (n, s, Decimal("1500000.00") if n % 2 else None, date(2024, 6, 12) if n % 3 else None, at if n % 4 else None,
         f'["{n}", "a\\\\b", "tab\\t"]' if n % 5 else None)
        for n, s in enumerate(strings)
    ]
    url = await create_database("test_copytext")
    try:
        as_text, as_binary = await _stored(url, rows)
    finally:
        await drop_database(url)
    assert as_text == as_binary
    assert [r[1] for r in as_text] == strings  # type: ignore[index]


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(STRINGS, min_size=1, max_size=6))
def test_a_line_of_bytes_is_the_line_of_its_texts(values: list[str]) -> None:
    assert bytes_line([v.encode() for v in values]) == (text_line(values) + "\n").encode()
    assert escape_bytes(values[0].encode()) == escape(values[0]).encode()
