"""Clients generated from the OpenAPI documents just work: openapi-python-client generates each service's
client (once per document, kept under var/openapi-clients/), and the client, unedited, drives a short
scenario against the service on real PostgreSQL and Kafka — a write, a conditional write, an error it
parses as ProblemDetails, a typed list — every response also checked against the document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from ti_shared.auth import mint_token
from ti_shared.embedded import load_service_app
from ti_shared.openapi import documents
from ti_shared.testing import (
    ResponseValidator,
    create_database,
    create_topics,
    drop_database,
    generated_client,
    new_topic_prefix,
    platform_settings,
    publish_events,
    territory_event,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Callable[..., Any], str]]:
    """(the generated client package, a factory of its clients on the running service, an admin token)."""
    name: str = request.param
    prefix = new_topic_prefix()
    await create_topics(prefix)
    url = await create_database(name.replace("-", "_")[:12])
    platform = platform_settings(topic_prefix=prefix)
    app = load_service_app(name, platform, url)
    package = generated_client(app.openapi(), "ti_client_" + name.replace("-", "_"))
    validator = ResponseValidator.of(app.openapi())

    def client(token: str | None = None) -> Any:
        """The generated client, unedited, on the in-process service; every response checked too."""
        args = {"transport": httpx.ASGITransport(app=app), "event_hooks": {"response": [validator]}}
        if token is None:
            return package.Client(base_url="http://test", httpx_args=args)
        return package.AuthenticatedClient(base_url="http://test", token=token, httpx_args=args)

    try:
        async with app.router.lifespan_context(app):
            if name != "territory-registry" and name != "reporting":  # they check territories against their replica
                await publish_events(platform, [territory_event(t, t[3:5]) for t in ("ti-9303", "ti-8402", "ti-2705")])
            yield package, client, mint_token(platform, sub="integrator", scopes=["admin"])
    finally:
        await drop_database(url)


TERRITORY = {
    "name": "Bassin de Bourg-en-Bresse", "region_code": "84", "departement_codes": ["01"],
    "epcis": [{"siren": "200071751", "name": "CA du Bassin de Bourg-en-Bresse"}], "phase": "temps-2",
    "labelled_on": "2023-11-09", "project_lead": None, "launch_copil_held_on": None, "status": "active",
}


@pytest.mark.parametrize("service", ["territory-registry"], indirect=True)
async def test_territory_registry_client(service: tuple[Any, Callable[..., Any], str]) -> None:
    _, make_client, token = service
    from ti_client_territory_registry.api.reference import list_regions
    from ti_client_territory_registry.api.territories import get_territory, list_territories, put_territory
    from ti_client_territory_registry.models import PageTerritory, ProblemDetails, Region, Territory, TerritoryFields

    client = make_client(token)
    created = await put_territory.asyncio_detailed("ti-8402", client=client, body=TerritoryFields.from_dict(TERRITORY))
    assert created.status_code == 201 and isinstance(created.parsed, Territory) and created.parsed.version == 1
    etag = created.headers["etag"]
    renamed = TerritoryFields.from_dict({**TERRITORY, "name": "Bourg-en-Bresse"})
    updated = await put_territory.asyncio_detailed("ti-8402", client=client, body=renamed, if_match=etag)
    assert updated.status_code == 200 and isinstance(updated.parsed, Territory) and updated.parsed.version == 2
    stale = await put_territory.asyncio_detailed("ti-8402", client=client, body=TerritoryFields.from_dict(TERRITORY), if_match=etag)
    assert stale.status_code == 412 and isinstance(stale.parsed, ProblemDetails) and stale.parsed.status == 412
    unchanged = await get_territory.asyncio_detailed("ti-8402", client=client, if_none_match=updated.headers["etag"])
    assert unchanged.status_code == 304
    missing = await get_territory.asyncio_detailed("ti-9999", client=client)
    assert isinstance(missing.parsed, ProblemDetails) and missing.parsed.status == 404
    anonymous = make_client()
    refused = await put_territory.asyncio_detailed("ti-8403", client=anonymous, body=TerritoryFields.from_dict(TERRITORY))
    assert refused.status_code == 401 and isinstance(refused.parsed, ProblemDetails)
    page = await list_territories.asyncio(client=anonymous, region_code="84")
    assert isinstance(page, PageTerritory) and [t.id for t in page.items] == ["ti-8402"] and all(isinstance(t, Territory) for t in page.items)
    regions = await list_regions.asyncio(client=anonymous)
    assert isinstance(regions, list) and len(regions) == 18 and all(isinstance(r, Region) for r in regions)


@pytest.mark.parametrize("service", ["reporting"], indirect=True)
async def test_reporting_client(service: tuple[Any, Callable[..., Any], str]) -> None:
    _, make_client, _ = service
    from ti_client_reporting.api.indicators import get_catalogue, get_indicators
    from ti_client_reporting.models import Catalogue, IndicatorsDocument, ProblemDetails

    client = make_client()
    national = await get_indicators.asyncio_detailed(client=client, scope="national")
    assert national.status_code == 200 and isinstance(national.parsed, IndicatorsDocument)
    assert national.parsed.scope == "national"
    again = await get_indicators.asyncio_detailed(client=client, scope="national", if_none_match=national.headers["etag"])
    assert again.status_code == 304
    wrong = await get_indicators.asyncio_detailed(client=client, scope="planet:earth")
    assert wrong.status_code == 422 and isinstance(wrong.parsed, ProblemDetails) and wrong.parsed.errors
    catalogue = await get_catalogue.asyncio(client=client)
    assert isinstance(catalogue, Catalogue)


SITE = {
    "name": "Port fluvial d'Arles", "commune_insee": "13004", "territory_id": "ti-9303", "area_ha": "25.00",
    "maturity": "ready", "land_recycling": True, "labelled_on": "2024-04-15", "workshop_held": True,
    "roadmap_delivered": False, "owner_kind": "entreprise", "status": "labelled",
}


async def _once_replicated(write: Callable[[], Any]) -> Any:
    """The first answer of ``write`` that is not the 422 of a territory the replica has not received yet."""
    answers: list[Any] = []

    async def accepted() -> bool:
        answers.append(await write())
        return bool(answers[-1].status_code != 422)

    await wait_until(accepted, timeout_s=30, interval_s=0.2)
    return answers[-1]


@pytest.mark.parametrize("service", ["site-catalog"], indirect=True)
async def test_site_catalog_client(service: tuple[Any, Callable[..., Any], str]) -> None:
    _, make_client, token = service
    from ti_client_site_catalog.api.sites import get_site, list_sites, put_site
    from ti_client_site_catalog.models import PageSiteResource, ProblemDetails, SiteBody, SiteResource

    client = make_client(token)
    site_id = "13004_SITE-ECO_00001"
    created = await _once_replicated(lambda: put_site.asyncio_detailed(site_id, client=client, body=SiteBody.from_dict(SITE)))
    assert created.status_code == 201 and isinstance(created.parsed, SiteResource) and created.parsed.version == 1
    bigger = SiteBody.from_dict({**SITE, "area_ha": "30.00"})
    updated = await put_site.asyncio_detailed(site_id, client=client, body=bigger, if_match=created.headers["etag"])
    assert updated.status_code == 200 and isinstance(updated.parsed, SiteResource) and updated.parsed.area_ha == "30.00"
    stale = await put_site.asyncio_detailed(site_id, client=client, body=SiteBody.from_dict(SITE), if_match=created.headers["etag"])
    assert stale.status_code == 412 and isinstance(stale.parsed, ProblemDetails)
    invalid = await put_site.asyncio_detailed(site_id, client=client, body=SiteBody.from_dict({**SITE, "commune_insee": "20000"}))
    assert invalid.status_code == 422 and isinstance(invalid.parsed, ProblemDetails) and invalid.parsed.errors
    public = make_client()
    page = await list_sites.asyncio(client=public)
    assert isinstance(page, PageSiteResource) and [s.id for s in page.items] == [site_id]
    assert isinstance(await get_site.asyncio(site_id, client=public), SiteResource)


ACTION = {
    "territory_id": "ti-8402", "title": "Campagne de découverte des métiers", "description": "Visites d'entreprises",
    "axis": "competences_attractivite", "themes": ["nouvelles_formations"], "status": "en_cours",
    "planned_start": "2024-01-15", "planned_end": None, "budget_eur": "120000.00", "partners": ["BPI"],
}


@pytest.mark.parametrize("service", ["action-tracker"], indirect=True)
async def test_action_tracker_client(service: tuple[Any, Callable[..., Any], str]) -> None:
    _, make_client, token = service
    from ti_client_action_tracker.api.actions import get_action, list_actions, patch_action, put_action
    from ti_client_action_tracker.models import ActionPage, ActionPatch, ActionResource, ActionWrite, ProblemDetails

    client = make_client(token)
    created = await _once_replicated(lambda: put_action.asyncio_detailed("grist-17", client=client, body=ActionWrite.from_dict(ACTION)))
    assert created.status_code == 201 and isinstance(created.parsed, ActionResource)
    done = ActionPatch.from_dict({"status": "realise"})
    patched = await patch_action.asyncio_detailed("grist-17", client=client, body=done, if_match=created.headers["etag"])
    assert patched.status_code == 200 and isinstance(patched.parsed, ActionResource) and patched.parsed.version == 2
    stale = await patch_action.asyncio_detailed("grist-17", client=client, body=done, if_match=created.headers["etag"])
    assert stale.status_code == 412 and isinstance(stale.parsed, ProblemDetails)
    public = make_client()
    missing = await get_action.asyncio_detailed("nope", client=public)
    assert missing.status_code == 404 and isinstance(missing.parsed, ProblemDetails)
    page = await list_actions.asyncio(client=public, territory_id="ti-8402")
    assert isinstance(page, ActionPage) and all(isinstance(a, ActionResource) for a in page.items) and len(page.items) == 1


GRANT = {
    "programme": "fonds_vert_ti_te", "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "kind": "entreprise"},
    "territory_id": "ti-2705", "commune_insee": "71076", "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1500000.00", "investment_eur": "4800000.00", "decision_date": "2024-06-12", "jobs_forecast": 12,
    "contributions": ["climate_mitigation", "circular_economy"], "status": "committed",
}


@pytest.mark.parametrize("service", ["funding-ledger"], indirect=True)
async def test_funding_ledger_client(service: tuple[Any, Callable[..., Any], str]) -> None:
    _, make_client, token = service
    from ti_client_funding_ledger.api.batches import post_grant_batch
    from ti_client_funding_ledger.api.catalogue import list_operators
    from ti_client_funding_ledger.api.grants import get_grant_ledger, list_grants, put_grant, record_disbursement
    from ti_client_funding_ledger.models import (
        DisbursementBody,
        Grant,
        GrantBatch,
        GrantBatchBody,
        GrantBody,
        GrantLedger,
        OperatorList,
        PageGrant,
        ProblemDetails,
    )
    from ti_client_funding_ledger.types import File

    client = make_client(token)
    created = await _once_replicated(lambda: put_grant.asyncio_detailed("ADEME", "FV-2024-0100", client=client, body=GrantBody.from_dict(GRANT)))
    assert created.status_code == 201 and isinstance(created.parsed, Grant) and created.parsed.version == 1
    smaller = GrantBody.from_dict({**GRANT, "amount_eur": "1200000.00"})
    updated = await put_grant.asyncio_detailed("ADEME", "FV-2024-0100", client=client, body=smaller, if_match=created.headers["etag"])
    assert updated.status_code == 200 and isinstance(updated.parsed, Grant) and updated.parsed.amount_eur == "1200000.00"
    stale = await put_grant.asyncio_detailed("ADEME", "FV-2024-0100", client=client, body=GrantBody.from_dict(GRANT), if_match=created.headers["etag"])
    assert stale.status_code == 412 and isinstance(stale.parsed, ProblemDetails)
    invalid = await put_grant.asyncio_detailed("ADEME", "FV-2024-0101", client=client, body=GrantBody.from_dict({**GRANT, "commune_insee": "20004"}))
    assert invalid.status_code == 422 and isinstance(invalid.parsed, ProblemDetails) and invalid.parsed.errors
    paid = await record_disbursement.asyncio_detailed(
        "ADEME", "FV-2024-0100", client=client, idempotency_key="dp-1",
        body=DisbursementBody.from_dict({"ref": "DP-1", "amount_eur": "200000.00", "paid_on": "2024-09-01"}),
    )
    assert paid.status_code == 201 and isinstance(paid.parsed, Grant) and paid.parsed.disbursed_eur == "200000.00"
    ledger = await get_grant_ledger.asyncio("ADEME", "FV-2024-0100", client=client)
    assert isinstance(ledger, GrantLedger) and ledger.disbursed_eur == "200000.00" and len(ledger.entries) == 3
    item = {"operator": "ADEME", "operator_ref": "FV-2024-0102", **GRANT}
    batch = await post_grant_batch.asyncio_detailed(client=client, body=GrantBatchBody.from_dict({"items": [item, {**item, "operator_ref": "x y"}]}))
    assert batch.status_code == 201 and isinstance(batch.parsed, GrantBatch) and batch.parsed.status == "completed_with_errors"
    assert (batch.parsed.counts.created, batch.parsed.counts.rejected) == (1, 1) and batch.parsed.rows[1].errors
    # the CSV body as the document shows it (SCDL « subventions »), sent as a file (its bytes: an async
    # client reads no sync file object)
    csv = documents(["funding-ledger"])["funding-ledger"]["paths"]["/v1/grant-batches"]["post"]["requestBody"]["content"]["text/csv"]["example"]
    from_csv = await post_grant_batch.asyncio_detailed(client=client, body=File(payload=csv.encode(), mime_type="text/csv"))
    assert from_csv.status_code == 201 and isinstance(from_csv.parsed, GrantBatch) and from_csv.parsed.counts.created == 1
    page = await list_grants.asyncio(client=client, operator="ADEME", limit=2)
    assert isinstance(page, PageGrant) and len(page.items) == 2 and all(isinstance(g, Grant) for g in page.items)
    rest = await list_grants.asyncio(client=client, operator="ADEME", cursor=page.next_cursor)
    assert isinstance(rest, PageGrant) and {g.id for g in page.items + rest.items} == {
        "ADEME/FV-2024-0042", "ADEME/FV-2024-0100", "ADEME/FV-2024-0102"}
    anonymous = await list_grants.asyncio_detailed(client=make_client())
    assert anonymous.status_code == 401 and isinstance(anonymous.parsed, ProblemDetails)
    operators = await list_operators.asyncio(client=make_client())
    assert isinstance(operators, OperatorList) and "ADEME" in [o.code for o in operators.items]
