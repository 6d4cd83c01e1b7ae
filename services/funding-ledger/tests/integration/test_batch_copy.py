"""A batch's grants and ledger entries go by a text ``COPY``: what it stores is what one PUT stores
(the statement path), byte for byte, whatever the strings hold."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from ti_shared.db import Database

from .helpers import GRANT, service

pytestmark = pytest.mark.integration

#: strings the text format must escape, or that look like its markers
HOSTILE = [
    "back\\slash", "tab\there", "line\nfeed", "carriage\rreturn", "\\N", "\\.", "ends with a backslash\\",
    "\\\\t two", 'quote " and \' ', "é€😀 à la ligne\r\n", " \t leading and trailing \t ", "N",
]
#: the columns compared (the key and the instants differ between the two writes)
_SKIP = {"operator_ref", "created_at", "updated_at", "recorded_at", "id"}


async def _rows(url: str, table: str, order: str) -> dict[str, dict[str, Any]]:
    db = Database(url)
    try:
        async with db.read_session() as session:
            result = await session.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY {order}'))
            out: dict[str, dict[str, Any]] = {}
            for r in result:
                m = dict(r._mapping)
                out.setdefault(m["operator_ref"], {})[str(len(out.get(m["operator_ref"], {})))] = {
                    k: v for k, v in m.items() if k not in _SKIP
                }
            return out
    finally:
        await db.dispose()


async def test_a_batch_stores_what_puts_store_for_hostile_strings() -> None:
    bodies = []
    for n, text in enumerate(HOSTILE):
        body: dict[str, Any] = {
            **GRANT,
            "beneficiary": {**GRANT["beneficiary"], "name": f"Nom {text}"},
            "object": f"{text} objet",
            "status": "cancelled" if n % 3 == 0 else "committed",
            "investment_eur": None if n % 4 == 1 else GRANT["investment_eur"],
            "jobs_forecast": None if n % 2 else 30, "jobs_conditional": None if n % 2 else 6,
            "scdl": {"referenceDecision": f"DEL {text}", "nature": "aide en numéraire", "notificationUE": n % 2 == 0},
        }
        bodies.append(body)
    async with service() as s:
        c = s.client
        h = s.token(sub="ademe\\push\tbot")  # the actor goes into every ledger entry
        for n, body in enumerate(bodies):
            r = await c.put(f"/v1/grants/ADEME/PUT-{n:02d}", json=body, headers=h)
            assert r.status_code == 201, r.text
        items = [{"operator": "ADEME", "operator_ref": f"BATCH-{n:02d}", **b} for n, b in enumerate(bodies)]
        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": items}, headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["counts"]["created"] == len(bodies)
        for n in range(len(bodies)):
            put = (await c.get(f"/v1/grants/ADEME/PUT-{n:02d}", headers=h)).json()
            batch = (await c.get(f"/v1/grants/ADEME/BATCH-{n:02d}", headers=h)).json()
            for doc in (put, batch):
                del doc["id"], doc["operator_ref"], doc["updated_at"]
            assert batch == put
            assert batch["object"] == f"{HOSTILE[n]} objet" and batch["beneficiary"]["name"] == f"Nom {HOSTILE[n]}"
        grants = await _rows(s.url, "grant", "operator_ref")
        ledger = await _rows(s.url, "grant_ledger_entry", "operator_ref, grant_version, seq")
        for n in range(len(bodies)):
            assert grants[f"BATCH-{n:02d}"] == grants[f"PUT-{n:02d}"]
            assert ledger[f"BATCH-{n:02d}"] == ledger[f"PUT-{n:02d}"]
            assert all(e["actor"] == "ademe\\push\tbot" for e in ledger[f"BATCH-{n:02d}"].values())
        assert await s.ledger_problems() == {}
