"""Frozen editions on real PostgreSQL and Kafka: an edition keeps its indicators, HTML and PDF byte
for byte across later events, back-dated ones and a full rebuild; sign-offs; who may do what."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from reporting.main import create_app
from ti_shared.settings import PlatformSettings
from ti_shared.testing import (
    bearer,
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    publish_events,
    running,
    service_settings,
    territory_event,
    wait_settled,
    wait_until,
)

pytestmark = pytest.mark.integration

AS_OF = "2024-06-30"


def action_event(action_id: str, territory_id: str, *, version: int = 1, status: str = "en_cours",
                 time_: str = "2024-03-01T10:00:00Z", axis: str = "foncier") -> dict[str, Any]:
    change = "created" if version == 1 else "status_changed"
    return {
        "specversion": "1.0", "id": f"{action_id}-v{version}", "source": "/services/action-tracker",
        "type": f"fr.anct.ti.action.{change}.v1", "subject": action_id, "time": time_,
        "datacontenttype": "application/json", "entityversion": version, "tiactor": "tester",
        "data": {"id": action_id, "territory_id": territory_id, "title": f"Action {action_id}", "description": "",
                 "axis": axis, "themes": ["tiers_lieux"], "status": status, "planned_start": None, "planned_end": None,
                 "budget_eur": "1000.00", "partners": [], "version": version, "updated_at": time_},
    }


def first_events() -> list[dict[str, Any]]:
    return [
        territory_event("ti-5301", "53", time="2024-01-10T10:00:00Z"),
        territory_event("ti-5302", "53", time="2024-01-10T10:00:00Z"),
        territory_event("ti-8401", "84", time="2024-01-10T10:00:00Z"),
        action_event("A-1", "ti-5301"),
        action_event("A-2", "ti-5301", status="amont"),
        action_event("A-3", "ti-5302", axis="innovation"),
        action_event("A-4", "ti-8401"),
    ]


async def settled_with(client: httpx.AsyncClient, actions: int) -> None:
    """Settled, and every action counted (a consumer still joining the topics reports no lag yet)."""
    async def counted() -> bool:
        national = (await client.get("/v1/indicators")).json()["indicators"]
        return bool(national["actions.count"] == actions)

    await wait_settled(client, 60)
    await wait_until(counted, 60)


async def parts(client: httpx.AsyncClient, href: str) -> dict[str, bytes]:
    out = {}
    for name, path in (("indicators", "/indicators"), ("html", "/bilan?format=html"), ("pdf", "/bilan?format=pdf")):
        response = await client.get(href + path)
        assert response.status_code == 200, response.text
        out[name] = response.content
    return out


async def restatements(
    client: httpx.AsyncClient, href: str, now: dict[str, Any], published: dict[str, Any]
) -> dict[tuple[str, str], Any]:
    """The restatements of the edition, checked against the published and current documents."""
    response = await client.get(href + "/restatements")
    assert response.status_code == 200, response.text
    items = {(i["code"], i["key"]): i for i in response.json()["items"]}
    expected = {
        ("actions.count", ""): ["A-6"],
        ("actions.by_axis", "innovation"): ["A-6"],
        ("actions.by_status", "amont"): ["A-2"],
        ("actions.by_status", "realise"): ["A-2"],
        ("actions.by_status", "en_cours"): ["A-6"],
        ("actions.by_theme", "tiers_lieux"): ["A-6"],
    }
    for figure, subjects in expected.items():
        item = items[figure]
        code, key = figure
        value_now = now[code][key] if key else now[code]
        value_published = published[code][key] if key else published[code]
        assert (item["published"], item["now"]) == (value_published, value_now) != (value_now, value_now), figure
        assert [e["subject"] for e in item["events"]] == subjects, figure
    a2 = items[("actions.by_status", "realise")]["events"][0]
    assert (a2["entity"], a2["published_version"], a2["version"], a2["time"]) == ("action", 1, 2, "2024-05-02T10:00:00Z")
    assert items[("actions.count", "")]["events"][0]["published_version"] is None
    # shares move with the counts; nothing else changed (A-5 is after the edition, A-9 in another region)
    assert set(items) - set(expected) <= {("actions.by_axis_share", k) for k in ("foncier", "innovation")} | {
        ("actions.by_status_share", k) for k in ("amont", "realise", "en_cours")}
    return items


class Elements(HTMLParser):
    """The elements carrying data attributes or a class, with the text inside each (a page's structure
    read with the standard library)."""

    VOID = frozenset({"br", "img", "input", "link", "meta", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[dict[str, str], str]] = []
        self._open: list[tuple[dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self._open.append(({k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._open:
            attrs, text = self._open.pop()
            self.found.append((attrs, "".join(text)))
            if self._open:
                self._open[-1][1].extend(text)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)

    def text_of(self, css_class: str) -> str:
        return next(text for attrs, text in self.found if css_class in attrs.get("class", "").split())


async def dashboard_pages(client: httpx.AsyncClient, edition_id: str, restated: dict[tuple[str, str], Any]) -> None:
    """The dashboard lists the edition and shows it with a notice and every restated figure."""
    listed = await client.get("/dashboard/editions")
    assert listed.status_code == 200 and f'data-edition="{edition_id}"' in listed.text
    page = await client.get(f"/dashboard/editions/{edition_id}")
    assert page.status_code == 200, page.text
    elements = Elements()
    elements.feed(page.text)
    notice = elements.text_of("fr-notice__title")
    assert f"{len(restated)} chiffres de cette édition ont été rectifiés" in notice
    rows = {(a["data-code"], a["data-key"]): (a, text) for a, text in elements.found if "ti-restatement" in a.get("class", "")}
    assert set(rows) == set(restated)
    for figure, item in restated.items():
        attrs, text = rows[figure]
        assert (json.loads(attrs["data-published"]), json.loads(attrs["data-now"])) == (item["published"], item["now"])
        assert all(e["subject"] in text for e in item["events"])
    # the figures shown are the edition's, as published
    shown = {(a["data-code"], a["data-key"]): json.loads(a["data-value"]) for a, _ in elements.found if "data-value" in a}
    assert shown[("actions.by_status", "realise")] == 0 and shown[("actions.count", "")] == 3
    assert (await client.get("/dashboard/editions/nope")).status_code == 404


async def rebuild(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    started = await client.post("/v1/indicators/rebuild", headers=admin)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = (await client.get("/v1/indicators/rebuild")).json()
        if status["state"] != "running":
            assert status["state"] == "done", status
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the rebuild did not finish")


async def check_refusals(client: httpx.AsyncClient, platform: PlatformSettings, admin: dict[str, str]) -> None:
    body = {"name": "Bilan", "scope": "region:53", "as_of": AS_OF}
    assert (await client.post("/v1/reports/editions", json=body)).status_code == 401
    lead = bearer(platform, "lead-5301", "actions:write", territories=["ti-5301"])
    assert (await client.post("/v1/reports/editions", json=body, headers=lead)).status_code == 403
    for field, value in (("scope", "nation"), ("as_of", "2024-13-01"), ("as_of", "2999-01-01"), ("name", "")):
        refused = await client.post("/v1/reports/editions", json={**body, field: value}, headers=admin)
        assert refused.status_code == 422, (field, value, refused.text)
        assert refused.json()["errors"][0]["loc"] == ["body", field]
    unknown = await client.post("/v1/reports/editions", json={**body, "scope": "territory:ti-9999"}, headers=admin)
    assert unknown.status_code == 404, unknown.text
    assert (await client.get("/v1/reports/editions/nope")).status_code == 404
    assert (await client.get("/v1/reports/editions")).json()["items"] == []  # nothing refused was kept


async def test_an_edition_stays_byte_identical_after_later_events_and_a_rebuild() -> None:
    url = await create_database("reporting_editions")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    events = first_events()
    try:
        await publish_events(platform, events)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await settled_with(client, 4)
            admin = bearer(platform, "anct-admin", "admin")
            await check_refusals(client, platform, admin)

            body = {"name": "Bilan Bretagne, juin 2024", "scope": "region:53", "as_of": AS_OF}
            created = await client.post("/v1/reports/editions", json=body, headers=admin | {"Idempotency-Key": "ed-1"})
            assert created.status_code == 201, created.text
            edition = created.json()
            href = created.headers["location"]
            assert href == f"/v1/reports/editions/{edition['id']}"
            replayed = await client.post("/v1/reports/editions", json=body, headers=admin | {"Idempotency-Key": "ed-1"})
            assert replayed.json()["id"] == edition["id"]
            assert (edition["scope"], edition["as_of"], edition["frozen_by"], edition["final"]) == ("region:53", AS_OF, "anct-admin", False)
            assert edition["territories"] == ["ti-5301", "ti-5302"]
            assert sum(s["events"] for s in edition["sources"]) == len(events)
            assert {s["topic"] for s in edition["sources"]} == {"ti.territories", "ti.actions"}

            frozen = await parts(client, href)
            assert frozen["pdf"].startswith(b"%PDF")
            assert b"Bilan" in frozen["html"]
            for name, data in frozen.items():
                assert edition["parts"][name]["sha256"] == hashlib.sha256(data).hexdigest()
                assert edition["parts"][name]["bytes"] == len(data)
            digests = "".join(hashlib.sha256(frozen[n]).hexdigest() + "\n" for n in ("indicators", "html", "pdf"))
            assert edition["content_hash"] == hashlib.sha256(digests.encode()).hexdigest()
            document = await client.get("/v1/indicators", params={"scope": "region:53", "as_of": AS_OF})
            frozen_document = httpx.Response(200, content=frozen["indicators"]).json()
            assert document.json()["indicators"] == edition["indicators"]["indicators"] == frozen_document["indicators"]
            assert frozen_document["indicators"]["actions.count"] == 3
            etag = (await client.get(href + "/indicators")).headers["etag"]
            assert (await client.get(href + "/indicators", headers={"If-None-Match": etag})).status_code == 304

            assert (await client.get(href + "/restatements")).json()["items"] == []

            # later events: a current one, and back-dated ones that change figures as of the edition
            later = [
                action_event("A-5", "ti-5302", time_="2025-02-01T10:00:00Z"),
                action_event("A-2", "ti-5301", version=2, status="realise", time_="2024-05-02T10:00:00Z"),
                action_event("A-6", "ti-5302", axis="innovation", time_="2024-04-01T10:00:00Z"),
                action_event("A-9", "ti-8401", time_="2024-04-01T10:00:00Z"),  # another region
            ]
            await publish_events(platform, later)
            await settled_with(client, 7)
            now = (await client.get("/v1/indicators", params={"scope": "region:53", "as_of": AS_OF})).json()
            assert now["indicators"]["actions.by_status"]["realise"] == 1
            assert edition["indicators"]["indicators"]["actions.by_status"]["realise"] == 0
            assert await parts(client, href) == frozen
            assert (await client.get(href)).json()["indicators"] == edition["indicators"]
            restated = await restatements(client, href, now["indicators"], frozen_document["indicators"])

            await dashboard_pages(client, edition["id"], restated)

            await rebuild(client, admin)
            assert await parts(client, href) == frozen
            # a second rebuild drops every generation but the live one first: the edition outlives them
            await rebuild(client, admin)
            assert await parts(client, href) == frozen
            assert await restatements(client, href, now["indicators"], frozen_document["indicators"]) == restated

            # sign-offs: the project lead of a covered territory, then an admin (final)
            lead = bearer(platform, "lead-5301", "actions:write", territories=["ti-5301", "ti-8401"])
            signs = href + "/sign-offs"
            assert (await client.post(signs, json={"territory_id": "ti-5302"}, headers=lead)).status_code == 403
            assert (await client.post(signs, json={"territory_id": "ti-8401"}, headers=lead)).status_code == 422
            assert (await client.post(signs, json={}, headers=lead)).status_code == 422
            signed = await client.post(signs, json={"territory_id": "ti-5301", "comment": "Vu"}, headers=lead)
            assert signed.status_code == 201, signed.text
            assert signed.json()["role"] == "territory_lead" and signed.json()["actor"] == "lead-5301"
            again = await client.post(signs, json={"territory_id": "ti-5301"}, headers=lead)
            assert again.status_code == 200 and again.json()["signed_at"] == signed.json()["signed_at"]
            assert (await client.post(signs, json={"territory_id": "ti-5301"}, headers=admin)).status_code == 422
            final = await client.post(signs, json={}, headers=admin)
            assert final.status_code == 201 and final.json()["role"] == "admin"
            assert (await client.post(signs, json={}, headers=admin)).status_code == 409
            shown = (await client.get(href)).json()
            assert shown["final"] and shown["final_at"] == final.json()["signed_at"]
            assert [(s["role"], s["territory_id"], s["actor"]) for s in shown["sign_offs"]] == [
                ("territory_lead", "ti-5301", "lead-5301"), ("admin", None, "anct-admin"),
            ]
            assert await parts(client, href) == frozen  # signing changes no frozen byte
            for accept, part in (("text/html,application/xhtml+xml,*/*;q=0.8", "html"), ("application/pdf", "pdf")):
                negotiated = await client.get(href, headers={"Accept": accept})
                assert negotiated.content == frozen[part], accept

            listed = (await client.get("/v1/reports/editions")).json()
            assert [(e["id"], e["final"]) for e in listed["items"]] == [(edition["id"], True)]
    finally:
        await drop_database(url)
