"""RFC 9457 problem details for every failure, and the exception handlers that produce them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ti_shared.logging import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ti.anct.gouv.fr/problems/"

log = get_logger(__name__)


class ProblemFieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class ProblemDetails(BaseModel):
    """The body of every error response (``application/problem+json``)."""

    type: str = Field(examples=[PROBLEM_BASE + "validation"])
    title: str = Field(examples=["Invalid content"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["body.amount_eur: must be greater than 0"])
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        kind: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        instance: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.kind = kind or _default_kind(status)
        self.errors = [dict(e) for e in errors] if errors is not None else None
        self.headers = dict(headers or {})
        #: the problem's own ``instance`` (else the request's path is used)
        self.instance = instance
        #: RFC 9457 extension members added to the document (e.g. an import's whole report)
        self.extensions = dict(extensions or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        instance = self.instance or instance
        if instance:
            doc["instance"] = instance
        if self.errors is not None:
            doc["errors"] = self.errors
        doc.update(self.extensions)
        return doc


def _default_kind(status: int) -> str:
    return {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        406: "not-acceptable",
        409: "conflict",
        412: "precondition-failed",
        413: "payload-too-large",
        415: "unsupported-media-type",
        422: "validation",
        428: "precondition-required",
        429: "rate-limited",
        500: "internal",
        503: "unavailable",
    }.get(status, "http-" + str(status))


def validation_problem(errors: Sequence[Mapping[str, Any]], detail: str | None = None) -> Problem:
    """A 422 naming each invalid field."""
    if detail is None:
        parts = [".".join(str(p) for p in e["loc"]) + ": " + str(e["msg"]) for e in errors[:5]]
        detail = "; ".join(parts) + ("; …" if len(errors) > 5 else "")
    return Problem(422, detail, title="Invalid content", errors=errors)


def field_problem(loc: Sequence[str | int], msg: str, status: int = 422) -> Problem:
    errors = [{"loc": list(loc), "msg": msg}]
    return Problem(status, ".".join(str(p) for p in loc) + ": " + msg, title="Invalid content", errors=errors)


def request_path(scope: Mapping[str, Any]) -> str:
    """The path the client asked for, mount prefix included (an app mounted under ``root_path`` sees
    it in ``path`` too, as ASGI says; an older server may have left it out)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path if not root or path.startswith(root) else root + path


def allowed_methods(request: Request) -> list[str]:
    """Every method the application serves at the request's path (a 405's ``Allow``), whichever
    of its routes serves it."""
    from fastapi.routing import iter_route_contexts

    path = request_path(request.scope)
    root = str(request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and route.methods:
            methods |= set(route.methods)
    return sorted(methods)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(request_path(request.scope) if request is not None else None),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def clean_pydantic_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Turn pydantic errors into the contract's ``{loc, msg, type}``, JSON-safe."""
    cleaned: list[dict[str, Any]] = []
    for err in errors:
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        cleaned.append({"loc": loc, "msg": msg, "type": str(err.get("type", "value_error"))})
    return cleaned


# SQLSTATEs meaning the server cannot serve now: class 08 (connection exception), the server shutting
# down or starting (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now), too many
# connections (53300)
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors meaning the database cannot be reached now (retry later), not a bad request.

    Both SQLAlchemy's wrapped errors and the driver's own (a statement run straight on the asyncpg
    connection raises asyncpg's errors unwrapped, e.g. ``InterfaceError("connection is closed")`` once
    PostgreSQL has stopped).
    """
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES):
        return True
    name = type(exc).__name__
    if name in {"CannotConnectNowError", "ConnectionDoesNotExistError", "TooManyConnectionsError"}:
        return True
    # asyncpg's protocol left in a broken state by the server's goodbye arriving while the connection was
    # idle in a transaction ("cannot switch to state …; another operation … is in progress")
    if name == "InternalClientError":
        return True
    if name == "InterfaceError" and "closed" in str(exc):  # asyncpg: "connection is closed"
        return True
    # a DBAPIError wraps the driver's error (e.g. asyncpg's CannotConnectNowError while PostgreSQL shuts down)
    inner = getattr(exc, "orig", None) or exc.__cause__
    return isinstance(inner, BaseException) and inner is not exc and is_database_unavailable(inner)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = clean_pydantic_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            problem = Problem(422, "The body is not valid JSON", title="Malformed JSON", kind="malformed-json", errors=errors)
        else:
            problem = validation_problem(errors)
        return problem_response(problem, request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # a body Starlette cannot read (multipart): invalid content, the contract has no 400
            problem = Problem(422, f"The body cannot be read: {detail}", title="Invalid content", kind="malformed-body")
            return problem_response(problem, request)
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use " + ", ".join(allowed)
        return problem_response(Problem(exc.status_code, detail, headers=headers), request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):
            log.warning("database unavailable", error=repr(exc))
            problem = Problem(503, "The service's database is unavailable; retry later", headers={"Retry-After": "2"})
            return problem_response(problem, request)
        log.exception("unhandled error", path=request.url.path)
        return problem_response(Problem(500, "An unexpected error occurred; it has been logged"), request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": HTTPStatus(status).phrase}
    for status in (401, 403, 404, 409, 412, 413, 415, 422)
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given error statuses."""
    return {s: PROBLEM_RESPONSES.get(s) or {"model": ProblemDetails, "description": HTTPStatus(s).phrase} for s in statuses}
