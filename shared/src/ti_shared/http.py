"""HTTP conventions of CONTRACT §2: media types, ETags, pagination cursors, ``TI-Effective-At``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Header, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from ti_shared.auth import Principal
from ti_shared.problems import Problem, field_problem

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MULTIPART = "multipart/form-data"

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
    """Checks the request's media type (415) and size (413) before FastAPI parses the body."""

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
                textual = _media_type(request).endswith("json") or _media_type(request).startswith("text/")
                if textual and (b"\x00" in body or b"\\u0000" in body):
                    raise Problem(422, "NUL characters are not accepted (they cannot be stored)", title="Invalid content")
                if body or request.headers.get("content-type"):
                    media = _media_type(request)
                    json_like = media.endswith("+json") and "application/json" in allowed
                    if media not in allowed and not json_like:
                        raise Problem(
                            415,
                            f"Content-Type '{media or '(none)'}' is not accepted here; use one of: " + ", ".join(allowed),
                        )
            return await handler(request)

        return route_handler


# --- ETag / conditional requests -------------------------------------------------------------


def etag_of(version: int) -> str:
    return f'W/"{version}"'


def _etag_values(header: str) -> list[str]:
    return [v.strip() for v in header.split(",") if v.strip()]


def not_modified(request: Request, version: int) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    values = _etag_values(header)
    return "*" in values or any(v.removeprefix("W/") == etag_of(version).removeprefix("W/") for v in values)


def check_if_match(request: Request, current_version: int | None) -> None:
    """412 when ``If-Match`` does not match the current version (or the resource does not exist)."""
    header = request.headers.get("if-match")
    if not header:
        return
    values = _etag_values(header)
    if current_version is None:
        raise Problem(412, "If-Match was given but the resource does not exist")
    if "*" in values:
        return
    if not any(v.removeprefix("W/") == etag_of(current_version).removeprefix("W/") for v in values):
        raise Problem(412, f"If-Match does not match the current version ({etag_of(current_version)})")


# --- pagination ------------------------------------------------------------------------------

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= to get the next page")


LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, max 1000)")]
CursorQuery = Annotated[str | None, Query(description="The next_cursor of the previous page", max_length=512)]


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise field_problem(["query", "cursor"], "is not a cursor this API produced") from exc
    if not isinstance(value, list):
        raise field_problem(["query", "cursor"], "is not a cursor this API produced")
    return value


# --- TI-Effective-At -------------------------------------------------------------------------

EffectiveAtHeader = Annotated[
    str | None,
    Header(
        alias="TI-Effective-At",
        description="Admin only: the instant (RFC 3339 with offset) the change took effect, for loading history",
    ),
]


def parse_effective_at(value: str | None, principal: Principal) -> datetime | None:
    """The ``TI-Effective-At`` instant of an admin write (422 if malformed or in the future)."""
    if value is None:
        return None
    if not principal.is_admin:
        raise Problem(403, "Only an admin token may set TI-Effective-At")
    try:
        instant = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise field_problem(["header", "TI-Effective-At"], "must be an RFC 3339 instant with offset") from exc
    if instant.tzinfo is None:
        raise field_problem(["header", "TI-Effective-At"], "must carry a UTC offset")
    instant = instant.astimezone(UTC)
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
