"""An in-process cache of the materialised indicator responses, per database engine (``owner``).

When this process commits new documents, the consumer puts their responses in (write-through: the
next read needs no query); a rebuild's swap empties it. Reads are single-flight: when a scope is not
cached, one request reads the database and the concurrent ones for the same scope await its answer.

What another process may have written (a rebuild run from the command line, another reporting
process) is caught by a validation: at most every ``MAX_AGE_S``, one query per owner reads the live
generation and the latest ``computed_at`` of its documents (the *mark*); when that differs from what
this process last knew, the owner's entries are dropped. So a cached answer is never more than
``MAX_AGE_S`` plus one query behind the database, and a busy scope costs no query per read.
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
Mark = tuple[int, datetime | None]
"""The live generation and the latest ``computed_at`` of its documents."""
MarkReader = Callable[[], Awaitable[Mark]]

_entries: dict[tuple[int, str], Entry] = {}
_loading: dict[tuple[int, str], asyncio.Future[Entry | None]] = {}
_marks: dict[int, Mark] = {}
_validated: dict[int, float] = {}
_validating: set[int] = set()
_epoch = 0
_background: set[asyncio.Task[None]] = set()
log = get_logger(__name__)


def get(owner: int, scope: str) -> Entry | None:
    return _entries.get((owner, scope))


_INSTANT = TypeAdapter(datetime)


def etag_of(generation: int, digest: str) -> str:
    return f'W/"{generation}-{digest}"'


def body_of(scope: str, generated_at: datetime, document: str) -> bytes:
    """The response body of a materialised document (the indicators' JSON text is spliced in as is)."""
    envelope = b'{"scope":%b,"as_of":null,"generated_at":%b,"indicators":' % (
        orjson.dumps(scope), _INSTANT.dump_json(generated_at)
    )
    return envelope + document.encode() + b"}"


def _drop(owner: int) -> None:
    global _epoch
    _epoch += 1  # a load still in flight may have read what is being dropped
    for key in [k for k in _entries if k[0] == owner]:
        del _entries[key]


def refresh(owner: int, entries: Mapping[str, Entry], mark: Mark | None) -> None:
    """Documents this process has just committed (``mark``: their generation and ``computed_at``, None
    when none changed): their responses replace what was cached, and loaded meanwhile, for their scopes."""
    global _epoch
    if mark is not None and _marks.get(owner, mark)[0] != mark[0]:
        _drop(owner)  # another generation went live: every entry is of the previous one
    _epoch += 1
    for scope, entry in entries.items():
        _entries[(owner, scope)] = entry
    if mark is not None:
        _marks[owner] = mark


def forget(owner: int) -> None:
    """Everything known of an owner: called when a service starts, since the id of an engine that
    was freed may be given to a new one."""
    _drop(owner)
    _marks.pop(owner, None)
    _validated.pop(owner, None)


def clear() -> None:
    global _epoch
    _epoch += 1
    _entries.clear()
    _marks.clear()


def validate_soon(owner: int, read_mark: MarkReader) -> None:
    """Start a validation of the owner's entries in the background, unless one ran less than
    ``MAX_AGE_S`` ago or is running."""
    now = time.monotonic()
    if owner in _validating or now - _validated.get(owner, float("-inf")) <= MAX_AGE_S:
        return
    _validating.add(owner)
    _validated[owner] = now
    _spawn(_validate(owner, read_mark))


async def _validate(owner: int, read_mark: MarkReader) -> None:
    try:
        epoch = _epoch
        mark = await read_mark()
        if epoch != _epoch:
            return  # this process changed the cache meanwhile: the mark read may predate it; next time
        if _marks.get(owner) != mark:
            _drop(owner)
            _marks[owner] = mark
    except Exception as exc:  # noqa: BLE001 - the entries stay; the next read tries again
        _validated.pop(owner, None)
        log.warning("indicator cache validation failed", error=repr(exc))
    finally:
        _validating.discard(owner)


def _spawn(coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def get_or_load(owner: int, scope: str, load: Callable[[], Awaitable[Entry | None]]) -> Entry | None:
    """The cached entry, or what ``load`` returns (cached unless the cache changed meanwhile)."""
    key = (owner, scope)
    entry = _entries.get(key)
    if entry is not None:
        return entry
    pending = _loading.get(key)
    if pending is not None:
        try:
            return await asyncio.shield(pending)
        except Exception:  # noqa: BLE001 - the loader's failure: try on our own (and fail on our own)
            return await load()
    future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
    _loading[key] = future
    epoch = _epoch
    try:
        value = await load()
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters (if any) retry on their own
        raise
    finally:
        _loading.pop(key, None)
    if value is not None and epoch == _epoch:
        _entries[key] = value
    future.set_result(value)
    return value
