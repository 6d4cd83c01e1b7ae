"""The OpenAPI documents say what the API does (ti_shared.openapi): every service's and the single base URL's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from ti_shared.embedded import SERVICES, create_embedded_app
from ti_shared.openapi import PROBLEM_REF, documents
from ti_shared.problems import PROBLEM_MEDIA_TYPE
from ti_shared.settings import PlatformSettings


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return documents()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def test_the_platform_document_has_every_service_path(docs: dict[str, dict[str, Any]]) -> None:
    platform = docs["platform"]
    for service in SERVICES:
        assert docs[service]["paths"], service
        for path, ops in docs[service]["paths"].items():
            assert set(platform["paths"][path]) == set(ops), path
    assert sum(1 for _ in _operations(platform)) == sum(1 for s in SERVICES for _ in _operations(docs[s]))
    # a schema two services define differently keeps both, the second under its service's name
    assert platform["components"]["schemas"]["RowError"] == docs["territory-registry"]["components"]["schemas"]["RowError"]
    assert platform["components"]["schemas"]["ActionTrackerRowError"] == docs["action-tracker"]["components"]["schemas"]["RowError"]


@pytest.mark.parametrize("name", [*SERVICES, "platform"])
def test_operation_ids_are_the_route_names_and_unique(docs: dict[str, dict[str, Any]], name: str) -> None:
    ids = [op["operationId"] for _, _, op in _operations(docs[name])]
    assert len(ids) == len(set(ids))
    assert all(i.isidentifier() and i == i.lower() and not i.endswith("_") for i in ids), ids
    if name == "funding-ledger":
        assert {"put_grant", "record_disbursement", "list_grants", "post_grant_batch"} <= set(ids)


@pytest.mark.parametrize("name", SERVICES)
def test_errors_are_problem_details_only(docs: dict[str, dict[str, Any]], name: str) -> None:
    doc = docs[name]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in _operations(doc):
        where = f"{method.upper()} {path}"
        statuses = {int(s) for s in op["responses"] if s.isdigit()}
        assert 422 in statuses, where  # any request: an invalid parameter, or a NUL in the URL
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (where, status)
            schema = response["content"][PROBLEM_MEDIA_TYPE]["schema"]
            assert schema == PROBLEM_REF or "allOf" in schema or "$ref" in schema, (where, status)
            if status in ("429", "503"):
                assert response["headers"]["Retry-After"]["required"], (where, status)
            if status == "401":
                assert "WWW-Authenticate" in response["headers"]
        if method in ("post", "put", "patch", "delete"):
            assert {401, 403, 429, 503} <= statuses, where
        if op["security"]:
            assert 401 in statuses, where


@pytest.mark.parametrize("name", SERVICES)
def test_security_is_declared_on_every_operation(docs: dict[str, dict[str, Any]], name: str) -> None:
    for method, path, op in _operations(docs[name]):
        assert "security" in op, (method, path)
        if method != "get":
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
    public = {(m, p) for m, p, op in _operations(docs[name]) if op["security"] == []}
    if name == "funding-ledger":
        assert ("get", "/v1/grants") not in public and ("get", "/v1/programmes") in public
    if name == "reporting":
        assert ("get", "/v1/indicators") in public


def test_resources_answer_their_etag_and_conditional_reads_304(docs: dict[str, dict[str, Any]]) -> None:
    get_grant = docs["funding-ledger"]["paths"]["/v1/grants/{operator}/{operator_ref}"]["get"]
    assert "ETag" in get_grant["responses"]["200"]["headers"]
    assert "ETag" in get_grant["responses"]["304"]["headers"]
    put_site = docs["site-catalog"]["paths"]["/v1/sites/{site_id}"]["put"]
    assert {"200", "201", "412"} <= set(put_site["responses"])
    assert "ETag" in put_site["responses"]["201"]["headers"]


def test_writes_link_to_the_resource_they_wrote(docs: dict[str, dict[str, Any]]) -> None:
    put = docs["funding-ledger"]["paths"]["/v1/grants/{operator}/{operator_ref}"]["put"]
    link = put["responses"]["201"]["links"]["get_grant"]
    assert link["parameters"] == {"operator": "$request.path.operator", "operator_ref": "$request.path.operator_ref"}
    assert "record_disbursement" in put["responses"]["200"]["links"]
    create = docs["action-tracker"]["paths"]["/v1/actions"]["post"]
    assert create["responses"]["201"]["links"]["get_action"]["parameters"] == {"action_id": "$response.body#/id"}


def _examples(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(pointer of the schema, pointer of the example, the example) for every example in a document."""
    if isinstance(node, dict):
        examples = node.get("examples")
        if isinstance(examples, list) and "schema" not in node:
            for i, value in enumerate(examples):
                yield pointer, f"{pointer}/examples/{i}", value
        elif isinstance(examples, dict) and "schema" in node:
            for name, example in examples.items():
                if isinstance(example, dict) and "value" in example:
                    yield f"{pointer}/schema", f"{pointer}/examples/{name}/value", example["value"]
        if "example" in node:
            yield (f"{pointer}/schema" if "schema" in node else pointer), f"{pointer}/example", node["example"]
        for key, value in node.items():
            if key not in ("examples", "example"):
                yield from _examples(value, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{pointer}/{i}")


@pytest.mark.parametrize("name", SERVICES)
def test_every_example_is_valid_against_its_schema(docs: dict[str, dict[str, Any]], name: str) -> None:
    doc = docs[name]
    invalid = set()
    checked = 0
    for schema_at, example_at, value in _examples(doc):
        root = {**doc, "$id": "urn:ti-openapi", "$ref": "#" + schema_at}
        validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        checked += 1
        if any(True for _ in validator.iter_errors(value)):
            invalid.add((name, example_at))
    assert checked > 5
    assert invalid == set(), "examples contradicting their schema"


# --- the embedded root: its document, 405, problems' instance, CORS ---------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    var = tmp_path_factory.mktemp("var")
    return create_embedded_app(
        PlatformSettings(env="test", var_dir=var, bus="local", cors_origins="*", cors_write_origins="https://admin.example.fr")
    )


async def _call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://platform") as client:
        return await client.request(method, url, **kwargs)


async def test_the_root_serves_every_service_path_in_one_document(embedded: Any, docs: dict[str, dict[str, Any]]) -> None:
    response = await _call(embedded, "GET", "/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.text)["paths"].keys() == docs["platform"]["paths"].keys()


@pytest.mark.parametrize("prefix", ["", "/territory-registry"])
async def test_a_wrong_method_answers_every_allowed_one_and_the_instance_keeps_the_prefix(embedded: Any, prefix: str) -> None:
    response = await _call(embedded, "POST", prefix + "/v1/territories/ti-8402")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["instance"] == prefix + "/v1/territories/ti-8402"


async def test_cross_origin_reads_are_open_and_writes_need_a_listed_origin(embedded: Any) -> None:
    page = "https://front.example.fr"
    read = await _call(embedded, "OPTIONS", "/v1/indicators", headers={"Origin": page, "Access-Control-Request-Method": "GET"})
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == "*"
    write = await _call(
        embedded, "OPTIONS", "/v1/territories/ti-8402",
        headers={"Origin": page, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization"},
    )
    assert write.status_code == 403 and write.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "access-control-allow-origin" not in write.headers
    admin = await _call(
        embedded, "OPTIONS", "/v1/territories/ti-8402",
        headers={"Origin": "https://admin.example.fr", "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "authorization, content-type, if-match"},
    )
    assert admin.status_code == 200 and admin.headers["access-control-allow-origin"] == "https://admin.example.fr"
    assert "PUT" in admin.headers["access-control-allow-methods"]
    refused = await _call(embedded, "POST", "/livez", headers={"Origin": page})
    assert refused.status_code == 405 and refused.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in refused.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "ti-event-id", "retry-after"} <= exposed
