"""The site endpoints against real PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from site_catalog.schemas import SITE_EXAMPLE

pytestmark = pytest.mark.integration

SITE = "13004_SITE-ECO_00001"


def site(**changes: Any) -> dict[str, Any]:
    return {**SITE_EXAMPLE, "territory_id": None, **changes}


async def test_lifecycle_versions_history_and_events(service: Any) -> None:
    client, writer = service.client, service.writer()
    await service.feed_territories(("ti-9303", "93"))

    created = await client.put(f"/v1/sites/{SITE}", json=site(territory_id="ti-9303", area_ha="25"), headers=writer)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == 'W/"1"'
    doc = created.json()
    assert doc["version"] == 1 and doc["area_ha"] == "25.00" and doc["id"] == SITE
    assert (doc["departement_code"], doc["region_code"]) == ("13", "93")
    assert doc["updated_at"].endswith("Z")

    read = await client.get(f"/v1/sites/{SITE}")
    assert read.status_code == 200 and read.json() == doc and read.headers["etag"] == 'W/"1"'
    cached = await client.get(f"/v1/sites/{SITE}", headers={"If-None-Match": 'W/"1"'})
    assert cached.status_code == 304 and cached.headers["etag"] == 'W/"1"'

    same = await client.put(f"/v1/sites/{SITE}", json=site(territory_id="ti-9303", area_ha="25.00"), headers=writer)
    assert same.status_code == 200 and same.json() == doc

    updated = await client.put(f"/v1/sites/{SITE}", json=site(territory_id="ti-9303", maturity="short_term"), headers=writer)
    assert updated.status_code == 200 and updated.json()["version"] == 2 and updated.headers["etag"] == 'W/"2"'
    assert (await client.get(f"/v1/sites/{SITE}", headers={"If-None-Match": 'W/"1"'})).status_code == 200

    withdrawn = await client.put(
        f"/v1/sites/{SITE}", json=site(territory_id="ti-9303", maturity="short_term", status="withdrawn"),
        headers=service.writer("other-owner"),
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["version"] == 3

    history = (await client.get(f"/v1/sites/{SITE}/history")).json()
    assert [(h["version"], h["change"], h["actor"]) for h in history["items"]] == [
        (1, "labelled", "site-owner"), (2, "updated", "site-owner"), (3, "withdrawn", "other-owner"),
    ]
    assert history["items"][2]["site"] == withdrawn.json()
    page = (await client.get(f"/v1/sites/{SITE}/history", params={"limit": 2})).json()
    assert [h["version"] for h in page["items"]] == [1, 2] and page["next_cursor"]
    rest = (await client.get(f"/v1/sites/{SITE}/history", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [h["version"] for h in rest["items"]] == [3] and rest["next_cursor"] is None

    events = await service.site_events(3)
    assert [(e["type"], e["entityversion"], e["subject"], e["tiactor"]) for e in events] == [
        ("fr.anct.ti.site.labelled.v1", 1, SITE, "site-owner"),
        ("fr.anct.ti.site.updated.v1", 2, SITE, "site-owner"),
        ("fr.anct.ti.site.withdrawn.v1", 3, SITE, "other-owner"),
    ]
    assert events[0]["data"] == doc and events[2]["data"] == withdrawn.json()
    assert events[2]["source"] == "/services/site-catalog" and events[2]["specversion"] == "1.0"
    assert events[2]["time"] == withdrawn.json()["updated_at"]


async def test_reads_are_public_writes_need_the_scope(service: Any) -> None:
    client = service.client
    assert (await client.put(f"/v1/sites/{SITE}", json=site())).status_code == 401
    bad_token = await client.put(f"/v1/sites/{SITE}", json=site(), headers={"Authorization": "Bearer nonsense"})
    assert bad_token.status_code == 401 and bad_token.headers["content-type"] == "application/problem+json"
    from ti_shared.testing import bearer

    other_scope = await client.put(f"/v1/sites/{SITE}", json=site(), headers=bearer(service.platform, "x", "actions:write"))
    assert other_scope.status_code == 403
    assert (await client.get(f"/v1/sites/{SITE}")).status_code == 404
    assert (await client.put(f"/v1/sites/{SITE}", json=site(), headers=service.admin())).status_code == 201
    assert (await client.get(f"/v1/sites/{SITE}")).status_code == 200
    assert (await client.get("/v1/sites")).json()["items"][0]["id"] == SITE


BAD_PUTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("imports", site(), ["path", "site_id"]),
    (SITE, site(surface="3"), ["body", "surface"]),
    (SITE, site(name=""), ["body", "name"]),
    (SITE, site(area_ha="0"), ["body", "area_ha"]),
    (SITE, site(area_ha="1.234"), ["body", "area_ha"]),
    (SITE, site(area_ha=12.5), ["body", "area_ha"]),
    (SITE, site(commune_insee="20004"), ["body", "commune_insee"]),
    (SITE, site(land_recycling="yes"), ["body", "land_recycling"]),
    (SITE, site(maturity="later"), ["body", "maturity"]),
    (SITE, site(owner_kind="state"), ["body", "owner_kind"]),
    (SITE, site(status="active"), ["body", "status"]),
    (SITE, site(labelled_on="15/04/2024"), ["body", "labelled_on"]),
    (SITE, site(territory_id="ti-0001"), ["body", "territory_id"]),
    ("a!", site(), ["path", "site_id"]),
    ("ab", site(), ["path", "site_id"]),
]


async def test_bad_input_is_422_naming_the_field_and_changes_nothing(service: Any) -> None:
    client, writer = service.client, service.writer()
    for path, body, loc in BAD_PUTS:
        response = await client.put(f"/v1/sites/{path}", json=body, headers=writer)
        assert response.status_code == 422, (loc, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert loc in [e["loc"] for e in response.json()["errors"]], loc
    assert (await client.get("/v1/sites")).json()["items"] == []
    assert (await client.get("/readyz")).json()["outbox_pending"] == 0
    assert await service.site_events(0, linger_s=0.3) == []


async def test_bad_updates_change_nothing(service: Any) -> None:
    client, writer = service.client, service.writer()
    assert (await client.put(f"/v1/sites/{SITE}", json=site(), headers=writer)).status_code == 201
    not_json = await client.put(f"/v1/sites/{SITE}", content=b"{oops", headers={**writer, "Content-Type": "application/json"})
    assert not_json.status_code == 422
    as_text = await client.put(f"/v1/sites/{SITE}", content=b"name=x", headers={**writer, "Content-Type": "text/plain"})
    assert as_text.status_code == 415
    too_big = await client.put(f"/v1/sites/{SITE}", json=site(name="x" * 2_000_000), headers=writer)
    assert too_big.status_code == 413
    unknown = await client.put(f"/v1/sites/{SITE}", json=site(territory_id="ti-9303"), headers=writer)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "territory_id"]
    stale = await client.put(f"/v1/sites/{SITE}", json=site(area_ha="3"), headers={**writer, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    current = (await client.get(f"/v1/sites/{SITE}")).json()
    assert current["version"] == 1 and current["area_ha"] == "25.00"
    assert len(await service.site_events(1)) == 1


async def test_if_match(service: Any) -> None:
    client, writer = service.client, service.writer()
    missing = await client.put(f"/v1/sites/{SITE}", json=site(), headers={**writer, "If-Match": 'W/"1"'})
    assert missing.status_code == 412
    assert (await client.put(f"/v1/sites/{SITE}", json=site(), headers=writer)).status_code == 201
    ok = await client.put(f"/v1/sites/{SITE}", json=site(area_ha="30"), headers={**writer, "If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    late = await client.put(f"/v1/sites/{SITE}", json=site(area_ha="31"), headers={**writer, "If-Match": 'W/"1"'})
    assert late.status_code == 412
    assert (await client.get(f"/v1/sites/{SITE}")).json()["area_ha"] == "30.00"


async def test_list_filters_and_pagination(service: Any) -> None:
    client, writer = service.client, service.writer()
    await service.feed_territories(("ti-9303", "93"), ("ti-8402", "84"))
    sites = {
        "S-arles": site(commune_insee="13004", territory_id="ti-9303", maturity="ready", land_recycling=True),
        "S-avignon": site(commune_insee="84007", territory_id="ti-9303", maturity="before_2030", land_recycling=False),
        "S-bourg": site(commune_insee="01053", territory_id="ti-8402", maturity="ready", land_recycling=False),
        "S-corse": site(commune_insee="2A004", maturity="short_term", land_recycling=True),
        "S-reunion": site(commune_insee="97411", maturity="ready", land_recycling=True, status="withdrawn"),
    }
    for site_id, body in sites.items():
        assert (await client.put(f"/v1/sites/{site_id}", json=body, headers=writer)).status_code == 201

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/v1/sites", params=params)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert await ids(region_code="93") == ["S-arles", "S-avignon"]
    assert await ids(region_code="04") == ["S-reunion"]
    assert await ids(departement_code="2A") == ["S-corse"]
    assert await ids(maturity="ready") == ["S-arles", "S-bourg", "S-reunion"]
    assert await ids(maturity="ready", land_recycling="true") == ["S-arles", "S-reunion"]
    assert await ids(territory_id="ti-9303", land_recycling="false") == ["S-avignon"]
    assert await ids(status="withdrawn") == ["S-reunion"]
    assert await ids(status="labelled", region_code="94") == ["S-corse"]

    seen: list[str] = []
    cursor = None
    while True:
        page = (await client.get("/v1/sites", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        assert len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(sites)

    for params, loc in (
        ({"region_code": "99"}, ["query", "region_code"]),
        ({"maturity": "soon"}, ["query", "maturity"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"land_recycling": "maybe"}, ["query", "land_recycling"]),
    ):
        response = await client.get("/v1/sites", params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["loc"] == loc
    assert (await client.get("/v1/sites/unknown-site/history")).status_code == 404


async def test_effective_at_for_admin_writes(service: Any) -> None:
    client = service.client
    admin = service.admin()
    first = await client.put(f"/v1/sites/{SITE}", json=site(), headers={**admin, "TI-Effective-At": "2024-04-15T09:00:00Z"})
    assert first.status_code == 201 and first.json()["updated_at"] == "2024-04-15T09:00:00Z"
    earlier = await client.put(
        f"/v1/sites/{SITE}", json=site(area_ha="2"), headers={**admin, "TI-Effective-At": "2024-01-01T00:00:00+01:00"}
    )
    assert earlier.status_code == 409
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert (await client.put(f"/v1/sites/{SITE}", json=site(area_ha="2"), headers={**admin, "TI-Effective-At": future})).status_code == 422
    not_admin = await client.put(
        f"/v1/sites/{SITE}", json=site(area_ha="2"), headers={**service.writer(), "TI-Effective-At": "2024-05-01T00:00:00Z"}
    )
    assert not_admin.status_code == 403
    later = await client.put(f"/v1/sites/{SITE}", json=site(area_ha="2"), headers={**admin, "TI-Effective-At": "2024-06-01T12:00:00+02:00"})
    assert later.status_code == 200 and later.json()["updated_at"] == "2024-06-01T10:00:00Z"
    events = await service.site_events(2)
    assert [(e["entityversion"], e["time"]) for e in events] == [(1, "2024-04-15T09:00:00Z"), (2, "2024-06-01T10:00:00Z")]


async def test_openapi_documents_the_endpoints(service: Any) -> None:
    spec = (await service.client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/v1/sites", "/v1/sites/{site_id}", "/v1/sites/{site_id}/history", "/v1/sites/imports"} <= set(paths)
    for path in paths.values():
        for operation in path.values():
            assert operation.get("summary")
    put = paths["/v1/sites/{site_id}"]["put"]
    assert {"201", "401", "403", "412", "422"} <= set(put["responses"])
    assert put["requestBody"]["content"]["application/json"]["examples"]
    assert "text/csv" in paths["/v1/sites/imports"]["post"]["requestBody"]["content"]


async def test_a_write_waits_for_the_site_locked_by_another_then_sees_its_version(service: Any) -> None:
    """The write's one read locks the site: a writer of version 1 waits while another transaction holds
    the row, then reads the version that one committed (412 for its If-Match), rather than failing its
    guarded update (409); the territory is looked up in the same read."""
    import asyncio

    import asyncpg
    from ti_shared.outbox import asyncpg_dsn

    client, writer = service.client, service.writer()
    await service.feed_territories(("ti-9303", "93"))
    site_id = "13004_SITE-ECO_00077"
    assert (await client.put(f"/v1/sites/{site_id}", json=site(territory_id="ti-9303"), headers=writer)).status_code == 201
    other = await asyncpg.connect(asyncpg_dsn(service.database_url))
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM site WHERE site_id = $1 FOR UPDATE", site_id)
        put = asyncio.create_task(
            client.put(f"/v1/sites/{site_id}", json=site(territory_id="ti-9303", area_ha="30"), headers={**writer, "If-Match": 'W/"1"'})
        )
        await asyncio.sleep(0.5)
        assert not put.done(), "the write did not wait for the lock"
        await other.execute("UPDATE site SET version = 2 WHERE site_id = $1", site_id)
        await transaction.commit()
        answer = await asyncio.wait_for(put, 10)
        assert answer.status_code == 412, answer.text
    finally:
        await other.close()
    for target in ("13004_SITE-ECO_00078", site_id):  # a new site, and one moved there
        unknown = await client.put(f"/v1/sites/{target}", json=site(territory_id="ti-9999"), headers=writer)
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["errors"][0]["loc"] == ["body", "territory_id"]
