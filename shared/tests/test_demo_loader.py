"""The loader's request handling, against an in-memory transport (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from ti_demo.generator import Write
from ti_demo.loader import Endpoints, Loader, LoadError, _raise_if_errors

AT = datetime(2024, 6, 3, 9, 30, tzinfo=UTC)


def plan_import(territory_id: str) -> Write:
    row = {"action_id": f"{territory_id}-A001", "title": "Atelier partagé", "description": None, "axis": "innovation",
           "themes": ["tiers_lieux", "usages_numeriques"], "status": "en_cours", "planned_start": "2024-01-01",
           "planned_end": None, "budget_eur": "5000.00", "partners": ["CCI"]}
    path = f"/v1/actions/plan-imports?territory_id={territory_id}&mode=atomic"
    return Write("action-tracker", "POST", path, {"territory_id": territory_id, "actions": [row]}, AT, territory_id, "text/csv")


async def test_loader_sends_admin_writes_with_their_instant_and_retries() -> None:
    seen: list[httpx.Request] = []
    answers = {"ti-8401": [503, 200], "ti-8402": [409], "ti-8403": [422]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        territory = request.url.params["territory_id"]
        status = answers[territory].pop(0)
        headers = {"Retry-After": "0"} if status == 503 else {}
        return httpx.Response(status, json={"status": status}, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://demo") as client:
        loader = Loader(client, Endpoints.single("http://demo"), "tok", concurrency=2)
        await loader.apply_rounds("actions", [plan_import("ti-8401"), plan_import("ti-8402"), plan_import("ti-8403")])

    assert len(seen) == 4  # one retry after the 503
    first = seen[0]
    assert first.headers["authorization"] == "Bearer tok"
    assert first.headers["ti-effective-at"] == "2024-06-03T09:30:00Z"
    assert first.headers["content-type"] == "text/csv"
    assert first.headers["idempotency-key"].startswith("ti-demo-")
    body = first.content.decode()
    assert body.splitlines()[1].startswith("ti-840") and "tiers_lieux|usages_numeriques" in body
    retried = [r for r in seen if r.url.params["territory_id"] == "ti-8401"]
    assert retried[0].headers["idempotency-key"] == retried[1].headers["idempotency-key"]
    assert loader.report.superseded == 1  # 409: a later version is already there
    assert len(loader.report.errors) == 1 and "ti-8403" in loader.report.errors[0]
    with pytest.raises(LoadError, match="1 demo write"):
        _raise_if_errors(loader.report)


async def test_rejected_batch_rows_are_reported() -> None:
    items = [{"operator": "ADEME", "operator_ref": "FV-1"}, {"operator": "ADEME", "operator_ref": "FV-2"}]
    batch = Write("funding-ledger", "POST", "/v1/grant-batches", {"items": items, "mode": "partial"}, AT, "batch")

    def handler(request: httpx.Request) -> httpx.Response:
        rows = [{"row": 1, "outcome": "created"}, {"row": 2, "outcome": "rejected", "errors": [{"loc": ["amount_eur"], "msg": "must be greater than 0"}]}]
        return httpx.Response(201, json={"rows": rows})

    progress: list[int] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        loader = Loader(client, Endpoints.single("http://demo"), "tok", advance=lambda _phase, n: progress.append(n))
        await loader.apply_batches("grants", [batch])
    assert loader.report.grants_rejected == 1
    assert "FV-2" in loader.report.errors[0] and "amount_eur" in loader.report.errors[0]
    assert progress == [2]


async def test_a_site_inventory_goes_as_one_cnig_file_and_its_rejected_rows_are_errors() -> None:
    site = {"id": "80021_SITE-ECO_00001", "name": "Zone d'activités d'Amiens", "commune_insee": "80021", "territory_id": "ti-3201",
            "area_ha": "12.50", "maturity": "ready", "land_recycling": True, "labelled_on": "2024-04-15", "workshop_held": True,
            "roadmap_delivered": False, "owner_kind": "collectivite", "status": "labelled",
            "cnig": {"site_type": "zone d'activité économique", "site_evol_urba": "renouvellement urbain", "site_moa_type": "epci"}}
    file = Write("site-catalog", "POST", "/v1/sites/imports?mode=atomic", {"sites": [site, {**site, "id": "S-2"}]}, AT, "sites", "text/csv")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        rows = [{"row": 2, "outcome": "created"}, {"row": 3, "outcome": "rejected", "errors": [{"column": "site_id", "msg": "bad"}]}]
        return httpx.Response(201, json={"rows": rows})

    progress: list[int] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        loader = Loader(client, Endpoints.single("http://demo"), "tok", advance=lambda _phase, n: progress.append(n))
        await loader.apply_files("sites", [file], "sites")
    lines = seen[0].content.decode().splitlines()
    assert lines[0].startswith("site_id;site_nom;site_type;site_surf_brute;site_evol_urba")
    assert lines[1] == (
        "80021_SITE-ECO_00001;Zone d'activités d'Amiens;zone d'activité économique;12,50;renouvellement urbain;80021;epci;"
        "ready;15/04/2024;oui;non;ti-3201"
    )
    assert seen[0].headers["content-type"] == "text/csv" and seen[0].headers["idempotency-key"].startswith("ti-demo-")
    assert progress == [2] and len(loader.report.errors) == 1 and "row 3 rejected" in loader.report.errors[0]


def test_distributed_endpoints_route_each_service_to_its_port() -> None:
    endpoints = Endpoints.distributed("10.0.0.5")
    assert endpoints.url("funding-ledger") == "http://10.0.0.5:8003"
    assert endpoints.url("reporting") == "http://10.0.0.5:8005"
    assert len(endpoints.all()) == 5
    assert Endpoints.single("http://x:8000/").all() == ["http://x:8000"]
