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
from ti_shared.testing import (
    ResponseValidator,
    create_database,
    create_topics,
    drop_database,
    generated_client,
    new_topic_prefix,
    platform_settings,
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
