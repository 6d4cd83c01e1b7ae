"""The baselines served by uvicorn with the services' options.

- reads: a bare FastAPI endpoint returning a constant JSON document (``BENCH_BASELINE_BYTES`` sets its size);
- writes: a bare FastAPI ``PUT`` storing its JSON body with one asyncpg ``INSERT`` in a transaction
  (``BEGIN``, ``INSERT``, ``COMMIT``: three round trips) on ``BENCH_BASELINE_DATABASE_URL``, when set.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI, Response

BARE_WRITE_TABLE = "CREATE TABLE IF NOT EXISTS bare_write (id text PRIMARY KEY, body jsonb NOT NULL, written_at timestamptz NOT NULL)"


def constant_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least 16)."""
    skeleton = json.dumps({"scope": "region:84", "indicators": {"padding": ""}}, separators=(",", ":"))
    pad = max(0, size - len(skeleton))
    return json.dumps({"scope": "region:84", "indicators": {"padding": "x" * pad}}, separators=(",", ":")).encode()


def create_app() -> FastAPI:
    body = constant_body(int(os.environ.get("BENCH_BASELINE_BYTES", "4096")))
    database_url = os.environ.get("BENCH_BASELINE_DATABASE_URL")
    pool: Any = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        if database_url:
            import asyncpg

            async def keep(_conn: Any) -> None:  # no reset query on release: three round trips per write
                return None

            pool = await asyncpg.create_pool(
                database_url.replace("postgresql+asyncpg://", "postgresql://"), min_size=8, max_size=8, reset=keep
            )
            await pool.execute(BARE_WRITE_TABLE)
        yield
        if pool is not None:
            await pool.close()

    app = FastAPI(title="baselines", lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, object]:
        return {"status": "ready", "checks": {}, "outbox_pending": 0, "consumer_lag": 0}

    @app.get("/v1/indicators")
    async def get_indicators(scope: str = "national") -> Response:
        return Response(content=body, media_type="application/json")

    @app.put("/v1/bare/{item_id}")
    async def put_bare(item_id: str, document: dict[str, Any] = Body()) -> dict[str, Any]:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bare_write (id, body, written_at) VALUES ($1, $2, now())"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, written_at = excluded.written_at",
                item_id, json.dumps(document),
            )
        return {"id": item_id, **document}

    return app
