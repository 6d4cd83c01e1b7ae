"""``Idempotency-Key`` on POST: same key + same request → the same response, no second effect.

Written once for every service as :func:`idempotent` (decision record 16)::

    async with idempotent(uow, request, principal, idempotency_key, upload=upload) as idem:
        if idem.replay is not None:
            return idem.replay
        result = await service.import_sites(uow, principal, upload, mode=mode)
        return await idem.commit(write_response(result))

- **Owner**: a key belongs to the client that chose it, the token's ``sub``, and to the operator it acts
  for (``ti_operator``) when it has one: the same ``sub`` acting for two operators has two key spaces
  (a CSV batch takes its rows' operator from the token). Each service has its own key table.
- **Same request**: method, path, query, ``TI-Effective-At``, media type and body (or, for an upload,
  the file and its media type: a multipart boundary changes on every retry, the file does not).
  Another request with a used key → 422.
- **Claimed before the effect** in a short transaction of its own: a concurrent retry gets 409 with
  ``Retry-After`` until the first one ends (a claim older than :data:`STALE_CLAIM` is taken over).
- **Which responses are stored** (:func:`is_stored`), in the effect's transaction, and replayed with
  ``Idempotent-Replayed: true``: every 2xx, and every 4xx but 409, 412 and 429 — whether the block
  returns it (a refused atomic import with its report) or raises it as a :class:`Problem` (a 404,
  a 422 of the domain). Those are the answer to this request: the contract promises the same one.
- **Which release the key** (a retry runs again): 409, 412 and 429 (the state moved or the client is
  told to come back: a retry may succeed), 5xx, and any other failure (database, bus, crash,
  cancellation).

**Dry runs** (``?dry_run=true``, CONTRACT §8) are decided here too: ``idempotent(..., dry_run=True)``
neither claims nor replays the key, and the block ends with ``return await idem.finish(result,
request)``, which rolls the unit of work back (nothing written, no event) and answers the report
with 200 (``ti_shared.http.dry_run_response``). Without a dry run, ``finish`` is
``commit(write_response(result, request))``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import Header, Request
from starlette.responses import Response

from ti_shared.auth import Principal
from ti_shared.db import Database, idempotency_record
from ti_shared.http import dry_run_response, write_response
from ti_shared.logging import get_logger
from ti_shared.problems import Problem, field_problem, problem_response

if TYPE_CHECKING:
    from ti_shared.app import UnitOfWork
    from ti_shared.service import WriteResult
    from ti_shared.uploads import Upload

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID): a retry with the same key and request returns the first response",
        max_length=255,
    ),
]

log = get_logger(__name__)

STALE_CLAIM = timedelta(seconds=120)
#: 4xx answers that say "the state moved, or come back later": not stored, a retry runs again
RETRYABLE_4XX = frozenset({409, 412, 429})
_OWNER_MAX = 256


def is_stored(status: int) -> bool:
    """Whether a response with ``status`` is stored for replay (else the key is released)."""
    return 200 <= status < 300 or (400 <= status < 500 and status not in RETRYABLE_4XX)


def owner_of(principal: Principal) -> str:
    """The key space of a token: its ``sub``, and its operator when it has one."""
    owner = principal.sub if principal.operator is None else json.dumps([principal.sub, principal.operator])
    if len(owner) > _OWNER_MAX:
        owner = "sha256:" + hashlib.sha256(owner.encode()).hexdigest()
    return owner


def request_fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


async def _fingerprint(request: Request, upload: Upload | None) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    if upload is not None:
        body, media = upload.data, upload.media_type
    else:
        body = await request.body()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    effective_at = request.headers.get("ti-effective-at", "")
    return request_fingerprint(request.method, request.url.path, query, effective_at, media, body)


def _in_use() -> Problem:
    return Problem(
        409,
        "A request with this Idempotency-Key is still being processed; retry later",
        kind="idempotency-key-in-use",
        headers={"Retry-After": "1"},
    )


@dataclass
class _Claim:
    db: Database
    owner: str
    key: str

    def _where(self) -> Any:
        return sa.and_(idempotency_record.c.owner == self.owner, idempotency_record.c.key == self.key)

    async def complete(self, uow: UnitOfWork[Any], response: Response) -> None:
        """Store ``response`` in the unit of work's transaction (committed with the effect)."""
        body = bytes(response.body)
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length",)}
        await uow.session.execute(
            idempotency_record.update()
            .where(self._where())
            .values(
                state="completed",
                status_code=response.status_code,
                response_body=body.decode(),
                response_headers=json.dumps(headers),
                completed_at=datetime.now(UTC),
            )
        )

    async def release(self) -> None:
        """Forget an unfinished claim (the request failed): a retry runs it again."""
        async with self.db.session() as session:
            await session.execute(idempotency_record.delete().where(self._where(), idempotency_record.c.state == "in_progress"))
            await session.commit()


def _replay(row: Any) -> Response:
    headers: dict[str, str] = json.loads(row.response_headers or "{}")
    headers["Idempotent-Replayed"] = "true"
    media = None if any(k.lower() == "content-type" for k in headers) else "application/json"
    return Response(row.response_body.encode(), status_code=row.status_code, headers=headers, media_type=media)


async def _claim(db: Database, owner: str, key: str, fingerprint: str) -> tuple[_Claim, Response | None]:
    """Claim ``key`` (a short transaction of its own); the stored response when it was completed."""
    now = datetime.now(UTC)
    claim = _Claim(db, owner, key)
    async with db.session() as session:
        query = sa.select(idempotency_record).where(claim._where())
        if not db.is_sqlite:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        if row is None:
            try:
                await session.execute(
                    idempotency_record.insert().values(
                        owner=owner, key=key, request_hash=fingerprint, state="in_progress", locked_at=now
                    )
                )
                await session.commit()
            except sa.exc.IntegrityError as exc:
                raise _in_use() from exc
            return claim, None
        if row.request_hash != fingerprint:
            raise Problem(422, "This Idempotency-Key was already used with another request", kind="idempotency-key-reused")
        if row.state == "completed":
            return claim, _replay(row)
        if now - row.locked_at < STALE_CLAIM:
            raise _in_use()
        await session.execute(idempotency_record.update().where(claim._where()).values(locked_at=now))
        await session.commit()
    return claim, None


class Idempotent:
    """The handle of an :func:`idempotent` block: ``replay`` (a repeat), ``commit(response)`` or
    ``finish(result, request)`` (the end)."""

    def __init__(self, uow: UnitOfWork[Any], claim: _Claim | None, replay: Response | None, *, dry_run: bool = False) -> None:
        self.uow = uow
        self.replay = replay
        self.dry_run = dry_run
        self._claim = claim
        self._stored = False
        self._committed = False

    async def finish(self, result: WriteResult[Any], request: Request) -> Response:
        """The end of the block: a dry run is rolled back and answers the report with 200; otherwise
        ``commit(write_response(result, request))``."""
        if self.dry_run:
            await self.uow.rollback()
            self._committed = True
            return dry_run_response(result)
        return await self.commit(write_response(result, request))

    async def commit(self, response: Response) -> Response:
        """Store ``response`` (if :func:`is_stored`) with the effect, commit the unit of work, return it."""
        if self.dry_run:
            raise RuntimeError("a dry run ends with `return await idem.finish(result, request)`, never a commit")
        if self._claim is not None and is_stored(response.status_code):
            await self._claim.complete(self.uow, response)
            self._stored = True
        await self.uow.commit()
        self._committed = True
        return response


@asynccontextmanager
async def idempotent(
    uow: UnitOfWork[Any],
    request: Request,
    principal: Principal,
    key: str | None,
    *,
    upload: Upload | None = None,
    dry_run: bool = False,
) -> AsyncIterator[Idempotent]:
    """Run a POST's effect once per ``Idempotency-Key`` (see the module's docstring for the rules).

    Without a key the block runs as it would without this wrapper (``commit`` commits). The block
    returns ``idem.replay`` when set, else ends with ``return await idem.commit(response)`` (or
    ``idem.finish(result, request)``, which a ``dry_run`` needs: then the key is not looked at).
    """
    if key is None or dry_run:
        idem = Idempotent(uow, None, None, dry_run=dry_run)
        yield idem
        if dry_run and not idem._committed:
            raise RuntimeError("a dry run ends with `return await idem.finish(result, request)`")
        return
    key = key.strip()
    if not key:
        raise field_problem(["header", "Idempotency-Key"], "must not be empty")
    claim, replay = await _claim(uow.ctx.db, owner_of(principal), key, await _fingerprint(request, upload))
    idem = Idempotent(uow, claim, replay)
    if replay is not None:
        yield idem
        return
    try:
        yield idem
    except Problem as problem:
        if is_stored(problem.status):
            await _store_problem(uow, claim, problem, request)
        else:
            await _give_up(uow, claim)
        raise
    except BaseException:
        await _give_up(uow, claim)
        raise
    if not idem._committed:
        await _give_up(uow, claim)
        raise RuntimeError("an idempotent block must end with `return idem.replay` or `return await idem.commit(...)`")
    if not idem._stored:
        await claim.release()


async def _store_problem(uow: UnitOfWork[Any], claim: _Claim, problem: Problem, request: Request) -> None:
    """A stored 4xx raised by the effect: its writes are given up, the answer is kept for replay."""
    try:
        await uow.rollback()
        await claim.complete(uow, problem_response(problem, request))
        await uow.session.commit()
    except Exception as exc:  # noqa: BLE001 - the problem is still the answer; the key is released
        log.warning("idempotency: could not store a refusal, releasing the key", error=repr(exc))
        await _give_up(uow, claim)


async def _give_up(uow: UnitOfWork[Any], claim: _Claim) -> None:
    """Roll the effect back and release the key; failing here (the database is down) leaves the claim
    to go stale, and the request's own failure is what the client gets."""
    with contextlib.suppress(Exception):
        await uow.rollback()
    try:
        await claim.release()
    except Exception as exc:  # noqa: BLE001
        log.warning("idempotency: could not release a claim (it goes stale)", error=repr(exc))
