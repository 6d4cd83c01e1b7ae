from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import pytest_asyncio
from territory_registry.schemas import TERRITORY_EXAMPLE
from ti_shared.auth import mint_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TID = "ti-8410"


def body(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TERRITORY_EXAMPLE)
    doc.update(changes)
    return doc


def lead(**changes: Any) -> dict[str, Any]:
    return {**TERRITORY_EXAMPLE["project_lead"], **changes}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def existing(registry) -> dict[str, Any]:
    response = await registry.client.put(f"/v1/territories/{TID}", json=body(), headers=registry.writer)
    assert response.status_code == 201
    return response.json()


async def assert_nothing_changed(registry, existing: dict[str, Any], outbox_before: int) -> None:
    current = await registry.client.get(f"/v1/territories/{TID}")
    assert current.json() == existing
    assert await registry.outbox_count() == outbox_before


def assert_problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = response.json()
    assert doc["status"] == status and doc["title"] and doc["detail"] and doc["type"].startswith("https://")
    return doc


BAD_BODIES = {
    "unknown region": (body(region_code="99"), ["body", "region_code"]),
    "region as a number": (body(region_code=84), ["body", "region_code"]),
    "unknown département": (body(departement_codes=["01", "20"]), ["body", "departement_codes", 1]),
    "département without leading zero": (body(departement_codes=["1"]), ["body", "departement_codes", 0]),
    "SIREN failing Luhn": (body(epcis=[{"siren": "200071752", "name": "CA"}]), ["body", "epcis", 0, "siren"]),
    "SIREN of 8 digits": (body(epcis=[{"siren": "20007175", "name": "CA"}]), ["body", "epcis", 0, "siren"]),
    "SIREN as a number": (body(epcis=[{"siren": 200071751, "name": "CA"}]), ["body", "epcis", 0, "siren"]),
    "duplicate EPCI": (
        body(epcis=[{"siren": "200071751", "name": "A"}, {"siren": "200071751", "name": "B"}]),
        ["body", "epcis", 1, "siren"],
    ),
    "duplicate département": (body(departement_codes=["01", "01"]), ["body", "departement_codes", 1]),
    "French date": (body(labelled_on="09/11/2023"), ["body", "labelled_on"]),
    "impossible date": (body(launch_copil_held_on="2024-02-30"), ["body", "launch_copil_held_on"]),
    "datetime for a date": (body(labelled_on="2023-11-09T10:00:00Z"), ["body", "labelled_on"]),
    "bad e-mail": (body(project_lead=lead(email="chef-de-projet")), ["body", "project_lead", "email"]),
    "unknown field": (body(budget_eur="1000.00"), ["body", "budget_eur"]),
    "unknown nested field": (body(project_lead=lead(phone="0102")), ["body", "project_lead", "phone"]),
    "server field": (body(version=9), ["body", "version"]),
    "empty name": (body(name=""), ["body", "name"]),
    "blank name": (body(name="   "), ["body", "name"]),
    "name too long": (body(name="x" * 201), ["body", "name"]),
    "missing name": ({k: v for k, v in body().items() if k != "name"}, ["body", "name"]),
    "unknown status": (body(status="suspended"), ["body", "status"]),
    "string boolean": (body(project_lead=lead(in_post="oui")), ["body", "project_lead", "in_post"]),
    "not an object": ([body()], ["body"]),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_bodies_are_422_naming_the_field_and_change_nothing(registry, existing, case: str) -> None:
    doc, loc = BAD_BODIES[case]
    outbox_before = await registry.outbox_count()
    response = await registry.client.put(f"/v1/territories/{TID}", json=doc, headers=registry.writer)
    problem = assert_problem(response, 422)
    assert loc in [e["loc"] for e in problem["errors"]], problem
    fresh = await registry.client.put("/v1/territories/ti-8499", json=doc, headers=registry.writer)
    assert fresh.status_code == 422
    assert (await registry.client.get("/v1/territories/ti-8499")).status_code == 404
    await assert_nothing_changed(registry, existing, outbox_before)


@pytest.mark.parametrize("bad_id", ["ti-84", "ti-84021", "TI-8402", "ti-84a2", "8402"])
async def test_bad_territory_ids_are_refused(registry, existing, bad_id: str) -> None:
    outbox_before = await registry.outbox_count()
    response = await registry.client.put(f"/v1/territories/{bad_id}", json=body(), headers=registry.writer)
    problem = assert_problem(response, 422)
    assert ["path", "territory_id"] in [e["loc"] for e in problem["errors"]]
    assert (await registry.client.get(f"/v1/territories/{bad_id}")).status_code == 404
    await assert_nothing_changed(registry, existing, outbox_before)


async def test_malformed_json_wrong_media_type_and_huge_bodies(registry, existing) -> None:
    outbox_before = await registry.outbox_count()
    url = f"/v1/territories/{TID}"
    headers = {**registry.writer, "Content-Type": "application/json"}
    malformed = await registry.client.put(url, content=b'{"name": "x",', headers=headers)
    assert_problem(malformed, 422)
    csv = await registry.client.put(url, content=b"name;region_code\nX;84\n", headers={**registry.writer, "Content-Type": "text/csv"})
    assert_problem(csv, 415)
    huge = body(name="Grand")
    huge["epcis"] = [{"siren": "200071751", "name": "x" * 200}] * 6000
    too_large = await registry.client.put(url, content=json.dumps(huge).encode(), headers=headers)
    assert_problem(too_large, 413)
    empty = await registry.client.put(url, headers=registry.writer)
    assert_problem(empty, 422)
    await assert_nothing_changed(registry, existing, outbox_before)


async def test_writes_need_a_valid_token_with_the_scope(registry, existing) -> None:
    outbox_before = await registry.outbox_count()
    url = f"/v1/territories/{TID}"
    changed = body(name="Changé")
    no_token = await registry.client.put(url, json=changed)
    assert_problem(no_token, 401)
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    garbage = await registry.client.put(url, json=changed, headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(garbage, 401)
    expired = mint_token(registry.platform, sub="old", scopes=["territories:write"], ttl_seconds=-60)
    assert_problem(await registry.client.put(url, json=changed, headers={"Authorization": f"Bearer {expired}"}), 401)
    other = mint_token(registry.platform.model_copy(update={"jwt_secret": "another-secret-of-enough-length-0123456789"}), sub="x", scopes=["admin"])
    assert_problem(await registry.client.put(url, json=changed, headers={"Authorization": f"Bearer {other}"}), 401)
    wrong_scope = mint_token(registry.platform, sub="lead", scopes=["actions:write", "sites:write"])
    assert_problem(await registry.client.put(url, json=changed, headers={"Authorization": f"Bearer {wrong_scope}"}), 403)
    import_no_scope = await registry.client.post(
        "/v1/territories/imports", content=b"id_ti;lib_ti;code_reg\nti-8410;Change;84\n",
        headers={"Authorization": f"Bearer {wrong_scope}", "Content-Type": "text/csv"},
    )
    assert_problem(import_no_scope, 403)
    import_no_token = await registry.client.post(
        "/v1/territories/imports", content=b"id_ti;lib_ti;code_reg\nti-8410;Change;84\n", headers={"Content-Type": "text/csv"}
    )
    assert_problem(import_no_token, 401)
    await assert_nothing_changed(registry, existing, outbox_before)
    assert (await registry.client.get(url)).status_code == 200


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"status": "closed"}, ["query", "status"]),
        ({"region_code": "99"}, ["query", "region_code"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"cursor": "%%%not-a-cursor"}, ["query", "cursor"]),
        ({"cursor": "WzEsMl0"}, ["query", "cursor"]),
    ],
)
async def test_bad_list_queries_are_422(registry, params: dict[str, Any], loc: list[str]) -> None:
    problem = assert_problem(await registry.client.get("/v1/territories", params=params), 422)
    assert loc in [e["loc"] for e in problem["errors"]]


async def test_unknown_territory_is_404(registry) -> None:
    assert_problem(await registry.client.get("/v1/territories/ti-0000"), 404)
    assert_problem(await registry.client.get("/v1/territories/ti-0000/history"), 404)


@pytest.mark.parametrize(
    ("query", "content", "media", "status"),
    [
        ("kind=communes", b"id_ti;lib_ti;code_reg\nti-8410;X;84\n", "text/csv", 422),
        ("mode=sometimes", b"id_ti;lib_ti;code_reg\nti-8410;X;84\n", "text/csv", 422),
        ("kind=territories", b"id_ti;nom\nti-8410;X\n", "text/csv", 422),
        ("kind=groupements", b"id_ti;lib_ti;code_reg\nti-8410;X;84\n", "text/csv", 422),
        ("kind=territories", b"", "text/csv", 422),
        ("kind=territories", b"id_ti;lib_ti;code_reg\n", "text/csv", 422),
        ("kind=territories", b'{"id_ti": "ti-8410"}', "application/json", 415),
        ("kind=territories", b"PK\x03\x04not really a workbook", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 422),
        ("kind=territories", b"id_ti;lib_ti;code_reg\nti-8410;Change;84\nti-8411;X;99\n", "text/csv", 422),
    ],
)
async def test_bad_imports_change_nothing(registry, existing, query: str, content: bytes, media: str, status: int) -> None:
    outbox_before = await registry.outbox_count()
    response = await registry.client.post(
        f"/v1/territories/imports?{query}", content=content, headers={**registry.writer, "Content-Type": media}
    )
    assert_problem(response, status)
    await assert_nothing_changed(registry, existing, outbox_before)
    assert (await registry.client.get("/v1/territories/ti-8411")).status_code == 404
