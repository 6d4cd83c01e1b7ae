"""Write rate limits (CONTRACT §2: 429 with ``Retry-After``), counted by the ``limits`` library.

Every write (POST, PUT, PATCH, DELETE) counts against its client: the ``sub`` of a token that
verifies, else the client's address (anonymous calls, and tokens that do not verify). Limits are
``limits`` strings (``"20000/minute;2000/second"``), one set for tokens (``TI_RATE_LIMIT_WRITES``)
and one for anonymous callers (``TI_RATE_LIMIT_ANONYMOUS_WRITES``); an empty string turns a set
off. Counters live in the process (a sliding window per client); a service scaled to several
processes limits each of them. Reads are not limited. Defaults in docs/security.md. The counters are
``limits``' asyncio storage: its synchronous one expires counters from a timer thread started anew
every 10 ms, which cost a thread (and the GIL's hand-overs) every few writes.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from ti_shared.auth import PRINCIPAL_STATE_KEY, Principal, TokenVerifier
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, request_path

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def parse_limits(text: str) -> list[RateLimitItem]:
    """``"20000/minute;2000/second"`` → the limits (ValueError when malformed); empty → none."""
    return parse_many(text) if text.strip() else []


class WriteRateLimiter:
    """Counts writes per client; :meth:`retry_after` is None while a client is within its limits."""

    def __init__(self, token_limits: str, anonymous_limits: str) -> None:
        self.token_limits = parse_limits(token_limits)
        self.anonymous_limits = parse_limits(anonymous_limits)
        self._limiter: SlidingWindowCounterRateLimiter | None = None  # made in the event loop, at first use

    async def retry_after(self, client: str, *, anonymous: bool) -> int | None:
        """Count one write of ``client``; the seconds to wait when it is over a limit."""
        if self._limiter is None:
            self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        wait: int | None = None
        for item in self.anonymous_limits if anonymous else self.token_limits:
            if not await self._limiter.hit(item, client):
                reset_at = (await self._limiter.get_window_stats(item, client)).reset_time
                seconds = max(1, math.ceil(reset_at - time.time()))
                wait = seconds if wait is None else max(wait, seconds)
        return wait


class RateLimitMiddleware:
    """ASGI middleware answering 429 problem+json with ``Retry-After`` to a client over its write limits.

    The token of a counted write is verified once here and handed to the authentication dependency
    (``scope["state"]``), so that a write costs one verification."""

    def __init__(self, app: ASGIApp, *, limiter: WriteRateLimiter, verifier: TokenVerifier) -> None:
        self.app = app
        self.limiter = limiter
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        principal = self._principal(scope)
        if principal is not None:
            wait = await self.limiter.retry_after("sub:" + principal.sub, anonymous=False)
        else:
            client = scope.get("client")
            wait = await self.limiter.retry_after("addr:" + (client[0] if client else "unknown"), anonymous=True)
        if wait is None:
            await self.app(scope, receive, send)
            return
        who = "this token" if principal is not None else "this address"
        problem = Problem(
            429,
            f"Too many writes from {who}; retry in {wait} s",
            title="Too Many Requests",
            headers={"Retry-After": str(wait)},
        )
        payload = json.dumps(problem.body(request_path(scope))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"retry-after", str(wait).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _principal(self, scope: Scope) -> Principal | None:
        token = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    token = credentials.strip()
                break
        if token is None:
            return None
        try:
            principal = self.verifier.verify(token)
        except Problem:
            return None
        state: dict[str, Any] = scope.setdefault("state", {})
        state[PRINCIPAL_STATE_KEY] = (token, principal)
        return principal
