"""HTTP conventions of CONTRACT §2: media types, ETags, pagination cursors, ``TI-Effective-At``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Header, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from ti_shared.auth import Principal
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, field_problem, request_path
from ti_shared.service import WriteResult
from ti_shared.types import RFC3339_INSTANT, parse_instant

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MULTIPART = "multipart/form-data"
#: bodies that are not text: their NUL bytes are data (an XLSX is a zip); the cells are checked when read
BINARY_TYPES = (XLSX_TYPE, MULTIPART, "application/octet-stream")

#: OpenAPI extension naming the request media types a route accepts (JSON when absent)
MEDIA_TYPES_KEY = "x-ti-media-types"
BODY_LIMIT_KEY = "x-ti-max-body-bytes"
DEFAULT_BODY_LIMIT = 1024 * 1024


def accepts(*media_types: str, max_body_bytes: int | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a route taking other media types than JSON or a larger body."""
    extra: dict[str, Any] = {MEDIA_TYPES_KEY: list(media_types)}
    if max_body_bytes is not None:
        extra[BODY_LIMIT_KEY] = max_body_bytes
    return extra


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class TiRoute(APIRoute):
    """Checks the request's media type (415) and size (413) before FastAPI parses the body; a JSON
    body is parsed here once (:func:`parse_json_body`: UTF-8, depth), and NUL is refused in every
    body that is not binary, whatever its media type."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        extra = self.openapi_extra or {}
        allowed = tuple(extra.get(MEDIA_TYPES_KEY, JSON_TYPES))
        limit = int(extra.get(BODY_LIMIT_KEY, DEFAULT_BODY_LIMIT))
        has_body = self.body_field is not None or MEDIA_TYPES_KEY in extra

        async def route_handler(request: Request) -> Response:
            if has_body and request.method in ("POST", "PUT", "PATCH"):
                length = request.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > limit:
                    raise Problem(413, f"The body is larger than {limit} bytes")
                body = await request.body()
                if len(body) > limit:
                    raise Problem(413, f"The body is larger than {limit} bytes")
                media = _media_type(request)
                if body or request.headers.get("content-type"):
                    json_like = media.endswith("+json") and "application/json" in allowed
                    if media not in allowed and not json_like:
                        raise Problem(
                            415,
                            f"Content-Type '{media or '(none)'}' is not accepted here; use one of: " + ", ".join(allowed),
                        )
                if media not in BINARY_TYPES and b"\x00" in body:
                    raise Problem(422, NUL_DETAIL, title="Invalid content")
                if body and media.endswith("json"):
                    request._json = parse_json_body(body)  # what FastAPI's request.json() then returns
            return await handler(request)

        return route_handler


# --- JSON bodies -----------------------------------------------------------------------------

#: nesting of objects and arrays in a JSON body (the contract's deepest body has 4 levels)
MAX_JSON_DEPTH = 32
NUL_DETAIL = "NUL characters are not accepted (they cannot be stored)"
#: integers of 19 digits and more: orjson reads beyond 64 bits as floats, the standard library exactly. Told
#: by a run of 19 digits in the body with every digit mapped to ``0`` and every other byte to a space: one
#: ``translate`` and one substring search (a regular expression costs ≈ 10 ns a byte, 30 ms for 3 MB)
#: The same ``translate`` keeps what tells the nesting (:func:`_shallow`): ``[`` and ``{`` as 0x01, ``]`` and
#: ``}`` as 0xFF, ``"`` and ``\\`` as themselves.
_SCAN = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x01 if b in b"[{" else 0xFF if b in b"]}" else b if b in b'"\\' else 0x20
    for b in range(256)
)
_LONG_INTEGER = b"0" * 19


def _scan(body: bytes) -> bytes:
    return body.translate(_SCAN)


def _has_long_integer(scan: bytes) -> bool:
    return _LONG_INTEGER in scan


def _shallow(scan: bytes) -> bool:
    """Whether the :func:`_scan` of a valid JSON body proves that it nests at most :data:`MAX_JSON_DEPTH`
    levels, in a few passes at C speed (≈ 0.6 µs a grant of a batch; the walk of every parsed value ≈ 5). Escaped
    backslashes, then escaped quotes, are taken out (backslashes paired from the left, as a string reads
    them), then every byte but quotes and brackets. When no string holds a bracket, every string is two
    quotes side by side (all the quotes pair so, from the left), and without the quotes what remains is
    the structure's brackets: each pass takes out the empty containers (an opening bracket next to a
    closing one), one level of depth. False, for the exact walk to decide, when a string holds a
    bracket or more than :data:`MAX_JSON_DEPTH` passes would be needed."""
    if b"\\" in scan:
        scan = scan.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = scan.translate(None, b" 0\\")
    if marks.count(b'""') * 2 != marks.count(b'"'):
        return False
    brackets = marks.translate(None, b'"')
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return True
        brackets = brackets.replace(b"\x01\xff", b"")
    return not brackets


def _malformed(detail: str) -> Problem:
    return Problem(422, detail, title="Malformed JSON", kind="malformed-json")


def parse_json_body(body: bytes) -> Any:
    """A JSON body as Python values, or a 422 problem: not UTF-8, not JSON, nested deeper than
    :data:`MAX_JSON_DEPTH`, a NUL or a lone surrogate in a string. Never a 400 or a 500."""
    if b"\\u0000" in body:
        raise Problem(422, NUL_DETAIL, title="Invalid content")
    scan = _scan(body)
    exact = _has_long_integer(scan)
    doc: Any
    if not exact:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            exact = True  # said below by the standard library: the reason, or what orjson refuses and it reads
        else:
            if not _shallow(scan):
                _check_json(doc, strings=False)
            return doc
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _malformed(f"The body is not UTF-8 (byte {exc.start} is invalid)") from exc
    try:
        doc = json.loads(text)
    except RecursionError as exc:
        raise _malformed(f"The body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise _malformed(f"The body is not valid JSON: {exc}") from exc
    _check_json(doc, strings=True)
    return doc


async def json_body(request: Request) -> Any:
    """The request's JSON body as :class:`TiRoute` parsed it (parsed here when it was not); None when empty."""
    if "_json" not in request.__dict__:
        body = await request.body()
        if not body:
            return None
        request._json = parse_json_body(body)
    return await request.json()


def _check_json(doc: Any, *, strings: bool) -> None:
    """Depth of ``doc`` (and, for what the standard library read, strings that cannot be stored)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
            if strings:
                for key in value:
                    _check_string(key)
        elif isinstance(value, list):
            children = value
        else:
            if strings and isinstance(value, str):
                _check_string(value)
            continue
        if depth > MAX_JSON_DEPTH:
            raise _malformed(f"The body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
        for child in children:
            if isinstance(child, (dict, list)) or (strings and isinstance(child, str)):
                stack.append((child, depth + 1))


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise Problem(422, NUL_DETAIL, title="Invalid content")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _malformed("The body holds a lone surrogate (\\ud800–\\udfff) in a string") from exc


# --- ETag / conditional requests -------------------------------------------------------------


def etag_of(version: int) -> str:
    return f'W/"{version}"'


def _etag_values(header: str) -> list[str]:
    return [v.strip() for v in header.split(",") if v.strip()]


def _same_tag(listed: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §8.8.3.2): ``W/"3"`` and ``"3"`` name the same version."""
    return listed.removeprefix("W/") == etag.removeprefix("W/")


def if_none_match(header: str | bytes | None, etag: str | None) -> bool:
    """Whether an ``If-None-Match`` header matches the current representation's ``etag`` (None: there
    is none): ``*`` matches any, else one of the listed tags by weak comparison. A GET answers 304 when
    it matches, a write 412."""
    if not header or etag is None:
        return False
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    values = _etag_values(text)
    return "*" in values or any(_same_tag(v, etag) for v in values)


def not_modified(request: Request, version: int) -> bool:
    """``If-None-Match`` of a GET matches the current version (answer 304)."""
    return if_none_match(request.headers.get("if-none-match"), etag_of(version))


def check_if_match(request: Request | str | None, current_version: int | None) -> None:
    """412 when ``If-Match`` (the header's value, or read from the request) does not match the current
    version, or when the resource does not exist."""
    header = request.headers.get("if-match") if isinstance(request, Request) else request
    if not header:
        return
    values = _etag_values(header)
    if current_version is None:
        raise Problem(412, "If-Match was given but the resource does not exist")
    if "*" in values:
        return
    if not any(_same_tag(v, etag_of(current_version)) for v in values):
        raise Problem(412, f"If-Match does not match the current version ({etag_of(current_version)})")


#: the id of the event a write produced (CONTRACT §8), on its 2xx answer
EVENT_ID_HEADER = "TI-Event-Id"


def write_response(result: WriteResult[Any], request: Request | None = None) -> Response:
    """The HTTP response of a service function's :class:`~ti_shared.service.WriteResult`: its status,
    ``ETag`` (its version), ``Location``, ``TI-Event-Id`` (the last event the write recorded: a client
    reads its own write with ``GET /v1/indicators?…&after=<it>``), and its entity as JSON — or its
    problem document (with the request's path as ``instance`` unless the problem names its own)."""
    headers: dict[str, str] = {}
    if result.version is not None:
        headers["ETag"] = etag_of(result.version)
    if result.event_ids and result.problem is None:
        headers[EVENT_ID_HEADER] = result.event_ids[-1]
    if result.location is not None:
        headers["Location"] = result.location
    if result.problem is not None:
        body: Any = result.problem.body(request_path(request.scope) if request is not None else None)
        media = PROBLEM_MEDIA_TYPE
        headers.update(result.problem.headers)
    else:
        entity = result.entity
        body = entity.model_dump(mode="json") if isinstance(entity, BaseModel) else entity
        media = "application/json"
    return Response(orjson.dumps(body), status_code=result.status, headers=headers, media_type=media)


#: ``?dry_run=true`` on every import and batch (CONTRACT §8): the whole report, nothing written
DryRunQuery = Annotated[
    bool,
    Query(
        description=(
            "true: the whole report is answered with 200 as the import would give it, but nothing is written, "
            "no event is published and an Idempotency-Key is neither used nor replayed"
        )
    ),
]


def dry_run_response(result: WriteResult[Any]) -> Response:
    """The answer of a dry run: the report (the result's entity) with 200, whatever the real run would
    have answered (201 created, 422 for a batch that writes nothing), without ``Location`` or ``ETag``."""
    entity = result.entity
    body = entity.model_dump(mode="json") if isinstance(entity, BaseModel) else entity
    return Response(orjson.dumps(body), status_code=200, media_type="application/json")


# --- pagination ------------------------------------------------------------------------------

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= to get the next page")


LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, max 1000)")]
CursorQuery = Annotated[str | None, Query(description="The next_cursor of the previous page", max_length=512)]


#: what a cursor may hold: the keys of a page's last item (ids, versions), as this API writes them
MAX_CURSOR_KEY = 2**63 - 1
MAX_CURSOR_TEXT = 256


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _bad_cursor() -> Problem:
    return field_problem(["query", "cursor"], "is not a cursor this API produced")


def _valid_cursor_key(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_CURSOR_KEY
    if isinstance(value, str):
        if len(value) > MAX_CURSOR_TEXT or "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


def decode_cursor(cursor: str | None, shape: tuple[type, ...] | None = None) -> list[Any] | None:
    """The keys of a cursor :func:`encode_cursor` wrote, or a 422: each key a string (≤ 256 characters,
    storable) or an integer in 0…2⁶³−1, and, when ``shape`` is given, exactly those types in order."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(value, list) or not value or not all(_valid_cursor_key(k) for k in value):
        raise _bad_cursor()
    if shape is not None and (len(value) != len(shape) or not all(isinstance(k, t) for k, t in zip(value, shape, strict=True))):
        raise _bad_cursor()
    return value



def cursor_after(cursor: str | None, *kinds: type) -> Any:
    """Where a keyset page starts: the key of a cursor :func:`page_of` wrote — one value of type
    ``kinds[0]`` (an id, a version), or a tuple of values of ``kinds`` for a key of several parts —
    None for the first page, a 422 for any other cursor."""
    key = decode_cursor(cursor, kinds)
    if key is None:
        return None
    return key[0] if len(kinds) == 1 else tuple(key)


def page_of(found: Sequence[T], limit: int, key: Callable[[T], Any]) -> tuple[list[T], str | None]:
    """A page out of the ``limit + 1`` items a query was asked for: the first ``limit``, and the cursor
    of the page after them (the ``key`` of the last one: a value, or a tuple of its parts), None when
    there is no more."""
    items = list(found[:limit])
    if len(found) <= limit:
        return items, None
    last = key(items[-1])
    return items, encode_cursor(list(last) if isinstance(last, tuple) else [last])

# --- TI-Effective-At -------------------------------------------------------------------------

EffectiveAtHeader = Annotated[
    str | None,
    Header(
        alias="TI-Effective-At",
        description="Admin only: the instant (an RFC 3339 date-time with its offset, `2024-11-30T10:00:00Z`) "
        "the change took effect, for loading history",
        # the date-time's grammar as a pattern: generators refuse a header typed `format: date-time`
        json_schema_extra={"pattern": f"^{RFC3339_INSTANT.pattern}$", "examples": ["2024-11-30T10:00:00Z"]},
    ),
]


def parse_effective_at(value: str | None, principal: Principal) -> datetime | None:
    """The ``TI-Effective-At`` instant of an admin write (422 if malformed or in the future)."""
    if value is None:
        return None
    if not principal.is_admin:
        raise Problem(403, "Only an admin token may set TI-Effective-At")
    try:
        instant = parse_instant(value)
    except ValueError as exc:
        raise field_problem(["header", "TI-Effective-At"], str(exc)) from exc
    if instant > datetime.now(UTC):
        raise field_problem(["header", "TI-Effective-At"], "may not be in the future")
    return instant


def check_not_before(effective_at: datetime | None, current_updated_at: datetime | None) -> None:
    """409 when a back-dated write would come before the entity's current version."""
    if effective_at is None or current_updated_at is None:
        return
    current = current_updated_at if current_updated_at.tzinfo else current_updated_at.replace(tzinfo=UTC)
    if effective_at < current:
        raise Problem(409, "TI-Effective-At is earlier than the current version's time", kind="effective-at-conflict")
