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


def _hostile_bodies() -> list[dict[str, Any]]:
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
    return bodies


async def test_a_batch_stores_what_puts_store_for_hostile_strings() -> None:
    bodies = _hostile_bodies()
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


#: what differs between the events of a PUT and of a batch of the same grants (their key and instants)
_EVENT_SKIP = {"id", "subject", "time"}
_DATA_SKIP = {"id", "operator_ref", "updated_at"}


def _event(e: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in e.items() if k not in _EVENT_SKIP}, "data": {k: v for k, v in e["data"].items() if k not in _DATA_SKIP}}


async def test_a_batch_publishes_the_events_puts_publish_for_hostile_strings() -> None:
    """The batch's outbox rows (a text ``COPY`` of envelopes around the grants' JSON text) carry what a
    PUT's (one row, its data a document) carries, on the bus, in order per key."""
    bodies = _hostile_bodies()
    async with service() as s:
        c = s.client
        h = s.token(sub="ademe\\push\tbot é")
        for n, body in enumerate(bodies):
            r = await c.put(f"/v1/grants/ADEME/PUT-{n:02d}", json={**body, "status": "committed", "amount_eur": "1.00"}, headers=h)
            assert r.status_code == 201, r.text
            r = await c.put(f"/v1/grants/ADEME/PUT-{n:02d}", json=body, headers=h)
            assert r.status_code == 200, r.text
        items = [{"operator": "ADEME", "operator_ref": f"BATCH-{n:02d}", **b} for n, b in enumerate(bodies)]
        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": [{**i, "status": "committed", "amount_eur": "1.00"} for i in items]}, headers=h)
        assert r.status_code == 201, r.text
        batch_ids = r.headers["ti-event-id"]
        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": items}, headers=h)
        assert r.status_code == 201 and r.json()["counts"]["updated"] == len(bodies), r.text
        events = await s.grant_events(4 * len(bodies))
        assert len(events) == 4 * len(bodies) and len({e["id"] for e in events}) == len(events)
        assert batch_ids in {e["id"] for e in events}
        by_subject: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            by_subject.setdefault(e["subject"], []).append(e)
        for n in range(len(bodies)):
            put, batch = by_subject[f"ADEME/PUT-{n:02d}"], by_subject[f"ADEME/BATCH-{n:02d}"]
            assert [e["entityversion"] for e in batch] == [1, 2]  # in order per key
            assert [_event(e) for e in batch] == [_event(e) for e in put]
            assert batch[1]["data"]["object"] == f"{HOSTILE[n]} objet" and batch[1]["tiactor"] == "ademe\\push\tbot é"
            assert set(batch[0]) == set(put[0]) and batch[0]["data"]["id"] == f"ADEME/BATCH-{n:02d}"
