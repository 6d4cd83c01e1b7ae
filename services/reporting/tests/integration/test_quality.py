"""``GET /v1/quality`` on real PostgreSQL and Kafka: each territory's plan freshness, incomplete
actions and grants and project lead, current and as of an instant; the sort; the dashboard page and
``ti quality``'s table."""

from __future__ import annotations

from typing import Any

import pytest
from reporting.main import create_app
from reporting.quality.cli import table
from ti_shared.testing import (
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

LEAD = {"in_post": True, "cofinanced": True, "name": "Cheffe", "email": "cheffe@example.org"}


def action(aid: str, territory: str, time: str, *, version: int = 1, status: str = "en_cours",
           themes: tuple[str, ...] = ("tiers_lieux",), budget: str | None = "1000.00") -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": f"{aid}-{version}", "source": "/services/action-tracker",
        "type": "fr.anct.ti.action." + ("created" if version == 1 else "updated") + ".v1", "subject": aid, "time": time,
        "datacontenttype": "application/json", "entityversion": version, "tiactor": "tester",
        "data": {"id": aid, "territory_id": territory, "title": aid, "description": "", "axis": "foncier",
                 "themes": list(themes), "status": status, "planned_start": None, "planned_end": None,
                 "budget_eur": budget, "partners": [], "version": version, "updated_at": time},
    }


def grant(ref: str, territory: str | None, commune: str | None, time: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": f"g-{ref}", "source": "/services/funding-ledger", "type": "fr.anct.ti.grant.committed.v1",
        "subject": f"ADEME/{ref}", "time": time, "datacontenttype": "application/json", "entityversion": 1, "tiactor": "tester",
        "data": {"operator": "ADEME", "operator_ref": ref, "programme": "fonds_vert_ti_te", "status": "committed",
                 "territory_id": territory, "commune_insee": commune, "amount_eur": "1000.00", "version": 1, "updated_at": time},
    }


def site(site_id: str, territory: str | None, commune: str = "29019") -> dict[str, Any]:
    time = "2024-04-15T10:00:00Z"
    return {
        "specversion": "1.0", "id": f"s-{site_id}", "source": "/services/site-catalog", "type": "fr.anct.ti.site.labelled.v1",
        "subject": site_id, "time": time, "datacontenttype": "application/json", "entityversion": 1, "tiactor": "tester",
        "data": {"id": site_id, "name": site_id, "commune_insee": commune, "territory_id": territory, "area_ha": "10.00",
                 "maturity": "ready", "land_recycling": False, "labelled_on": "2024-04-15", "workshop_held": True,
                 "roadmap_delivered": False, "owner_kind": "entreprise", "status": "labelled", "version": 1, "updated_at": time},
    }


EVENTS = [
    territory_event("ti-5301", "53", time="2024-01-10T10:00:00Z", project_lead=LEAD),
    territory_event("ti-5302", "53", time="2024-01-10T10:00:00Z"),
    territory_event("ti-8401", "84", time="2024-01-10T10:00:00Z", project_lead=LEAD),
    action("A1", "ti-5301", "2024-02-01T10:00:00Z"),
    action("A2", "ti-5301", "2024-02-01T10:00:00Z", status="non_renseigne", themes=(), budget=None),
    action("A1", "ti-5301", "2024-10-01T10:00:00Z", version=2, status="realise"),  # the plan's latest change
    action("B1", "ti-5302", "2024-01-20T10:00:00Z"),
    action("C1", "ti-8401", "2024-11-01T10:00:00Z"),
    grant("G1", "ti-5301", "29019"), grant("G2", "ti-5301", None), grant("G3", None, "35238"),
    site("S1", "ti-5301"), site("S2", None),
]


async def test_quality_per_territory_current_and_as_of() -> None:
    url = await create_database("reporting_quality")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    try:
        await publish_events(platform, EVENTS)
        app = create_app(service_settings("reporting", url, platform))
        async with running(app) as client:
            await wait_settled(client, 60)

            async def counted() -> bool:
                return bool((await client.get("/v1/indicators")).json()["indicators"]["sites.count"] == 2)

            await wait_until(counted, 60)
            response = await client.get("/v1/quality", params={"scope": "region:53", "as_of": "2024-11-30"})
            assert response.status_code == 200, response.text
            report = response.json()
            assert (report["scope"], report["as_of"], report["rhythm_months"], report["sort"]) == ("region:53", "2024-11-30", 6, "score")
            by_id = {q["territory_id"]: q for q in report["items"]}
            assert list(by_id) == ["ti-5302", "ti-5301"]  # worst score first
            first, second = by_id["ti-5301"], by_id["ti-5302"]
            assert first["plan_updated_at"] == "2024-10-01T10:00:00Z" and not first["plan_stale"]
            assert first["actions"] == {"count": 2, "non_renseigne": 1, "non_renseigne_share": 0.5, "without_theme": 1,
                                        "without_budget": 1}
            assert first["grants"] == {"count": 2, "without_commune": 1} and first["sites"] == {"count": 1}
            assert first["project_lead_in_post"] and first["score"] == 75.0
            assert second["plan_stale"] and not second["project_lead_in_post"]
            assert report["summary"] == {"territories": 2, "plans_stale": 1, "without_project_lead": 1,
                                         "grants_without_territory": 1, "grants_without_commune": 1,
                                         "sites_without_territory": 1, "mean_score": round((75.0 + second["score"]) / 2, 1)}

            # as of an earlier instant: the states then (A1 not yet changed), judged at that instant
            earlier = (await client.get("/v1/quality", params={"scope": "region:53", "as_of": "2024-03-01"})).json()
            old = {q["territory_id"]: q for q in earlier["items"]}
            assert old["ti-5301"]["plan_updated_at"] == "2024-02-01T10:00:00Z" and not old["ti-5302"]["plan_stale"]
            assert earlier["summary"]["grants_without_commune"] == 0  # the grants came later
            # the rhythm is a parameter; the national list sorts
            yearly = (await client.get("/v1/quality", params={"scope": "region:53", "as_of": "2024-11-30", "rhythm_months": 12})).json()
            assert not any(q["plan_stale"] for q in yearly["items"])
            national = (await client.get("/v1/quality", params={"sort": "-score"})).json()
            scores = [q["score"] for q in national["items"]]
            assert scores == sorted(scores, reverse=True) and len(scores) == 3
            by_plan = (await client.get("/v1/quality", params={"sort": "plan_updated_at"})).json()["items"]
            assert [q["territory_id"] for q in by_plan] == ["ti-5302", "ti-5301", "ti-8401"]
            single = (await client.get("/v1/quality", params={"scope": "territory:ti-8401"})).json()
            assert [q["territory_id"] for q in single["items"]] == ["ti-8401"]

            for params, status in (({"scope": "nation"}, 422), ({"scope": "region:99"}, 404), ({"scope": "territory:ti-9999"}, 404),
                                   ({"as_of": "2024-13-01"}, 422), ({"sort": "name"}, 422), ({"rhythm_months": 0}, 422)):
                assert (await client.get("/v1/quality", params=params)).status_code == status, params

            page = await client.get("/dashboard/quality", params={"scope": "region:53", "as_of": "2024-11-30"})
            assert page.status_code == 200, page.text
            for q in report["items"]:
                assert f'data-territory="{q["territory_id"]}" data-score=\'{q["score"]}\'' in page.text
            printed = table(report)
            assert printed.splitlines()[1].startswith("ti-5302") and "2 territories, 1 plans older than 6 months" in printed
    finally:
        await drop_database(url)
