"""Browser front ends on other origins (the ANCT site reading the indicators): CORS by allow-lists.

Two lists of origins (``scheme://host[:port]``, or ``*``), comma- or space-separated:

- ``TI_CORS_ORIGINS`` (default ``*``): pages of these origins may **read** — ``GET`` and ``HEAD``,
  without credentials, with the headers a read sends (``If-None-Match``…). The public reads are open
  data; a read that needs a token (grants) sends ``Authorization``, which only the next list allows.
- ``TI_CORS_WRITE_ORIGINS`` (default empty: none): pages of these origins may also write — every
  method, with ``Authorization``, ``Content-Type``, ``If-Match``, ``Idempotency-Key`` and
  ``TI-Effective-At``.

Preflight requests (``OPTIONS`` with ``Access-Control-Request-Method``) are answered here, before any
route; one that asks for what its origin may not do is refused with a 403 problem (the browser then
blocks the request). ``ETag``, ``TI-Event-Id``, ``Retry-After``, ``Location`` and ``X-Request-ID`` are
exposed to the page's script. The matching itself is Starlette's ``CORSMiddleware``, one per list.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, request_path

if TYPE_CHECKING:
    from ti_shared.settings import PlatformSettings

EXPOSED_HEADERS = ("ETag", "TI-Event-Id", "Retry-After", "Location", "X-Request-ID")
READ_METHODS = ("GET", "HEAD")
READ_HEADERS = ("If-None-Match", "X-Request-ID")
WRITE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
WRITE_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "TI-Effective-At", "X-Request-ID")
#: how long a browser may keep a preflight's answer
MAX_AGE_S = 600

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|\*")


def parse_origins(text: str) -> list[str]:
    """``"https://a.fr, https://b.fr"`` → the origins (ValueError for one that is not an origin)."""
    origins = [o.strip().rstrip("/") for o in re.split(r"[,\s]+", text) if o.strip()]
    bad = [o for o in origins if not _ORIGIN.fullmatch(o)]
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port], or *): {', '.join(bad)}")
    return origins


def install_cors(app: Any, platform: PlatformSettings) -> None:
    """The outermost middleware of ``app`` (a 413, 429 or 503 answer carries the CORS headers too)."""
    reads, writes = parse_origins(platform.cors_origins), parse_origins(platform.cors_write_origins)
    if reads or writes:
        app.add_middleware(CorsMiddleware, read_origins=reads, write_origins=writes)


class CorsMiddleware:
    """Reads for ``read_origins``, everything for ``write_origins`` (module docstring)."""

    def __init__(self, app: ASGIApp, *, read_origins: list[str], write_origins: list[str]) -> None:
        self.app = app
        self.write_origins = set(write_origins)
        self.reads = CORSMiddleware(
            app, allow_origins=read_origins, allow_methods=READ_METHODS, allow_headers=READ_HEADERS,
            expose_headers=EXPOSED_HEADERS, max_age=MAX_AGE_S,
        )
        self.writes = CORSMiddleware(
            app, allow_origins=write_origins, allow_methods=WRITE_METHODS, allow_headers=WRITE_HEADERS,
            expose_headers=EXPOSED_HEADERS, max_age=MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        origin = headers.get(b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        writer = origin.decode("latin-1") in self.write_origins or "*" in self.write_origins
        cors = self.writes if writer else self.reads
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await cors(scope, receive, _problem_on_refusal(scope, send))
        else:
            await cors(scope, receive, send)


def _problem_on_refusal(scope: Scope, send: Send) -> Send:
    """Starlette refuses a preflight with a plain-text 400; the platform answers a 403 problem."""
    refused = False

    async def _send(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] == 400:
            refused = True
            return
        if not refused:
            await send(message)
            return
        reason = bytes(message.get("body", b"")).decode("utf-8", "replace") or "Disallowed CORS request"
        problem = Problem(403, f"{reason}: this origin may not make this cross-origin request", title="Forbidden")
        payload = json.dumps(problem.body(request_path(scope))).encode()
        await send({
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(payload)).encode())],
        })
        await send({"type": "http.response.body", "body": payload})

    return _send
