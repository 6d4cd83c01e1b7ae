"""The bulk writers' fast paths give exactly what the general ones give."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import siren as fr_siren
from stdnum.fr import siret as fr_siret
from ti_shared.db import Database, insert_rows
from ti_shared.events import encode_event, encode_new_event, new_event
from ti_shared.types import luhn_complete, siren_problem, siret_problem


def _stdnum_accepts(module: object, value: str) -> bool:
    try:
        module.validate(value)  # type: ignore[attr-defined]
    except StdnumError:
        return False
    return value.isascii() and value.isdigit()


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.from_regex(r"\A[0-9]{14}\Z"), st.from_regex(r"\A356000000[0-9]{5}\Z"), st.text(max_size=16)))
def test_siret_check_agrees_with_stdnum(value: str) -> None:
    assert (siret_problem(value) is None) == _stdnum_accepts(fr_siret, value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=0, max_value=10**8 - 1), st.integers(min_value=0, max_value=9999))
def test_generated_sirets_are_valid(siren_body: int, establishment: int) -> None:
    value = luhn_complete(luhn_complete(f"{siren_body:08d}") + f"{establishment:04d}")
    assert siret_problem(value) is None
    assert _stdnum_accepts(fr_siret, value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.from_regex(r"\A[0-9]{9}\Z"))
def test_siren_check_agrees_with_stdnum(value: str) -> None:
    assert (siren_problem(value) is None) == _stdnum_accepts(fr_siren, value)


def test_la_poste_head_office_follows_luhn() -> None:
    assert siret_problem("35600000000048") is None
    assert siret_problem("35600000000049") is not None


@pytest.mark.parametrize(
    "time",
    [
        datetime(2024, 6, 12, 9, 30, tzinfo=UTC),
        datetime(2024, 6, 12, 11, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_encode_new_event_gives_the_bytes_of_encode_event(time: datetime) -> None:
    data = {"id": "ADEME/FV-1", "name": "Société « Métal » \u2028", "amount_eur": "12.50", "l": [None, True, 3], "d": {}}
    event_id, payload = encode_new_event(
        source="/services/funding-ledger", type_="fr.anct.ti.grant.committed.v1", subject="ADEME/FV-1",
        time=time, version=2, actor="ademe-push", data=data,
    )
    reference = new_event(
        source="/services/funding-ledger", type_="fr.anct.ti.grant.committed.v1", subject="ADEME/FV-1",
        time=time, version=2, actor="ademe-push", data=data,
    ).model_copy(update={"id": event_id})
    assert payload == encode_event(reference)


_metadata = sa.MetaData()
_bulk = sa.Table(
    "bulk_row",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("tags", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


async def _round_trip(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)
        at = datetime(2024, 6, 12, 9, 30, tzinfo=UTC)
        rows = [{"name": f"r{i}", "amount": Decimal(f"{i}.50"), "tags": ["a", {"n": i}], "at": at} for i in range(2500)]
        async with db.session() as session:
            await insert_rows(session, _bulk, rows)
            await session.commit()
        async with db.session() as session:
            got = (await session.execute(sa.select(_bulk).order_by(_bulk.c.id))).all()
            assert [(r.name, r.amount, r.tags) for r in got] == [(r["name"], r["amount"], r["tags"]) for r in rows]
            assert [r.id for r in got] == sorted(r.id for r in got)
            assert got[0].at.replace(tzinfo=got[0].at.tzinfo or UTC) == at
        async with db.session() as session:
            with pytest.raises(sa.exc.IntegrityError):
                await insert_rows(session, _bulk, [{"name": "r1", "amount": Decimal("1"), "tags": [], "at": at}])
            await session.rollback()
        async with db.session() as session:
            assert (await session.execute(sa.select(sa.func.count()).select_from(_bulk))).scalar_one() == 2500
    finally:
        await db.dispose()


async def test_insert_rows_on_sqlite(tmp_path: object) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path}/bulk.db")


@pytest.mark.integration
@pytest.mark.skipif("TI_KAFKA_BOOTSTRAP" not in os.environ, reason="needs the local infrastructure (var/local.env)")
async def test_insert_rows_copies_on_postgresql() -> None:
    from ti_shared.testing import create_database, drop_database

    url = await create_database("test_bulk")
    try:
        await _round_trip(url)
    finally:
        await drop_database(url)


def test_a_siret_or_siren_of_another_length_is_refused_without_being_kept() -> None:
    from ti_shared.types import _siren_verdict, _siret_verdict

    before = (_siret_verdict.cache_info().currsize, _siren_verdict.cache_info().currsize)
    assert siret_problem("7" * 100_000) == "must be 14 digits"
    assert siret_problem("") == "must be 14 digits"
    assert siren_problem("7" * 100_000) == "must be 9 digits"
    # nothing kept: the caches' memory stays bounded whatever the length of what is sent
    assert (_siret_verdict.cache_info().currsize, _siren_verdict.cache_info().currsize) == before
    assert siret_problem("1234567890123A") == "must be 14 digits"  # fourteen characters, not digits
