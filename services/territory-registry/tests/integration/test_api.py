from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from territory_registry.schemas import TERRITORY_EXAMPLE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def body(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TERRITORY_EXAMPLE)
    doc.update(changes)
    return doc


async def test_create_update_noop_withdraw_reactivate_publish_the_right_events(registry) -> None:
    client, tid = registry.client, "ti-8402"
    created = await client.put(f"/v1/territories/{tid}", json=body(), headers=registry.writer)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == 'W/"1"' and created.headers["location"] == f"/v1/territories/{tid}"
    resource = created.json()
    assert resource["id"] == tid and resource["version"] == 1
    assert {k: resource[k] for k in TERRITORY_EXAMPLE} == TERRITORY_EXAMPLE

    outbox_before = await registry.outbox_count()
    same = await client.put(f"/v1/territories/{tid}", json=body(), headers=registry.writer)
    assert same.status_code == 200 and same.json() == resource
    assert await registry.outbox_count() == outbox_before
    assert "ti-event-id" not in same.headers  # no event: nothing to wait for

    renamed = await client.put(f"/v1/territories/{tid}", json=body(name="Bassin burgien"), headers=registry.writer)
    assert renamed.status_code == 200 and renamed.json()["version"] == 2
    withdrawn = await client.put(f"/v1/territories/{tid}", json=body(name="Bassin burgien", status="withdrawn"), headers=registry.writer)
    assert withdrawn.json()["version"] == 3 and withdrawn.json()["status"] == "withdrawn"
    back = await client.put(f"/v1/territories/{tid}", json=body(name="Bassin burgien"), headers=registry.writer)
    assert back.json()["version"] == 4

    events = await registry.events(tid, at_least=4)
    assert [e["type"] for e in events] == [
        "fr.anct.ti.territory.registered.v1",
        "fr.anct.ti.territory.updated.v1",
        "fr.anct.ti.territory.withdrawn.v1",
        "fr.anct.ti.territory.updated.v1",
    ]
    responses = [resource, renamed.json(), withdrawn.json(), back.json()]
    assert [e["id"] for e in events] == [r.headers["ti-event-id"] for r in (created, renamed, withdrawn, back)]
    for event, response in zip(events, responses, strict=True):
        assert event["specversion"] == "1.0" and event["source"] == "/services/territory-registry"
        assert event["subject"] == tid and event["_key"] == tid
        assert event["_headers"]["content-type"] == b"application/cloudevents+json"
        assert event["datacontenttype"] == "application/json"
        assert event["entityversion"] == response["version"]
        assert event["tiactor"] == "anct-import"
        assert event["data"] == response
        assert event["time"] == response["updated_at"]

    current = await client.get(f"/v1/territories/{tid}")
    assert current.json() == back.json() and current.headers["etag"] == 'W/"4"'
    assert (await client.get(f"/v1/territories/{tid}", headers={"If-None-Match": 'W/"4"'})).status_code == 304
    assert (await client.get(f"/v1/territories/{tid}", headers={"If-None-Match": 'W/"3"'})).status_code == 200

    history = (await client.get(f"/v1/territories/{tid}/history")).json()
    assert [v["version"] for v in history["items"]] == [1, 2, 3, 4]
    assert [v["change"] for v in history["items"]] == ["registered", "updated", "withdrawn", "updated"]
    assert history["items"][1]["changed_fields"] == ["name"]
    assert history["items"][2]["changed_fields"] == ["status"]
    assert history["items"][3]["state"] == back.json() and history["items"][3]["actor"] == "anct-import"
    assert history["items"][2]["time"] == withdrawn.json()["updated_at"]
    page = (await client.get(f"/v1/territories/{tid}/history?limit=3")).json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = (await client.get(f"/v1/territories/{tid}/history", params={"cursor": page["next_cursor"]})).json()
    assert [v["version"] for v in rest["items"]] == [4] and rest["next_cursor"] is None


async def test_if_match_guards_updates(registry) -> None:
    client, tid = registry.client, "ti-2701"
    created = await client.put(f"/v1/territories/{tid}", json=body(region_code="27", departement_codes=["25"]), headers=registry.writer)
    assert created.status_code == 201
    stale = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="27", name="Nord Franche-Comté"),
        headers={**registry.writer, "If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
    fresh = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="27", name="Nord Franche-Comté"),
        headers={**registry.writer, "If-Match": 'W/"1"'},
    )
    assert fresh.status_code == 200 and fresh.json()["version"] == 2
    absent = await client.put("/v1/territories/ti-2799", json=body(region_code="27"), headers={**registry.writer, "If-Match": "*"})
    assert absent.status_code == 412
    assert (await client.get("/v1/territories/ti-2799")).status_code == 404


async def test_effective_at_backdates_an_admin_write(registry) -> None:
    client, tid = registry.client, "ti-7601"
    past = "2023-11-09T10:00:00Z"
    created = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="76", departement_codes=["12"]),
        headers={**registry.admin, "TI-Effective-At": "2023-11-09T11:00:00+01:00"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["updated_at"] == past

    earlier = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="76", name="Rodez"),
        headers={**registry.admin, "TI-Effective-At": "2023-01-01T00:00:00Z"},
    )
    assert earlier.status_code == 409 and earlier.headers["content-type"] == "application/problem+json"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ahead = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="76", name="Rodez"),
        headers={**registry.admin, "TI-Effective-At": future},
    )
    assert ahead.status_code == 422 and ahead.json()["errors"][0]["loc"] == ["header", "TI-Effective-At"]
    not_admin = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="76", name="Rodez"),
        headers={**registry.writer, "TI-Effective-At": "2024-01-01T00:00:00Z"},
    )
    assert not_admin.status_code == 403
    later = await client.put(
        f"/v1/territories/{tid}", json=body(region_code="76", departement_codes=["12"], status="withdrawn"),
        headers={**registry.admin, "TI-Effective-At": "2024-06-30T00:00:00Z"},
    )
    assert later.status_code == 200 and later.json()["version"] == 2

    events = await registry.events(tid, at_least=2)
    assert [(e["entityversion"], e["time"], e["tiactor"]) for e in events] == [
        (1, past, "anct-admin"),
        (2, "2024-06-30T00:00:00Z", "anct-admin"),
    ]
    assert events[1]["type"] == "fr.anct.ti.territory.withdrawn.v1"
    assert events[1]["data"]["updated_at"] == "2024-06-30T00:00:00Z"


async def test_lists_filter_and_paginate(registry) -> None:
    client = registry.client
    for n in range(1, 6):
        status = "withdrawn" if n == 5 else "active"
        response = await client.put(
            f"/v1/territories/ti-53{n:02d}", json=body(region_code="53", departement_codes=["29"], status=status),
            headers=registry.writer,
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"region_code": "53", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/territories", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"ti-53{n:02d}" for n in range(1, 6)]
    active = (await client.get("/v1/territories", params={"region_code": "53", "status": "active"})).json()
    assert [t["id"] for t in active["items"]] == [f"ti-53{n:02d}" for n in range(1, 5)]
    assert all(t["region_code"] == "53" for t in active["items"])
    withdrawn = (await client.get("/v1/territories", params={"status": "withdrawn", "region_code": "53"})).json()
    assert [t["id"] for t in withdrawn["items"]] == ["ti-5305"]


async def test_reference_data(registry) -> None:
    regions = (await registry.client.get("/v1/regions")).json()
    assert len(regions) == 18 and {"code": "84", "name": "Auvergne-Rhône-Alpes"} in regions
    departements = (await registry.client.get("/v1/departements")).json()
    assert len(departements) == 101
    assert {"code": "2A", "name": "Corse-du-Sud", "region_code": "94"} in departements
    assert not any(d["code"] == "20" for d in departements)
    corsica = (await registry.client.get("/v1/departements", params={"region_code": "94"})).json()
    assert [d["code"] for d in corsica] == ["2A", "2B"]
    bad = await registry.client.get("/v1/departements", params={"region_code": "20"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "region_code"]
