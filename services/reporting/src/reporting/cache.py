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

MAX_AGE_S = 0.25

Entry = tuple[str, bytes]
"""An ETag and a response body."""

_entries: dict[tuple[int, str], tuple[float, Entry]] = {}
_loading: dict[tuple[int, str], asyncio.Future[Entry | None]] = {}
_epoch = 0


def get(owner: int, scope: str) -> Entry | None:
    entry = _entries.get((owner, scope))
    if entry is None or time.monotonic() - entry[0] > MAX_AGE_S:
        return None
    return entry[1]


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
    """The cached entry, or what ``load`` returns (cached unless the cache was cleared meanwhile)."""
    key = (owner, scope)
    cached = get(owner, scope)
    if cached is not None:
        return cached
    pending = _loading.get(key)
    if pending is not None:
        try:
            return await asyncio.shield(pending)
        except Exception:  # noqa: BLE001 - the loader's failure: try on our own (and fail on our own)
            return await load()
    future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
    _loading[key] = future
    epoch, started = _epoch, time.monotonic()
    try:
        value = await load()
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters (if any) retry on their own
        raise
    finally:
        _loading.pop(key, None)
    if value is not None and epoch == _epoch:
        _entries[key] = (started, value)
    future.set_result(value)
    return value
