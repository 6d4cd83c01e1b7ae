"""The action API on real PostgreSQL and Kafka: versions, events, history, conditional requests, auth."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from ti_shared.testing import bearer, publish_events, territory_event, wait_settled

from .conftest import Service, action_body, events_of, unique_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_life_of_an_action_versions_events_and_history(service: Service) -> None:
    client, admin = service.client, service.admin()
    action_id = unique_id("grist")
    body = action_body()

    created = await client.put(f"/v1/actions/{action_id}", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == 'W/"1"'
    assert created.json() == {
        **body,
        "id": action_id,
        "version": 1,
        "updated_at": created.json()["updated_at"],
        "deleted": False,
    }

    same = await client.put(f"/v1/actions/{action_id}", json={**body, "budget_eur": "120000"}, headers=admin)
    assert (same.status_code, same.json()["version"]) == (200, 1)

    done = await client.patch(
        f"/v1/actions/{action_id}",
        json={"status": "realise", "comment": "Première promotion diplômée"},
        headers={**admin, "Content-Type": "application/merge-patch+json"},
    )
    assert (done.status_code, done.json()["version"], done.json()["status"]) == (200, 2, "realise")
    retitled = await client.put(
        f"/v1/actions/{action_id}", json={**body, "status": "realise", "title": "Campus"}, headers=admin
    )
    assert retitled.json()["version"] == 3
    both = await client.put(
        f"/v1/actions/{action_id}", json={**body, "status": "en_pause", "partners": []}, headers=admin
    )
    assert both.json()["version"] == 4
    gone = await client.delete(f"/v1/actions/{action_id}", headers=admin)
    assert (gone.status_code, gone.json()["deleted"], gone.json()["version"]) == (200, True, 5)

    missing = await client.get(f"/v1/actions/{action_id}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert (await client.delete(f"/v1/actions/{action_id}", headers=admin)).status_code == 404
    assert (await client.patch(f"/v1/actions/{action_id}", json={"status": "amont"}, headers=admin)).status_code == 404
    listed = await client.get("/v1/actions", params={"territory_id": "ti-8402", "limit": 1000})
    assert action_id not in [a["id"] for a in listed.json()["items"]]

    history = (await client.get(f"/v1/actions/{action_id}/history")).json()["items"]
    assert [h["change"] for h in history] == ["created", "status_changed", "updated", "status_changed", "deleted"]
    assert history[1]["comment"] == "Première promotion diplômée"
    assert history[1]["changed_fields"] == ["status"]
    assert sorted(history[3]["changed_fields"]) == ["partners", "status", "title"]
    assert history[4]["state"]["deleted"] is True
    assert {h["actor"] for h in history} == {"anct-admin"}

    events = await events_of(service, action_id)
    assert [e["type"] for e in events] == [
        "fr.anct.ti.action.created.v1",
        "fr.anct.ti.action.status_changed.v1",
        "fr.anct.ti.action.updated.v1",
        "fr.anct.ti.action.status_changed.v1",
        "fr.anct.ti.action.deleted.v1",
    ]
    assert [e["entityversion"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["data"] for e in events] == [h["state"] for h in history]
    assert events[0]["source"] == "/services/action-tracker" and events[0]["tiactor"] == "anct-admin"
    assert events[4]["data"]["deleted"] is True and events[4]["data"]["status"] == "en_pause"

    again = await client.put(f"/v1/actions/{action_id}", json=body, headers=admin)
    assert (again.status_code, again.json()["version"], again.json()["deleted"]) == (201, 6, False)
    assert (await events_of(service, action_id))[-1]["type"] == "fr.anct.ti.action.created.v1"


async def test_conditional_requests(service: Service) -> None:
    client, admin = service.client, service.admin()
    action_id = unique_id()
    await client.put(f"/v1/actions/{action_id}", json=action_body(), headers=admin)

    got = await client.get(f"/v1/actions/{action_id}")
    assert got.headers["etag"] == 'W/"1"'
    assert (await client.get(f"/v1/actions/{action_id}", headers={"If-None-Match": 'W/"1"'})).status_code == 304
    assert (await client.get(f"/v1/actions/{action_id}", headers={"If-None-Match": 'W/"7"'})).status_code == 200

    stale = await client.put(
        f"/v1/actions/{action_id}", json=action_body(title="Autre"), headers={**admin, "If-Match": 'W/"9"'}
    )
    assert stale.status_code == 412
    assert (
        await client.patch(f"/v1/actions/{action_id}", json={"status": "amont"}, headers={**admin, "If-Match": '"3"'})
    ).status_code == 412
    assert (await client.delete(f"/v1/actions/{action_id}", headers={**admin, "If-Match": 'W/"2"'})).status_code == 412
    assert (await client.get(f"/v1/actions/{action_id}")).json()["version"] == 1
    fresh = await client.put(
        f"/v1/actions/{action_id}", json=action_body(title="Autre"), headers={**admin, "If-Match": 'W/"1"'}
    )
    assert (fresh.status_code, fresh.json()["version"]) == (200, 2)
    exists = await client.put(f"/v1/actions/{action_id}", json=action_body(), headers={**admin, "If-None-Match": "*"})
    assert exists.status_code == 412
    absent = await client.put(f"/v1/actions/{unique_id()}", json=action_body(), headers={**admin, "If-Match": 'W/"1"'})
    assert absent.status_code == 412
    assert len(await events_of(service, action_id)) == 2


async def test_post_with_idempotency_key(service: Service) -> None:
    client, admin = service.client, service.admin()
    body = action_body(title="Création d'un tiers-lieu industriel " + unique_id(), themes=["tiers_lieux"])
    first = await client.post("/v1/actions", json=body, headers={**admin, "Idempotency-Key": unique_id("key")})
    assert first.status_code == 201
    location = first.headers["location"]
    assert location == "/v1/actions/" + first.json()["id"]
    assert (await client.get(location)).json() == first.json()

    key = unique_id("key")
    one = await client.post("/v1/actions", json=body, headers={**admin, "Idempotency-Key": key})
    two = await client.post("/v1/actions", json=body, headers={**admin, "Idempotency-Key": key})
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json() == two.json() and two.headers["location"] == one.headers["location"]
    other = await client.post("/v1/actions", json={**body, "title": "Autre"}, headers={**admin, "Idempotency-Key": key})
    assert other.status_code == 422
    assert len(await events_of(service, one.json()["id"])) == 1
    assert (await client.post("/v1/actions", json={**body, "id": "mine"}, headers=admin)).status_code == 422


async def test_list_filters_and_pagination(service: Service) -> None:
    client, admin = service.client, service.admin()
    tag = unique_id("list")
    specs = [
        ("ti-1101", "foncier", ["sites_cles_en_main"], "amont"),
        ("ti-1101", "innovation", ["tiers_lieux", "usages_numeriques"], "en_cours"),
        ("ti-1101", "foncier", ["requalification_friche"], "realise"),
        ("ti-2705", "transition_ecologique", ["gestion_eau"], "en_cours"),
        ("ti-2705", "autre", [], "abandonne"),
    ]
    for i, (territory, axis, themes, status) in enumerate(specs):
        body = action_body(territory, axis=axis, themes=themes, status=status)
        assert (await client.put(f"/v1/actions/{tag}-{i}", json=body, headers=admin)).status_code == 201

    async def ids(**params: object) -> list[str]:
        response = await client.get("/v1/actions", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"] if a["id"].startswith(tag)]

    assert await ids(region_code="11") == [f"{tag}-0", f"{tag}-1", f"{tag}-2"]
    assert await ids(territory_id="ti-2705") == [f"{tag}-3", f"{tag}-4"]
    assert await ids(axis="foncier") == [f"{tag}-0", f"{tag}-2"]
    assert await ids(theme="usages_numeriques") == [f"{tag}-1"]
    assert await ids(status="en_cours") == [f"{tag}-1", f"{tag}-3"]
    assert await ids(region_code="11", status="realise", theme="requalification_friche") == [f"{tag}-2"]
    assert await ids(region_code="84", territory_id="ti-1101") == []

    # the themes follow the action's versions: changed, kept by a change of another field, removed
    moved = action_body("ti-2705", axis="autre", themes=["usages_numeriques", "gestion_eau"], status="abandonne")
    assert (await client.put(f"/v1/actions/{tag}-4", json=moved, headers=admin)).json()["version"] == 2
    assert await ids(theme="usages_numeriques") == [f"{tag}-1", f"{tag}-4"]
    assert await ids(theme="gestion_eau") == [f"{tag}-3", f"{tag}-4"]
    kept = await client.put(f"/v1/actions/{tag}-4", json={**moved, "status": "en_cours"}, headers=admin)
    assert kept.json()["version"] == 3 and await ids(theme="gestion_eau") == [f"{tag}-3", f"{tag}-4"]
    dropped = await client.put(f"/v1/actions/{tag}-4", json={**moved, "status": "en_cours", "themes": ["gestion_eau"]}, headers=admin)
    assert dropped.json()["version"] == 4
    assert await ids(theme="usages_numeriques") == [f"{tag}-1"] and await ids(theme="gestion_eau") == [f"{tag}-3", f"{tag}-4"]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/actions", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen)) and {f"{tag}-{i}" for i in range(5)} <= set(seen)

    for params, field in [
        ({"axis": "logistique"}, "axis"),
        ({"theme": "x"}, "theme"),
        ({"status": "fini"}, "status"),
        ({"region_code": "99"}, "region_code"),
        ({"territory_id": "8402"}, "territory_id"),
        ({"limit": 0}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
    ]:
        bad = await client.get("/v1/actions", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["errors"][0]["loc"] == ["query", field]


async def test_authorization(service: Service) -> None:
    client = service.client
    lead = service.lead("ti-8402", sub="lead-bourg")
    action_id = unique_id()

    assert (await client.put(f"/v1/actions/{action_id}", json=action_body("ti-8402"), headers=lead)).status_code == 201
    assert (
        await client.put(f"/v1/actions/{unique_id()}", json=action_body("ti-8403"), headers=lead)
    ).status_code == 403
    moved = await client.put(f"/v1/actions/{action_id}", json=action_body("ti-8403"), headers=lead)
    assert moved.status_code == 403
    assert (
        await client.patch(f"/v1/actions/{action_id}", json={"territory_id": "ti-8403"}, headers=lead)
    ).status_code == 403
    assert (await client.post("/v1/actions", json=action_body("ti-1101"), headers=lead)).status_code == 403

    other_lead = service.lead("ti-8403", sub="lead-other")
    assert (
        await client.patch(f"/v1/actions/{action_id}", json={"status": "amont"}, headers=other_lead)
    ).status_code == 403
    assert (await client.delete(f"/v1/actions/{action_id}", headers=other_lead)).status_code == 403
    both = service.lead("ti-8402", "ti-8403", sub="lead-both")
    assert (
        await client.patch(f"/v1/actions/{action_id}", json={"territory_id": "ti-8403"}, headers=both)
    ).status_code == 200

    no_token = await client.put(f"/v1/actions/{unique_id()}", json=action_body(), headers={})
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"].startswith("Bearer")
    assert (
        await client.put(f"/v1/actions/{unique_id()}", json=action_body(), headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    wrong_scope = bearer(service.platform, "site-owner", "sites:write", territories=["ti-8402"])
    assert (await client.put(f"/v1/actions/{unique_id()}", json=action_body(), headers=wrong_scope)).status_code == 403
    dated = await client.put(
        f"/v1/actions/{unique_id()}", json=action_body(), headers={**lead, "TI-Effective-At": "2024-01-01T00:00:00Z"}
    )
    assert dated.status_code == 403

    admin_write = await client.put(f"/v1/actions/{action_id}", json=action_body("ti-2705"), headers=service.admin())
    assert (admin_write.status_code, admin_write.json()["territory_id"]) == (200, "ti-2705")
    assert (await client.get(f"/v1/actions/{action_id}")).status_code == 200
    events = await events_of(service, action_id)
    assert [e["tiactor"] for e in events] == ["lead-bourg", "lead-both", "anct-admin"]


async def test_bad_input_changes_nothing(service: Service) -> None:
    client, admin = service.client, service.admin()
    action_id = unique_id("bad")
    cases = [
        ({"territory_id": "8402"}, ["body", "territory_id"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "x" * 301}, ["body", "title"]),
        ({"axis": "logistique"}, ["body", "axis"]),
        ({"themes": ["gestion_eau", "gestion_eau"]}, ["body", "themes"]),
        ({"themes": ["peinture"]}, ["body", "themes", 0]),
        ({"status": "fini"}, ["body", "status"]),
        ({"planned_start": "15/01/2024"}, ["body", "planned_start"]),
        ({"planned_start": "2024-02-30"}, ["body", "planned_start"]),
        ({"planned_start": "2024-06-01", "planned_end": "2024-01-01"}, ["body", "planned_end"]),
        ({"budget_eur": 12.5}, ["body", "budget_eur"]),
        ({"budget_eur": "12.345"}, ["body", "budget_eur"]),
        ({"budget_eur": "-5"}, ["body", "budget_eur"]),
        ({"partners": [""]}, ["body", "partners", 0]),
        ({"partners": "BPI"}, ["body", "partners"]),
        ({"colour": "blue"}, ["body", "colour"]),
        ({"id": "someone-else"}, ["body", "id"]),
        ({"territory_id": "ti-9999"}, ["body", "territory_id"]),
    ]
    for fields, loc in cases:
        response = await client.put(f"/v1/actions/{action_id}", json=action_body(**fields), headers=admin)
        assert response.status_code == 422, (fields, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert loc in [e["loc"] for e in response.json()["errors"]], (fields, response.json())
    missing_title = action_body()
    del missing_title["title"]
    assert (await client.put(f"/v1/actions/{action_id}", json=missing_title, headers=admin)).status_code == 422
    text = await client.put(
        f"/v1/actions/{action_id}", content=b"title=x", headers={**admin, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    broken = await client.put(
        f"/v1/actions/{action_id}", content=b"{", headers={**admin, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert (await client.put("/v1/actions/has%20space", json=action_body(), headers=admin)).status_code == 422
    assert (await client.put("/v1/actions/vocabulary", json=action_body(), headers=admin)).status_code == 422
    assert (await client.get(f"/v1/actions/{action_id}")).status_code == 404
    assert (await client.get(f"/v1/actions/{action_id}/history")).status_code == 404

    assert (await client.put(f"/v1/actions/{action_id}", json=action_body(), headers=admin)).status_code == 201
    for patch, loc in [
        ({"title": None}, ["body", "title"]),
        ({"planned_end": "2020-01-01"}, ["body", "planned_end"]),
        ({"nope": 1}, ["body", "nope"]),
    ]:
        response = await client.patch(f"/v1/actions/{action_id}", json=patch, headers=admin)
        assert response.status_code == 422 and loc in [e["loc"] for e in response.json()["errors"]], response.text
    assert (await client.get(f"/v1/actions/{action_id}")).json()["version"] == 1
    assert len(await events_of(service, action_id)) == 1


async def test_effective_at_for_history_loading(service: Service) -> None:
    client, admin = service.client, service.admin()
    action_id = unique_id("past")
    first = await client.put(
        f"/v1/actions/{action_id}",
        json=action_body(status="amont"),
        headers={**admin, "TI-Effective-At": "2023-11-09T09:00:00+01:00"},
    )
    assert first.status_code == 201 and first.json()["updated_at"] == "2023-11-09T08:00:00Z"
    second = await client.patch(
        f"/v1/actions/{action_id}",
        json={"status": "en_cours"},
        headers={**admin, "TI-Effective-At": "2024-05-01T00:00:00Z"},
    )
    assert second.json()["updated_at"] == "2024-05-01T00:00:00Z"
    earlier = await client.patch(
        f"/v1/actions/{action_id}",
        json={"status": "realise"},
        headers={**admin, "TI-Effective-At": "2024-01-01T00:00:00Z"},
    )
    assert earlier.status_code == 409
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert (
        await client.patch(
            f"/v1/actions/{action_id}", json={"status": "realise"}, headers={**admin, "TI-Effective-At": future}
        )
    ).status_code == 422
    events = await events_of(service, action_id)
    assert [e["time"] for e in events] == ["2023-11-09T08:00:00Z", "2024-05-01T00:00:00Z"]


async def test_territory_registered_after_a_refusal(service: Service) -> None:
    client, admin = service.client, service.admin()
    action_id = unique_id()
    refused = await client.put(f"/v1/actions/{action_id}", json=action_body("ti-7601"), headers=admin)
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "territory_id"]
    await publish_events(service.platform, [territory_event("ti-7601", "76")])
    await wait_settled(client)
    accepted = await client.put(f"/v1/actions/{action_id}", json=action_body("ti-7601"), headers=admin)
    assert accepted.status_code == 201
    listed = (await client.get("/v1/actions", params={"region_code": "76"})).json()["items"]
    assert [a["id"] for a in listed] == [action_id]


async def test_vocabulary_and_openapi(service: Service) -> None:
    vocabulary = (await service.client.get("/v1/actions/vocabulary")).json()
    assert len(vocabulary["axes"]) == 5 and len(vocabulary["themes"]) == 15 and len(vocabulary["statuses"]) == 7
    assert {"code": "en_pause", "label": "En pause / à débloquer"} in vocabulary["statuses"]
    openapi = (await service.client.get("/openapi.json")).json()
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            assert operation.get("summary"), (method, path)
    assert "text/csv" in openapi["paths"]["/v1/actions/plan-imports"]["post"]["requestBody"]["content"]


async def test_a_write_waits_for_the_action_locked_by_another_then_sees_its_version(service: Service) -> None:
    """The write's one read locks the action: a writer of version 1 waits while another transaction
    holds the row, then reads the version that one committed (412 for its If-Match), rather than
    failing its guarded update (409); the territory is looked up in the same read."""
    import asyncpg
    from ti_shared.outbox import asyncpg_dsn

    client, admin = service.client, service.admin()
    action_id = unique_id("race")
    assert (await client.put(f"/v1/actions/{action_id}", json=action_body(), headers=admin)).status_code == 201
    other = await asyncpg.connect(asyncpg_dsn(service.database_url))
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM action WHERE action_id = $1 FOR UPDATE", action_id)
        put = asyncio.create_task(
            client.put(f"/v1/actions/{action_id}", json=action_body(title="Autre"), headers={**admin, "If-Match": 'W/"1"'})
        )
        await asyncio.sleep(0.5)
        assert not put.done(), "the write did not wait for the lock"
        await other.execute("UPDATE action SET version = 2 WHERE action_id = $1", action_id)
        await transaction.commit()
        answer = await asyncio.wait_for(put, 10)
        assert answer.status_code == 412, answer.text
    finally:
        await other.close()
    for target in (unique_id("new"), action_id):  # a new action, and one moved there
        unknown = await client.put(f"/v1/actions/{target}", json=action_body("ti-9999"), headers=admin)
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["errors"][0]["loc"] == ["body", "territory_id"]
