"""An in-process cache of the materialised indicator responses.

Emptied whenever this process commits new figures (the consumer's ``committed`` hook, a rebuild's
swap); an entry also expires after ``MAX_AGE_S`` so that a process serving reads while another one
consumes never lags by more than that. Loads are single-flight: when an entry is missing or expired,
one request reads the database and the concurrent ones for the same scope await its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

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
