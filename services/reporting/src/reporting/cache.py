"""An in-process cache of the materialised indicator responses, per database engine (``owner``).

When this process commits new documents, the consumer puts their responses in (write-through: the
next read needs no query); a rebuild's swap empties it. An entry also expires after ``MAX_AGE_S`` so that a process serving reads while another one
consumes never lags by more than that. Loads are single-flight: when an entry is missing or expired,
one request reads the database and the concurrent ones for the same scope await its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import orjson
from pydantic import TypeAdapter
from ti_shared.logging import get_logger

MAX_AGE_S = 0.25

Entry = tuple[str, bytes]
"""An ETag and a response body."""

_entries: dict[tuple[int, str], tuple[float, Entry]] = {}
_loading: dict[tuple[int, str], asyncio.Future[Entry | None]] = {}
_epoch = 0
_background: set[asyncio.Task[None]] = set()
log = get_logger(__name__)


def get(owner: int, scope: str) -> Entry | None:
    entry = _entries.get((owner, scope))
    if entry is None or time.monotonic() - entry[0] > MAX_AGE_S:
        return None
    return entry[1]


def held(owner: int, scope: str) -> Entry | None:
    """The entry held for a scope, expired or not."""
    entry = _entries.get((owner, scope))
    return entry[1] if entry is not None else None


def put(owner: int, scope: str, etag: str, body: bytes) -> None:
    _entries[(owner, scope)] = (time.monotonic(), (etag, body))


_INSTANT = TypeAdapter(datetime)


def etag_of(generation: int, digest: str) -> str:
    return f'W/"{generation}-{digest}"'


def body_of(scope: str, generated_at: datetime, document: str) -> bytes:
    """The response body of a materialised document (the indicators' JSON text is spliced in as is)."""
    envelope = b'{"scope":%b,"as_of":null,"generated_at":%b,"indicators":' % (
        orjson.dumps(scope), _INSTANT.dump_json(generated_at)
    )
    return envelope + document.encode() + b"}"


def refresh(owner: int, entries: Mapping[str, Entry]) -> None:
    """Newly committed responses: they replace what was cached (and what is being loaded) for their scopes."""
    global _epoch
    _epoch += 1  # a load still in flight may have read the previous documents
    now = time.monotonic()
    for scope, entry in entries.items():
        _entries[(owner, scope)] = (now, entry)


def clear() -> None:
    global _epoch
    _epoch += 1
    _entries.clear()


async def get_or_load(owner: int, scope: str, load: Callable[[], Awaitable[Entry | None]]) -> Entry | None:
    """The cached entry, or what ``load`` returns (cached unless the cache was cleared meanwhile).

    An expired entry is still answered with while ONE background load refreshes it (its age stays
    within ``MAX_AGE_S`` plus one read), so that no request waits on the database for a cached scope."""
    key = (owner, scope)
    entry = _entries.get(key)
    if entry is not None:
        if time.monotonic() - entry[0] > MAX_AGE_S and key not in _loading:
            task = asyncio.create_task(_refresh(key, load, _claim(key)))
            _background.add(task)
            task.add_done_callback(_background.discard)
        return entry[1]
    pending = _loading.get(key)
    if pending is not None:
        try:
            return await asyncio.shield(pending)
        except Exception:  # noqa: BLE001 - the loader's failure: try on our own (and fail on our own)
            return await load()
    return await _load(key, load, _claim(key))


_Claim = tuple["asyncio.Future[Entry | None]", int, float]


def _claim(key: tuple[int, str]) -> _Claim:
    """Become the one loader of ``key`` (synchronously: no other request can claim it meanwhile)."""
    future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
    _loading[key] = future
    return future, _epoch, time.monotonic()


async def _load(key: tuple[int, str], load: Callable[[], Awaitable[Entry | None]], claim: _Claim) -> Entry | None:
    future, epoch, started = claim
    try:
        value = await load()
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters (if any) retry on their own
        raise
    finally:
        _loading.pop(key, None)
    if epoch == _epoch:
        if value is not None:
            _entries[key] = (started, value)
        else:
            _entries.pop(key, None)
    future.set_result(value)
    return value


async def _refresh(key: tuple[int, str], load: Callable[[], Awaitable[Entry | None]], claim: _Claim) -> None:
    try:
        await _load(key, load, claim)
    except Exception as exc:  # noqa: BLE001 - the entry stays as it was; the next read tries again
        log.warning("indicator cache refresh failed", scope=key[1], error=repr(exc))
