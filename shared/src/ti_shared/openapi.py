"""The OpenAPI documents as the API behaves: what every route can answer, derived once from what it does.

FastAPI describes the routes' parameters, bodies and models; what the shared machinery does around a
route it cannot see. :func:`service_document` adds it, from each route's dependencies and parameters:

- every error status a route can give, each one ``application/problem+json`` with the one
  :class:`~ti_shared.problems.ProblemDetails` schema (nothing else: no ``application/json`` problem,
  no ``HTTPValidationError``): a required token → 401/403, an optional one → 401, a body → 413/415/422,
  any request → 422 (a NUL in the URL is refused at the edge), a write → 429 (``ratelimit``), the
  database → 503, ``Idempotency-Key`` → 409 (a concurrent retry)/422, ``TI-Effective-At`` → 403/409/422,
  ``If-Match`` → 412, ``If-None-Match`` → 304 (a read) or 412 (a write), a unit of work → 409 (a lost
  race), a path parameter of anything but an upsert → 404; ``Retry-After`` on 429 and 503,
  ``WWW-Authenticate`` on 401;
- ``security`` on every operation: the bearer scheme when a token is required, ``[{}, bearer]`` when
  it is optional, ``[]`` for public routes; the scope a route needs in its description;
- the operationId is the route function's name (``put_grant``), unique in the document;
- ``ETag`` on the answers that carry a ``version`` (and on 304);
- OpenAPI links from a write to the operations on the same resource (and from a creation to the
  resource it created), which schemathesis's stateful phase follows;
- optional parameters as their type (not ``anyOf [T, null]``);
- the models' examples as written (FastAPI's document drops every ``null``, so an example with a
  required nullable field contradicts its schema);
- a CSV body as what it is, a file's bytes (``format: binary``: the service reads any encoding and
  separator), so that a generated client sends it as a file;
- the models a route names in its ``openapi_extra`` (:func:`model_ref`, e.g. a body it reads itself) in
  the document's components.

:func:`platform_document` merges the services' documents into the one document of the single base
URL (the embedded root's ``/openapi.json``, and the reverse proxy's, written by ``ti openapi``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from ti_shared.auth import optional_principal, require_principal
from ti_shared.http import CSV_TYPES
from ti_shared.problems import PROBLEM_MEDIA_TYPE, ProblemDetails

BEARER = "HTTPBearer"
PROBLEM_SCHEMA = "ProblemDetails"
PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
#: FastAPI's own validation models, replaced by ProblemDetails everywhere
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

#: relative to where the document is read: the single base URL serves every path, and so does each service
SERVERS = [{"url": "/", "description": "The platform's base URL (or the service's own address)"}]

ETAG_HEADER = {
    "description": 'The version of the resource as a weak entity tag (`W/"<version>"`): send it back in '
    "`If-Match` to write only that version, or in `If-None-Match` to get 304 while it is current",
    "required": True,
    "schema": {"type": "string", "pattern": '^W/"[0-9]+"$', "examples": ['W/"3"']},
}
#: the entity tag of a representation that is not one versioned resource (an indicators document)
OPAQUE_ETAG_HEADER = {
    "description": "The representation's entity tag: send it back in `If-None-Match` to get 304 while it is current",
    "required": True,
    "schema": {"type": "string", "pattern": '^(W/)?"[^"]*"$', "examples": ['W/"0-c3a35f5f4b233824"']},
}
EVENT_ID_HEADER = {
    "description": "The id of the last event this write recorded (absent when it changed nothing): "
    "`GET /v1/indicators?…&after=<it>&wait=<s>` answers once reporting has applied it",
    "required": False,
    "schema": {"type": "string", "examples": ["0b5e7d1c-52a4-4f35-9a0e-3c1f0b6a2d11"]},
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "examples": [2]},
}
WWW_AUTHENTICATE_HEADER = {
    "description": "The authentication scheme to use",
    "required": True,
    "schema": {"type": "string", "examples": ['Bearer realm="ti-platform"']},
}

#: why each status can happen, said once for every operation that can give it
STATUS_DESCRIPTIONS = {
    304: "Not modified: the `If-None-Match` tag is the current version",
    401: "No token, or a malformed, expired or forged one",
    403: "The token does not allow this",
    404: "No such resource",
    409: "Conflict: a version or time conflict, a concurrent write, or a retry while the first request "
    "with the same `Idempotency-Key` is still running",
    412: "Precondition failed: `If-Match` (or `If-None-Match`) does not match the current version",
    413: "The body is too large",
    415: "The body's media type is not accepted here",
    422: "Invalid content (each invalid field is named in `errors`)",
    429: "Too many writes: retry after `Retry-After` seconds",
    503: "The service's database is unavailable: retry after `Retry-After` seconds",
}


def operation_id(route: Any) -> str:
    """The route function's name (``put_grant``), for ``generate_unique_id_function``."""
    return str(route.name).strip("_")


# --- what a route does, from its dependencies ----------------------------------------------------


@dataclass
class RouteFacts:
    """What the shared machinery does around one route, read from its dependency tree."""

    auth: str = "none"  # "none" | "optional" | "required"
    scopes: list[str] = field(default_factory=list)
    has_body: bool = False
    headers: set[str] = field(default_factory=set)
    path_params: list[str] = field(default_factory=list)
    database: bool = False
    unit_of_work: bool = False


def _calls(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _calls(sub)


def route_facts(route: Any) -> RouteFacts:
    from ti_shared.app import driver_unit_of_work, get_context, unit_of_work
    from ti_shared.http import MEDIA_TYPES_KEY

    facts = RouteFacts()
    dependant: Dependant = route.dependant
    deps = list(_calls(dependant))
    calls = {d.call for d in deps}
    if require_principal in calls or any(getattr(c, "ti_auth", None) == "required" for c in calls):
        facts.auth = "required"
    elif optional_principal in calls:
        facts.auth = "optional"
    facts.scopes = sorted({str(scope) for d in deps if (scope := getattr(d.call, "ti_scope", None))})
    facts.has_body = route.body_field is not None or MEDIA_TYPES_KEY in (route.openapi_extra or {})
    for d in (dependant, *deps):
        facts.headers.update(str(p.alias).lower() for p in d.header_params)
        facts.path_params += [p.alias for p in d.path_params if p.alias not in facts.path_params]
    facts.database = get_context in calls
    facts.unit_of_work = unit_of_work in calls or driver_unit_of_work in calls
    return facts


def error_statuses(method: str, facts: RouteFacts) -> set[int]:
    """The error statuses a route can answer, from what it does."""
    statuses = {422}  # any request: a NUL in the URL, an invalid parameter
    write = method in WRITE_METHODS
    if facts.auth == "required":
        statuses |= {401, 403}
    elif facts.auth == "optional":
        statuses.add(401)
    if facts.has_body:
        statuses |= {413, 415}
    if write:
        statuses.add(429)
    if facts.database:
        statuses.add(503)
    if facts.unit_of_work and write:
        statuses.add(409)
    if "idempotency-key" in facts.headers:
        statuses |= {409, 422}
    if "ti-effective-at" in facts.headers:
        statuses |= {403, 409}
    if "if-match" in facts.headers or ("if-none-match" in facts.headers and write):
        statuses.add(412)
    if "if-none-match" in facts.headers and not write:
        statuses.add(304)
    if facts.path_params and method != "put":
        statuses.add(404)
    return statuses


# --- the document of one service -----------------------------------------------------------------


def _problem_response(status: int, declared: Mapping[str, Any] | None) -> dict[str, Any]:
    declared = dict(declared or {})
    content = declared.get("content", {})
    own = content.get(PROBLEM_MEDIA_TYPE, {})
    # a route's own model of the problem (``responses={422: {"model": …}}``) is put by FastAPI under
    # application/json: it is the problem+json body's schema
    model = content.get("application/json", {}).get("schema")
    if model is not None and model.get("$ref", "").rsplit("/", 1)[-1] in FASTAPI_VALIDATION_SCHEMAS:
        model = None
    media: dict[str, Any] = {"schema": own.get("schema") or model or PROBLEM_REF}
    for key in ("example", "examples"):
        if key in own:
            media[key] = own[key]
    description = declared.get("description")
    if not description or description == HTTPStatus(status).phrase:
        description = STATUS_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_MEDIA_TYPE: media}}
    headers = dict(declared.get("headers", {}))
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER_HEADER
    if status == 409 and "Retry-After" not in headers:
        headers["Retry-After"] = {**RETRY_AFTER_HEADER, "required": False,
                                  "description": "Given when the same request is still running: seconds to wait"}
    if status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE_HEADER
    if headers:
        response["headers"] = headers
    return response


def _carries_version(doc: Mapping[str, Any], schema: Mapping[str, Any] | None) -> bool:
    """Whether a response schema is a resource with a ``version`` (its answer then has an ``ETag``)."""
    if not schema or "$ref" not in schema:
        return False
    target = doc.get("components", {}).get("schemas", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    props = target.get("properties", {})
    return "version" in props and "version" in target.get("required", []) and props["version"].get("type") == "integer"


def _not_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``anyOf [T, null]`` of an optional parameter → ``T`` (with the outer keywords kept)."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return dict(schema)
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(options):
        return dict(schema)
    outer = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**kept[0], **outer}


#: the conditional request headers, declared on the routes that answer 412 or 304 without naming them
CONDITIONAL_PARAMETERS = {
    "if-match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'Write only if the resource is at this version (its `ETag`, `W/"<version>"`; `*`: if it exists); '
        "412 otherwise",
        "schema": {"type": "string", "examples": ['W/"3"']},
    },
    "if-none-match": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": 'The `ETag` you hold (`W/"<version>"`): 304 with no body while it is the current version',
        "schema": {"type": "string", "examples": ['W/"3"']},
    },
}


def _conditional_parameters(method: str, op: dict[str, Any], facts: RouteFacts) -> None:
    """A route that documents 412 honours ``If-Match`` (a read's 304, ``If-None-Match``): declare the
    header when the route reads it from the request rather than as a parameter."""
    responses = op.get("responses", {})
    wanted = []
    if "412" in responses and method in WRITE_METHODS:
        wanted.append("if-match")
    if "304" in responses and method == "get":
        wanted.append("if-none-match")
    declared = {str(p["name"]).lower() for p in op.get("parameters", []) if p.get("in") == "header"}
    for name in wanted:
        facts.headers.add(name)
        if name not in declared:
            op.setdefault("parameters", []).append(copy.deepcopy(CONDITIONAL_PARAMETERS[name]))


def _refine_operation(doc: dict[str, Any], method: str, op: dict[str, Any], facts: RouteFacts) -> None:
    _conditional_parameters(method, op, facts)
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        if media in CSV_TYPES and content.get("schema") == {"type": "string"}:
            content["schema"] = {"type": "string", "format": "binary"}
    responses: dict[str, Any] = op.setdefault("responses", {})
    inferred = error_statuses(method, facts)
    declared_errors = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    for status in sorted(declared_errors | {s for s in inferred if s >= 400}):
        responses[str(status)] = _problem_response(status, responses.get(str(status)))
    conditional = bool({"if-match", "if-none-match"} & facts.headers)
    etag = OPAQUE_ETAG_HEADER
    for code, response in responses.items():
        if not code.startswith("2"):
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        versioned = _carries_version(doc, schema)
        if conditional or versioned:
            response.setdefault("headers", {})["ETag"] = ETAG_HEADER if versioned else OPAQUE_ETAG_HEADER
            etag = ETAG_HEADER if versioned else etag
        if facts.unit_of_work and method in WRITE_METHODS:
            response.setdefault("headers", {})["TI-Event-Id"] = EVENT_ID_HEADER
    if 304 in inferred or "304" in responses:
        responses["304"] = {"description": STATUS_DESCRIPTIONS[304], "headers": {"ETag": etag}}
    if facts.auth == "required":
        op["security"] = [{BEARER: []}]
    elif facts.auth == "optional":
        op["security"] = [{}, {BEARER: []}]
    else:
        op["security"] = []
    if facts.scopes:
        needs = " or ".join(f"`{s}`" for s in facts.scopes)
        note = f"Needs a token with the scope {needs} (or `admin`)." if "admin" not in facts.scopes else "Needs an admin token."
        op["description"] = (op.get("description", "").rstrip() + "\n\n" + note).strip()
    for param in op.get("parameters", []):
        if not param.get("required"):
            param["schema"] = _not_null(param.get("schema", {}))


#: the models named by :func:`model_ref`, put in every document's components by :func:`refine`
_EXTRA_MODELS: dict[str, type[BaseModel]] = {}


def model_ref(model: type[BaseModel]) -> dict[str, str]:
    """A ``$ref`` to ``model`` for a route's ``openapi_extra`` (a body the route reads itself): the
    model and the models it uses are in the document's components."""
    _EXTRA_MODELS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _add_models(schemas: dict[str, Any], text: str) -> None:
    for name, model in _EXTRA_MODELS.items():
        if f'"#/components/schemas/{name}"' not in text:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub in {**schema.pop("$defs", {}), name: schema}.items():
            schemas.setdefault(sub_name, sub)  # FastAPI's own schema of a model it already put there wins


def _unreferenced(doc: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    text = json.dumps({k: v for k, v in doc.items() if k != "components"}) + json.dumps(
        {k: v for k, v in doc.get("components", {}).get("schemas", {}).items() if k not in names}
    )
    return [n for n in names if f'"#/components/schemas/{n}"' not in text]


_PARAM = re.compile(r"\{([^}]+)\}")


def _links(doc: dict[str, Any]) -> None:
    """Links from each successful write to the operations on the resource it wrote.

    A write on ``P`` links to the other operations on ``P`` and, when ``P`` names one resource, to
    those below it (``P/history``, ``P/disbursements``) with the same path parameters, by the
    request's values; a creation on a collection ``C`` whose
    answer has an ``id`` links to the operations on ``C/{x}`` (and below) by that ``id``."""
    operations = [(path, method, op) for path, ops in doc.get("paths", {}).items() for method, op in ops.items()]
    for path, method, op in operations:
        if method not in WRITE_METHODS or method == "delete":
            continue
        own = _PARAM.findall(path)
        links: dict[str, Any] = {}
        for target_path, _, target in operations:
            if target is op or "operationId" not in target:
                continue
            params = _PARAM.findall(target_path)
            if params == own and (target_path == path or (own and target_path.startswith(path + "/"))):
                values = {p: f"$request.path.{p}" for p in own}
            elif (
                method == "post"
                and target_path.startswith(path + "/{")
                and params[: len(own)] == own
                and len(params) == len(own) + 1
                and target_path.split("/")[len(path.split("/"))] == "{" + params[-1] + "}"
            ):
                values = {**{p: f"$request.path.{p}" for p in own}, params[-1]: "$response.body#/id"}
            else:
                continue
            name = target["operationId"]
            links[name] = {"operationId": name, "parameters": values}
        if not links:
            continue
        for status, response in op.get("responses", {}).items():
            if status.startswith("2"):
                body_links = {
                    k: v for k, v in links.items()
                    if "$response.body#/id" not in json.dumps(v) or _has_id(doc, response)
                }
                if body_links:
                    response["links"] = body_links


def _has_id(doc: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema") or {}
    if "$ref" not in schema:
        return False
    target = doc.get("components", {}).get("schemas", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "id" in target.get("required", [])


def refine(doc: dict[str, Any], routes: Iterable[Any]) -> dict[str, Any]:
    """Add to FastAPI's document what the shared machinery does around each route (module docstring)."""
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(PROBLEM_SCHEMA, ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name, sub in ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas[PROBLEM_SCHEMA].pop("$defs", None)
    _add_models(schemas, json.dumps(doc.get("paths", {})))
    seen: dict[str, str] = {}
    for route in routes:
        if not getattr(route, "include_in_schema", False) or getattr(route, "dependant", None) is None:
            continue
        facts = route_facts(route)
        for method in sorted(m.lower() for m in route.methods or ()):
            op = doc.get("paths", {}).get(route.path_format, {}).get(method)
            if op is None:
                continue
            where = f"{method.upper()} {route.path_format}"
            if op.get("operationId") in seen:
                raise ValueError(f"operationId {op['operationId']!r} of {where} is also {seen[op['operationId']]}")
            seen[op["operationId"]] = where
            _refine_operation(doc, method, op, facts)
    for name in _unreferenced(doc, FASTAPI_VALIDATION_SCHEMAS):
        schemas.pop(name, None)
    bearer = doc["components"].get("securitySchemes", {}).get(BEARER)
    if bearer is not None:
        bearer.setdefault("bearerFormat", "JWT")
    _links(doc)
    return doc


def service_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (FastAPI's, refined: :func:`refine`)."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers or SERVERS,
        license_info=app.license_info,
    )
    _restore_examples(doc, app.routes)
    return refine(doc, iter_route_contexts(app.routes))


def _restore_examples(doc: dict[str, Any], routes: list[Any]) -> None:
    """Put back each model's ``examples`` as the model gives them: FastAPI encodes its document without
    ``None`` values, which takes the ``null`` fields out of the examples too."""
    from fastapi._compat import get_flat_models_from_fields, get_model_name_map
    from fastapi.encoders import jsonable_encoder
    from fastapi.openapi.utils import get_fields_from_routes

    schemas = doc.get("components", {}).get("schemas", {})
    names = get_model_name_map(get_flat_models_from_fields(get_fields_from_routes(routes), known_models=set()))
    for model, name in names.items():
        extra = model.model_config.get("json_schema_extra") if hasattr(model, "model_config") else None
        if not isinstance(extra, dict) or "examples" not in extra:
            continue
        for key in (name, f"{name}-Input", f"{name}-Output"):
            if "examples" in schemas.get(key, {}):
                schemas[key]["examples"] = jsonable_encoder(extra["examples"])


def install_openapi(app: FastAPI, build: Callable[[], dict[str, Any]] | None = None) -> None:
    """Serve the refined document at ``/openapi.json`` (built once, on first use)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = build() if build is not None else service_document(app)
        doc: dict[str, Any] = cache["doc"]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


# --- one document for the single base URL --------------------------------------------------------


def _rename_refs(value: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                name = v.rsplit("/", 1)[-1]
                out[k] = "#/components/schemas/" + renames.get(name, name)
            else:
                out[k] = _rename_refs(v, renames)
        return out
    if isinstance(value, list):
        return [_rename_refs(v, renames) for v in value]
    return value


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def platform_document(documents: Mapping[str, Mapping[str, Any]], *, title: str, version: str = "1.0.0") -> dict[str, Any]:
    """One document with every service's paths (the single base URL, CONTRACT §1).

    The services' schemas keep their names; a name two services define differently is prefixed with
    the service's name in the second one (``ActionTrackerRowError``). Paths, operationIds and tags
    must not collide (the contract's prefixes never do)."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every service of the platform behind one base URL. Each service also serves "
            "its own document at `/<service>/openapi.json`.",
        },
        "servers": SERVERS,
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "tags": [],
    }
    operation_ids: dict[str, str] = {}
    for service, original in documents.items():
        doc = copy.deepcopy(dict(original))
        schemas = doc.get("components", {}).get("schemas", {})
        renames = {
            name: _pascal(service) + name
            for name, schema in schemas.items()
            if name in merged["components"]["schemas"] and merged["components"]["schemas"][name] != schema
        }
        doc = _rename_refs(doc, renames)
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            merged["components"]["schemas"][renames.get(name, name)] = schema
        merged["components"]["securitySchemes"].update(doc.get("components", {}).get("securitySchemes", {}))
        for path, ops in doc.get("paths", {}).items():
            if path in merged["paths"]:
                raise ValueError(f"{path} is served by two services")
            merged["paths"][path] = ops
            for op in ops.values():
                oid = op.get("operationId")
                if oid in operation_ids:
                    raise ValueError(f"operationId {oid!r} of {service} is also in {operation_ids[oid]}")
                operation_ids[oid] = service
        known = {t["name"] for t in merged["tags"]}
        merged["tags"] += [t for t in doc.get("tags", []) if t["name"] not in known]
    if not merged["components"]["securitySchemes"]:
        del merged["components"]["securitySchemes"]
    if not merged["tags"]:
        del merged["tags"]
    return merged


def documents(services: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The document of each installed service (built without starting it), and ``platform``: the
    single base URL's. What ``ti openapi`` writes and ``make lint`` checks."""
    from ti_shared.embedded import PLATFORM_TITLE, SERVICES, load_service_app
    from ti_shared.settings import PlatformSettings

    platform = PlatformSettings(env="development")
    docs = {
        name: load_service_app(name, platform, "sqlite+aiosqlite:///:memory:").openapi()
        for name in (services or SERVICES)
    }
    return {**docs, "platform": platform_document(docs, title=PLATFORM_TITLE)}
