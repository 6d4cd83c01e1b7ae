"""The read path of the current indicators: one response cache per service, owned by its context.

``GET /v1/indicators?scope=…`` (no ``as_of``) answers the materialised document of the scope: one
indexed row, whose JSON text is spliced into the response envelope without being decoded. The
responses are cached in the :class:`IndicatorCache` that the service creates at start-up
(:func:`install`, reachable as :func:`cache_of` ``(ctx)``):

- when the consumer commits new documents, their responses replace the cached ones (write-through:
  the next read needs no query); a rebuild's swap empties the cache;
- a scope that is not cached is read once, the concurrent reads of it awaiting that read;
- what another process may have written (a rebuild run from the command line) is caught by a
  validation: at most every ``MAX_AGE_S``, one query reads the live generation and the latest
  ``computed_at`` of its documents (the *mark*); when it differs from what the cache last knew, every
  entry is dropped. A cached answer is never more than ``MAX_AGE_S`` plus one query behind.

Every indicator response carries ``sources`` (``reporting.freshness``): spliced into the cached body
when it is answered, from the tallies the live consumer last committed (:func:`freshness_of`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.app import ServiceContext
from ti_shared.logging import get_logger

from reporting.domain import ENTITIES, AsOf, Entity, Row, Stamp, TerritoryRow, flatten
from reporting.engine import BY_CODE, explain, indicators
from reporting.freshness import Freshness
from reporting.projection import ReportingProjection
from reporting.repository import figures, generations, rows, sources

MAX_AGE_S = 0.25
CONTEXT_KEY = "indicator_cache"
FRESHNESS_KEY = "freshness"

Entry = tuple[str, bytes]
"""An ETag and a response body."""
Mark = tuple[int, datetime | None]
"""The live generation and the latest ``computed_at`` of its documents."""
MarkReader = Callable[[], Awaitable[Mark]]

log = get_logger(__name__)
_INSTANT = TypeAdapter(datetime)


def etag_of(generation: int, digest: str) -> str:
    """The ETag of an indicator response: ``W/"<generation>-<digest>"``."""
    return f'W/"{generation}-{digest}"'


def body_of(scope: str, generated_at: datetime, document: str) -> bytes:
    """The response body of a materialised document (the indicators' JSON text spliced in as is)."""
    envelope = b'{"scope":%b,"as_of":null,"generated_at":%b,"indicators":' % (
        orjson.dumps(scope), _INSTANT.dump_json(generated_at)
    )
    return envelope + document.encode() + b"}"


class IndicatorCache:
    """The cached responses of the current indicators of every scope (see the module's docstring)."""

    def __init__(self, read_mark: MarkReader, max_age_s: float = MAX_AGE_S) -> None:
        self._read_mark = read_mark
        self._max_age_s = max_age_s
        self._entries: dict[str, Entry] = {}
        self._loading: dict[str, asyncio.Future[Entry | None]] = {}
        self._mark: Mark | None = None
        self._validated = float("-inf")
        self._validating = False
        self._epoch = 0
        self._background: set[asyncio.Task[None]] = set()

    def get(self, scope: str) -> Entry | None:
        return self._entries.get(scope)

    async def get_or_load(self, scope: str, load: Callable[[], Awaitable[Entry | None]]) -> Entry | None:
        """The cached entry, or what ``load`` returns (kept unless the cache changed meanwhile)."""
        entry = self._entries.get(scope)
        if entry is not None:
            return entry
        pending = self._loading.get(scope)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except Exception:  # noqa: BLE001 - the loader's failure: try on our own (and fail on our own)
                return await load()
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._loading[scope] = future
        epoch = self._epoch
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) retry on their own
            raise
        finally:
            self._loading.pop(scope, None)
        if value is not None and epoch == self._epoch:
            self._entries[scope] = value
        future.set_result(value)
        return value

    def refresh(self, entries: Mapping[str, Entry], mark: Mark | None) -> None:
        """Documents this process has just committed (``mark``: their generation and ``computed_at``,
        None when none changed): their responses replace what was cached, and loaded meanwhile."""
        if mark is not None and self._mark is not None and self._mark[0] != mark[0]:
            self._entries.clear()  # another generation went live: every entry is of the previous one
        self._epoch += 1  # a load in flight may have read what is being replaced
        self._entries.update(entries)
        if mark is not None:
            self._mark = mark

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._mark = None

    def validate_soon(self) -> None:
        """Start a validation in the background, unless one ran less than ``max_age_s`` ago or runs."""
        now = time.monotonic()
        if self._validating or now - self._validated <= self._max_age_s:
            return
        self._validating = True
        self._validated = now
        task = asyncio.ensure_future(self._validate())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _validate(self) -> None:
        try:
            epoch = self._epoch
            mark = await self._read_mark()
            if epoch != self._epoch:
                return  # this process changed the cache meanwhile: the mark read may predate it; next time
            if self._mark != mark:
                self._entries.clear()
                self._epoch += 1
                self._mark = mark
        except Exception as exc:  # noqa: BLE001 - the entries stay; the next read tries again
            self._validated = float("-inf")
            log.warning("indicator cache validation failed", error=repr(exc))
        finally:
            self._validating = False


async def install(ctx: ServiceContext) -> None:
    """Start-up: the service's response cache and freshness (in its context), fed by its live
    consumer's commits."""
    cache = IndicatorCache(functools.partial(figures.read_live_mark, ctx.db))
    ctx.extras[CONTEXT_KEY] = cache
    async with ctx.db.read_session() as session:
        generation = await generations.current_generation(session)
        fresh = Freshness(generation, await sources.load_sources(session, generation))
    ctx.extras[FRESHNESS_KEY] = fresh
    for consumer in ctx.consumers:
        handler = consumer.handler
        if isinstance(handler, ReportingProjection) and handler.generation is None:
            handler.on_commit = functools.partial(_written_through, cache)
            handler.on_applied = fresh.committed


def cache_of(ctx: ServiceContext) -> IndicatorCache:
    cache = ctx.extras[CONTEXT_KEY]
    assert isinstance(cache, IndicatorCache)
    return cache


def freshness_of(ctx: ServiceContext) -> Freshness:
    fresh = ctx.extras[FRESHNESS_KEY]
    assert isinstance(fresh, Freshness)
    return fresh


def _written_through(cache: IndicatorCache, generation: int, at: datetime, documents: Mapping[str, tuple[str, bytes]]) -> None:
    entries = {scope: (etag_of(generation, digest), body_of(scope, at, body.decode())) for scope, (digest, body) in documents.items()}
    cache.refresh(entries, (generation, at) if documents else None)


async def current(ctx: ServiceContext, scope: str) -> Entry | None:
    """The cached response of a scope's current indicators, read from its stored document on a miss
    (None when the scope has no document)."""
    cache = cache_of(ctx)
    cache.validate_soon()

    async def load() -> Entry | None:
        async with ctx.db.reads() as connection:  # one statement: no transaction needed
            stored = await figures.read_document(connection, scope)
        if stored is None:
            return None
        return etag_of(stored.generation, stored.digest), body_of(scope, stored.computed_at, stored.document)

    return await cache.get_or_load(scope, load)


# --- computed reads: as of an instant, explanations ------------------------------------------------


def regions_of(states: Mapping[Entity, list[tuple[Row, Stamp]]]) -> dict[str, str]:
    return {row.id: row.region_code for row, _ in states["territory"] if isinstance(row, TerritoryRow)}


async def indicators_as_of(session: AsyncSession, generation: int, scope: str, as_of: AsOf | None) -> dict[str, Any]:
    """The indicators of a scope over the entity states as of an instant (the current states when
    ``as_of`` is None), by the same engine as the live documents."""
    states = await rows.states_as_of(session, generation, as_of)
    return indicators((row for entity in ENTITIES for row, _ in states[entity]), scope)


@dataclass(frozen=True)
class Explained:
    """One entity that makes a figure: what set its version, and what it contributes."""

    entity: Entity
    id: str
    version: int
    event_id: str
    time: datetime
    contribution: dict[str, Any]


async def explain_as_of(
    session: AsyncSession, generation: int, scope: str, code: str, as_of: AsOf | None, key: str | None = None
) -> list[Explained]:
    """The entities that make the figure ``code`` (its breakdown ``key`` when given) of ``scope`` as of
    an instant (None: now), sorted by entity kind and id; ``engine.explain`` says what ``contribution`` holds."""
    states = await rows.states_as_of(session, generation, as_of)
    regions = regions_of(states)
    out: list[Explained] = []
    for entity in ENTITIES:
        stamps = {row.id: stamp for row, stamp in states[entity]}
        for row, values in explain([row for row, _ in states[entity]], regions, scope, code, key):
            stamp = stamps[row.id]
            out.append(Explained(entity, row.id, row.version, stamp.event_id, stamp.time, values))
    out.sort(key=lambda e: (ENTITIES.index(e.entity), e.id))
    return out


@dataclass(frozen=True)
class Changed:
    """A figure that differs between two instants, and the events in between behind it."""

    code: str
    key: str
    before: Any
    after: Any
    events: list[tuple[Entity, str, int, Stamp]]


def _leaves(document: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    return {(code, key): leaf for code, value in document.items() for key, leaf in flatten(value)}


async def diff_between(session: AsyncSession, generation: int, scope: str, before: AsOf, after: AsOf) -> list[Changed]:
    """Every figure of ``scope`` whose value as of ``after`` differs from its value as of ``before``
    (by code and breakdown key, in the catalogue's order), each with the events counted as of
    ``after`` but not ``before`` that changed an entity contributing to its indicator at either end."""
    states = {bound: await rows.states_as_of(session, generation, bound) for bound in (before, after)}
    documents = {bound: indicators((r for e in ENTITIES for r, _ in states[bound][e]), scope) for bound in (before, after)}
    old, new = _leaves(documents[before]), _leaves(documents[after])
    changed = [k for k in {**old, **new} if old.get(k) != new.get(k)]
    if not changed:
        return []
    versions = {bound: {(e, r.id): r.version for e in ENTITIES for r, _ in states[bound][e]} for bound in (before, after)}
    moved = {k for k in versions[before].keys() | versions[after].keys() if versions[before].get(k) != versions[after].get(k)}
    between: dict[tuple[Entity, str], list[tuple[int, Stamp]]] = {}
    for entity in ENTITIES:
        ids = sorted(i for e, i in moved if e == entity)
        for subject, version, stamp in await rows.history_between(session, generation, entity, ids, before, after):
            between.setdefault((entity, subject), []).append((version, stamp))
    contributors: dict[str, set[tuple[Entity, str]]] = {}
    for code in dict.fromkeys(code for code, _ in changed):
        keys: set[tuple[Entity, str]] = set()
        for bound in (before, after):
            regions = regions_of(states[bound])
            for entity in ENTITIES:
                candidates = [r for r, _ in states[bound][entity] if (entity, r.id) in between]
                keys.update((entity, r.id) for r, _ in explain(candidates, regions, scope, code))
        contributors[code] = keys
    out = []
    for code, key in changed:
        events = [(e, i, v, st) for e, i in contributors[code] for v, st in between[(e, i)]]
        events.sort(key=lambda ev: (ev[3].time, ev[0], ev[1], ev[2]))
        out.append(Changed(code, key, old.get((code, key)), new.get((code, key)), events))
    order = {code: i for i, code in enumerate(BY_CODE)}
    out.sort(key=lambda c: (order.get(c.code, len(order)), c.key))
    return out
