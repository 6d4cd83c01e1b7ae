"""Scenario 8: a frozen edition of the Bilan on the distributed platform. A plan imported later but
back-dated (``TI-Effective-At``) to before the edition's instant is listed as a restatement, with the
imported actions as its events; the edition's indicators, HTML and PDF stay byte-identical, also
across a full rebuild of reporting."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from e2e_harness import Model, Platform, Stats

pytestmark = pytest.mark.integration


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _parts(client: httpx.AsyncClient, href: str) -> dict[str, bytes]:
    out = {}
    for name, path in (("indicators", "/indicators"), ("html", "/bilan?format=html"), ("pdf", "/bilan?format=pdf")):
        response = await client.get(href + path)
        assert response.status_code == 200, response.text[:500]
        out[name] = response.content
    return out


async def _rebuild(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    started = await client.post("/v1/indicators/rebuild", headers=admin)
    assert started.status_code == 202, started.text[:500]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = (await client.get("/v1/indicators/rebuild")).json()
        if status["state"] != "running":
            assert status["state"] == "done", status
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the rebuild did not finish in 300 s")


async def test_a_back_dated_plan_import_restates_a_frozen_edition(
    platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]
) -> None:
    await stats.settle(platform, "editions")
    territory = sorted(pushed)[-1]
    scope = f"territory:{territory}"
    admin = platform.auth("anct-admin", "admin")
    as_of = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)  # after every write so far
    async with httpx.AsyncClient(base_url=platform.url("reporting"), timeout=180) as client:
        before = (await client.get("/v1/indicators", params={"scope": scope, "as_of": _instant(as_of)})).json()["indicators"]
        created = await client.post(
            "/v1/reports/editions", json={"name": "Bilan du territoire", "scope": scope, "as_of": _instant(as_of)}, headers=admin
        )
        assert created.status_code == 201, created.text[:1000]
        href = created.headers["location"]
        edition = created.json()
        assert edition["indicators"]["indicators"] == before
        assert sum(s["events"] for s in edition["sources"]) > 0
        frozen = await _parts(client, href)
        assert (await client.get(href + "/restatements")).json()["items"] == []

        # the semester plan, sent late: three new actions, dated an hour before the edition
        tag = uuid.uuid4().hex[:6].upper()
        imported = {f"{tag}-LATE{n}": n for n in range(1, 4)}
        rows = ["action_id;title;axis;themes;status;budget_eur"]
        rows += [f"{aid};Action tardive {n};innovation;tiers_lieux;realise;5000.00" for aid, n in imported.items()]
        headers = {"Content-Type": "text/csv", "Idempotency-Key": str(uuid.uuid4()),
                   "TI-Effective-At": _instant(as_of - timedelta(hours=1)), **admin}
        async with httpx.AsyncClient(base_url=platform.url("action-tracker"), timeout=60) as tracker:
            response = await tracker.post(
                f"/v1/actions/plan-imports?territory_id={territory}&mode=atomic",
                content="\n".join(rows).encode() + b"\n", headers=headers,
            )
        assert response.status_code == 200, response.text[:1500]
        for aid, n in imported.items():
            model.actions[aid] = {"territory_id": territory, "title": f"Action tardive {n}", "axis": "innovation",
                                  "themes": ["tiers_lieux"], "status": "realise", "budget_eur": "5000.00"}
        stats.last_write_at = time.monotonic()
        await stats.settle(platform, "editions")

        restated = await client.get(href + "/restatements")
        assert restated.status_code == 200, restated.text[:1000]
        items = {(i["code"], i["key"]): i for i in restated.json()["items"]}
        count = items[("actions.count", "")]
        assert (count["published"], count["now"]) == (before["actions.count"], before["actions.count"] + 3)
        assert sorted(e["subject"] for e in count["events"]) == sorted(imported)
        assert all(e["published_version"] is None and e["entity"] == "action" for e in count["events"])
        assert all(e["time"] == _instant(as_of - timedelta(hours=1)) for e in count["events"])
        realise = items[("actions.by_status", "realise")]
        assert realise["now"] - realise["published"] == 3
        assert await _parts(client, href) == frozen

        await _rebuild(client, admin)
        assert await _parts(client, href) == frozen
        again = (await client.get(href + "/restatements")).json()["items"]
        assert {(i["code"], i["key"]): i for i in again} == items
        page = await client.get(f"/dashboard/editions/{edition['id']}")
        assert page.status_code == 200 and "ti-restated" in page.text
    stats.scenarios.setdefault("editions", {}).update(restated=len(items), parts_bytes={k: len(v) for k, v in frozen.items()})
