"""Cached indicator responses served before routing.

``GET /v1/indicators?scope=…`` (current figures, no ``as_of``) is the platform's hottest read. When its
response is in the service's response cache (``reporting.reads``, filled by the route and by the consumer as it
commits), this ASGI layer answers it directly — same body (``sources`` spliced in), ETag, ``304`` on
``If-None-Match`` —
without going through the router and dependency resolution. Everything else, a miss included, goes
on to the application. It sits inside the edge middleware, so request ids, logs and metrics apply.
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send
from ti_shared.geo import REGIONS
from ti_shared.http import if_none_match

from reporting import reads
from reporting.domain import parse_scope

PATH = "/v1/indicators"
#: what the edge middleware labels the metrics of an answered request with
_ROUTE = SimpleNamespace(path=PATH)


def _scope_key(query_string: bytes) -> str | None:
    """The scope key of a query holding ``scope`` only (or nothing: national), else None."""
    if not query_string:
        return "national"
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "scope":
        return None
    try:
        scope = parse_scope(pairs[0][1])
    except ValueError:
        return None
    if scope.kind == "region" and scope.code not in REGIONS:
        return None
    return scope.key


class CachedIndicators:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == PATH and await self._answer(scope, send):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        key = _scope_key(scope.get("query_string", b""))
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if key is None or ctx is None:
            return False
        cache = reads.cache_of(ctx)
        cache.validate_soon()
        cached = cache.get(key)
        if cached is None:
            return False
        etag, body = cached
        scope["route"] = _ROUTE
        headers = [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]
        header = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        if if_none_match(header, etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        body = reads.freshness_of(ctx).splice(body)
        headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
