"""Hostile writes, generated (hypothesis), on real PostgreSQL and Kafka: a grant PUT or a batch (JSON,
CSV, or an SCDL « subventions » file in either separator and encoding) whose money, dates, codes or keys are hostile is accepted or refused with a 4xx problem — never
a 5xx — and after a 4xx no grant, ledger entry or outbox event has changed."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from ti_shared.db import Database

from .helpers import GRANT, service

pytestmark = pytest.mark.integration

HOSTILE_MONEY = (
    st.sampled_from(["1" * 27, "9" * 13, "1e5", "NaN", "-1", "0.001", "1500000.00\n", "", " ", "1,5"])
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(alphabet="0123456789.-e", max_size=45)
)
HOSTILE_DATES = st.sampled_from(["9999-12-31", "0001-01-01", "2024-02-30", "2024-06-12\n", "12/06/2024", ""]) | st.text(
    alphabet="0123456789-/T:Z", max_size=25
)
HOSTILE_CODES = st.sampled_from(["71076\n", "20004", "2A000", "9761", "", "7107６"]) | st.text(alphabet="0123456789AB\n ", max_size=7)
HOSTILE_REFS = st.sampled_from(["FV-1\n", "FV 1", "", "../x", "a" * 200, "FV\x00"]) | st.text(max_size=20)
FIELDS = {
    "amount_eur": HOSTILE_MONEY,
    "investment_eur": HOSTILE_MONEY,
    "decision_date": HOSTILE_DATES,
    "commune_insee": HOSTILE_CODES,
    "jobs_forecast": st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=5),
    "object": st.text(max_size=300),
}
EDITS = st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), min_size=1, max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in keys})
)
CSV_HEADER = "operator;operator_ref;programme;nomBeneficiaire;idBeneficiaire;objet;montant;dateConvention;commune_insee;jobs_forecast\n"
CSV_CELL = st.text(alphabet='0123456789,.;-/ "\nAEZ\x00é', max_size=30)
#: the columns of SCDL « subventions » 2.1.1, in the schema's order
SCDL_COLUMNS = (
    "nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire", "idBeneficiaire",
    "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement", "datesPeriodeVersement", "idRAE",
    "notificationUE", "pourcentageSubvention", "dispositifAide",
)
#: the cells an SCDL file of a collectivité may hold, hostile ones included
SCDL_CELL = CSV_CELL | st.sampled_from(
    ["137 825,00", "1 500 000,00 €", "2018/01/30", "30/01/2018", "2024-06-12_2024-12-31", "Oui", "non", "0,5", "50 %",
     "Échelonné", "Echelonne", "Unique", "21860194600013", "W751212517", "1" * 30, "9999-12-31"]
)


async def _state(db: Database) -> tuple[Any, ...]:
    async with db.read_session() as session:
        grants = (await session.execute(text('SELECT count(*), coalesce(sum(version), 0) FROM "grant"'))).one()
        entries = (await session.execute(text("SELECT count(*) FROM grant_ledger_entry"))).scalar_one()
        outbox = (await session.execute(text("SELECT count(*) FROM outbox_message"))).scalar_one()
    return (*grants, entries, outbox)


async def test_hostile_grant_writes_are_refused_whole() -> None:
    async with service() as s:
        loop = asyncio.get_running_loop()
        db = Database(s.url)
        token = s.token()
        statuses: list[int] = []

        async def check(method: str, path: str, **kwargs: Any) -> None:
            before = await _state(db)
            r = await s.client.request(method, path, headers={**token, **kwargs.pop("headers", {})}, **kwargs)
            statuses.append(r.status_code)
            assert r.status_code < 500, (path, r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/problem+json"), r.text[:200]
                assert await _state(db) == before, (path, r.status_code, r.text[:300])

        def run(coro: Any) -> None:
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

        common = settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

        @common
        @given(ref=HOSTILE_REFS | st.just("FV-HOSTILE"), edits=EDITS)
        def put(ref: str, edits: dict[str, Any]) -> None:
            run(check("PUT", f"/v1/grants/ADEME/{quote(ref, safe='')}", json={**GRANT, "territory_id": None, **edits}))

        @common
        @given(refs=st.lists(HOSTILE_REFS | st.just("FV-B"), min_size=1, max_size=4), edits=EDITS, mode=st.sampled_from(["atomic", "partial"]))
        def batch(refs: list[str], edits: dict[str, Any], mode: str) -> None:
            items = [{"operator": "ADEME", "operator_ref": r, **GRANT, "territory_id": None, **edits} for r in refs]
            run(check("POST", "/v1/grant-batches", json={"mode": mode, "items": items}))

        @common
        @given(rows=st.lists(st.lists(CSV_CELL, min_size=10, max_size=10), min_size=1, max_size=3))
        def csv_batch(rows: list[list[str]]) -> None:
            body = CSV_HEADER + "".join(";".join(cells) + "\n" for cells in rows)
            run(check("POST", "/v1/grant-batches", content=body.encode(), params={"mode": "atomic"}, headers={"Content-Type": "text/csv"}))

        @common
        @given(
            rows=st.lists(st.lists(SCDL_CELL, min_size=len(SCDL_COLUMNS), max_size=len(SCDL_COLUMNS)), min_size=1, max_size=3),
            separator=st.sampled_from([",", ";"]),
            encoding=st.sampled_from(["utf-8", "cp1252"]),
            mode=st.sampled_from(["atomic", "partial"]),
        )
        def scdl_file(rows: list[list[str]], separator: str, encoding: str, mode: str) -> None:
            lines = [separator.join(SCDL_COLUMNS)] + [separator.join(f'"{c}"' if separator in c else c for c in r) for r in rows]
            body = ("\n".join(lines) + "\n").encode(encoding, errors="replace")
            params = {"mode": mode, "programme": GRANT["programme"]}
            run(check("POST", "/v1/grant-batches", content=body, params=params, headers={"Content-Type": "text/csv"}))

        try:
            for test in (put, batch, csv_batch, scdl_file):
                await asyncio.to_thread(test)
        finally:
            await db.dispose()
        assert any(400 <= code < 500 for code in statuses)
