"""``Idempotency-Key`` on POST: same key + same body → the same response, no second effect.

The key is claimed in a short transaction (a concurrent retry then gets 409), and the response is
stored in the SAME transaction as the request's effect (:meth:`IdempotentRequest.complete`). If the
request fails, the claim is released so that a retry runs it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.db import Database, idempotency_record
from ti_shared.problems import Problem, field_problem

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID): a retry with the same key and body returns the first response",
        max_length=255,
    ),
]

STALE_CLAIM = timedelta(seconds=120)


@dataclass
class IdempotentRequest:
    db: Database
    owner: str
    key: str
    request_hash: str
    replay: JSONResponse | None = None

    async def complete(self, session: AsyncSession, status_code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Store the response in the caller's transaction (commit it with the effect)."""
        await session.execute(
            idempotency_record.update()
            .where(idempotency_record.c.owner == self.owner, idempotency_record.c.key == self.key)
            .values(
                state="completed",
                status_code=status_code,
                response_body=json.dumps(body, ensure_ascii=False),
                response_headers=json.dumps(headers or {}),
                completed_at=datetime.now(UTC),
            )
        )

    async def release(self) -> None:
        """Forget an unfinished claim (the request failed): a retry runs it again."""
        async with self.db.session() as session:
            await session.execute(
                idempotency_record.delete().where(
                    idempotency_record.c.owner == self.owner,
                    idempotency_record.c.key == self.key,
                    idempotency_record.c.state == "in_progress",
                )
            )
            await session.commit()


def request_fingerprint(method: str, path: str, body: bytes, content_type: str) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), content_type.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    db: Database,
    request: Request,
    owner: str,
    key: str | None,
    *,
    content: bytes | None = None,
    content_type: str | None = None,
) -> IdempotentRequest | None:
    """Claim ``key`` for this request; returns None without a key. ``.replay`` is set for a repeat.

    ``content``/``content_type`` replace the raw body in the fingerprint when the body is not the
    content itself (a multipart upload: its boundary changes on every retry, the file does not).
    """
    if key is None:
        return None
    key = key.strip()
    if not key:
        raise field_problem(["header", "Idempotency-Key"], "must not be empty")
    body = await request.body() if content is None else content
    media = content_type if content_type is not None else request.headers.get("content-type", "").split(";")[0].strip().lower()
    fingerprint = request_fingerprint(request.method, request.url.path, body, media)
    now = datetime.now(UTC)
    async with db.session() as session:
        query = sa.select(idempotency_record).where(idempotency_record.c.owner == owner, idempotency_record.c.key == key)
        if not db.is_sqlite:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        if row is not None:
            if row.request_hash != fingerprint:
                raise Problem(
                    422,
                    "This Idempotency-Key was already used with another request body",
                    kind="idempotency-key-reused",
                )
            if row.state == "completed":
                await session.rollback()
                headers = json.loads(row.response_headers or "{}")
                headers["Idempotent-Replayed"] = "true"
                replay = JSONResponse(json.loads(row.response_body), status_code=row.status_code, headers=headers)
                return IdempotentRequest(db, owner, key, fingerprint, replay=replay)
            locked_at = row.locked_at if row.locked_at.tzinfo else row.locked_at.replace(tzinfo=UTC)
            if now - locked_at < STALE_CLAIM:
                raise Problem(
                    409,
                    "A request with this Idempotency-Key is still being processed; retry later",
                    kind="idempotency-key-in-use",
                    headers={"Retry-After": "1"},
                )
            await session.execute(
                idempotency_record.update()
                .where(idempotency_record.c.owner == owner, idempotency_record.c.key == key)
                .values(locked_at=now)
            )
        else:
            try:
                await session.execute(
                    idempotency_record.insert().values(
                        owner=owner, key=key, request_hash=fingerprint, state="in_progress", locked_at=now
                    )
                )
                await session.commit()
            except sa.exc.IntegrityError as exc:
                raise Problem(
                    409,
                    "A request with this Idempotency-Key is being processed; retry later",
                    kind="idempotency-key-in-use",
                    headers={"Retry-After": "1"},
                ) from exc
            return IdempotentRequest(db, owner, key, fingerprint)
        await session.commit()
    return IdempotentRequest(db, owner, key, fingerprint)
