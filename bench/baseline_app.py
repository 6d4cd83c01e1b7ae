"""The read baseline: a bare FastAPI endpoint returning a constant JSON document of a given size.

Served by uvicorn with the services' options; ``BENCH_BASELINE_BYTES`` sets the size of the body.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI, Response


def constant_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least 16)."""
    skeleton = json.dumps({"scope": "region:84", "indicators": {"padding": ""}}, separators=(",", ":"))
    pad = max(0, size - len(skeleton))
    return json.dumps({"scope": "region:84", "indicators": {"padding": "x" * pad}}, separators=(",", ":")).encode()


def create_app() -> FastAPI:
    body = constant_body(int(os.environ.get("BENCH_BASELINE_BYTES", "4096")))
    app = FastAPI(title="read baseline")

    @app.get("/readyz")
    async def readyz() -> dict[str, object]:
        return {"status": "ready", "checks": {}, "outbox_pending": 0, "consumer_lag": 0}

    @app.get("/v1/indicators")
    async def get_indicators(scope: str = "national") -> Response:
        return Response(content=body, media_type="application/json")

    return app
