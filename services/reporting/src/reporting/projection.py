"""The consumer handler: the four domain topics → projection rows, aggregates and indicator documents.

One straight path per transaction (a fetched batch, or a *catch-up window* of several full batches
that the consumer base applies in one transaction while it is behind):

1. ``applied_versions`` — the version of each subject is the one of its current state: in memory,
   else read from the state rows (one query by primary key);
2. ``apply`` (per fetch) — each event's ``data`` is decoded into its compact row
   (``reporting.decoding``) and becomes the entity's state in memory; its history row is written at
   once by binary ``COPY`` when the fetch is large (catching up), else kept for step 3;
3. ``finish`` — the engine (``reporting.engine``) turns the changed states into aggregate deltas
   (new contribution minus the one when the transaction began, under the territory → region map
   before and after it), the touched documents are patched where their inputs changed, and
   everything is written: in one statement for a small batch (``repository.batch``); for a window,
   the states from the history rows just copied (one statement per entity kind), then the aggregates
   and documents;
4. ``committed`` — what the transaction changed becomes the handler's memory, and the rewritten
   documents are handed to the response cache. A transaction that did not commit (a crash, a retry)
   is undone in memory when the next one begins.

The memory holds, per generation, the states of every entity seen (all of them after a replay from
an empty generation, or after a start when they are ``LOAD_ALL_AT_MOST`` at most: no state is ever read
again), the territory → region map, the aggregates of
every scope and the last documents. A window over an empty generation needs no deltas at all: its
aggregates are computed from scratch over the states, and its states inserted in one statement.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventHandler, EventRejected, NotInOneStatement, OneStatement
from ti_shared.db import dialect_of
from ti_shared.events import DOMAIN_TOPICS, EVENT_TOPICS
from ti_shared.geo import REGIONS

from reporting.decoding import InvalidEventData, decode, entity_of_type
from reporting.domain import (
    DEPENDENT_ENTITIES,
    ENTITIES,
    ENTITY_OF_TOPIC,
    NATIONAL,
    TOPIC_OF_ENTITY,
    Entity,
    Row,
    Stamp,
    TerritoryRow,
)
from reporting.engine import (
    MEDIAN_NAME,
    Aggregates,
    CounterKey,
    Deltas,
    RefKey,
    Touched,
    aggregate,
    assemble,
    deltas_of,
    median_twice,
    moved_territories,
    patch,
    placement,
)
from reporting.freshness import Applied, SourceKey, Tally
from reporting.repository import figures, generations, rows, sources
from reporting.repository.batch import BatchWrites, statement_parts, write_batch
from reporting.repository.figures import digest_of_document
from reporting.repository.rows import Record, record_of

#: events per fetched batch (a catch-up window gathers several)
BATCH_SIZE = 5_000
#: a catch-up window: events and seconds of one transaction at most (see ``EventConsumer``); its
#: documents are assembled once, its states written once
WINDOW_EVENTS = 2_000_000
WINDOW_S = 60.0
#: a fetch of at least this many events writes its history at once, by binary COPY
COPY_AT = 500
#: states kept in memory at most (beyond, only the territories are kept and the others read again)
MAX_STATES = 600_000
#: on start, a generation with this many states at most (besides its territories) has them all read at
#: once; beyond, they are read when events concern them
LOAD_ALL_AT_MOST = MAX_STATES // 2

#: a small batch's one statement writes only while its generation is live (the row is locked in share
#: mode: a swap made meanwhile by another process waits for it, or it sees the swap and writes nothing)
_LIVE_GUARD = "coalesce((SELECT current FROM reporting_generation WHERE id = 1 FOR SHARE), 1) = $1::integer"

Committed = Callable[[int, datetime, Mapping[str, tuple[str, bytes]]], None]
"""Called with the generation, the time and ``{scope: (digest, document)}`` of rewritten documents."""
SourcesCommitted = Callable[[int, Mapping[SourceKey, Tally], list[str] | None], None]
"""Called with the generation, its sources' tallies and the ids of the events applied (None: too many)."""


@dataclass
class _Document:
    indicators: dict[str, Any]
    digest: str


@dataclass
class _Memory:
    """What the handler knows of one generation (see the module's docstring)."""

    generation: int
    states: dict[Entity, dict[str, Row]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    regions: dict[str, str] = field(default_factory=dict)
    complete: bool = True
    aggregates: Aggregates = field(default_factory=Aggregates)
    documents: dict[str, _Document] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    sources: dict[SourceKey, Tally] = field(default_factory=dict)
    _scopes: tuple[int, frozenset[str]] | None = None

    @property
    def empty(self) -> bool:
        return self.complete and not any(self.states.values())

    def scopes(self) -> frozenset[str]:
        """Every scope with a document: national, the regions, the known territories (territories are
        only ever added to the map, or the map restored to what it was: its size tells whether it changed)."""
        cached = self._scopes
        if cached is None or cached[0] != len(self.regions):
            cached = self._scopes = (len(self.regions), frozenset(
                (NATIONAL, *("region:" + r for r in REGIONS), *("territory:" + t for t in self.regions))
            ))
        return cached[1]

    def remember(self, entity: Entity, found: Mapping[str, Row]) -> None:
        self.states[entity].update(found)


@dataclass
class _Window:
    """What one transaction changes, until it commits."""

    session: AsyncSession
    memory: _Memory
    #: the generation had no state when the transaction began (no deltas: everything is new)
    fresh: bool
    #: the state of each entity changed, when the transaction began (None: a new entity)
    before: dict[Entity, dict[str, Row | None]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    regions_before: dict[str, str] | None = None
    #: history rows not written yet
    pending: dict[Entity, list[Record]] = field(default_factory=lambda: {e: [] for e in ENTITIES})
    #: some history went by COPY: the states are set from the history
    copied: bool = False
    #: the entities read from the state rows in this transaction (found or not)
    looked_up: set[tuple[Entity, str]] = field(default_factory=set)
    events: int = 0
    #: the sources' tallies and event ids of what it applied (``reporting.freshness``)
    sources: Applied = field(default_factory=Applied)
    # set by ``finish``
    aggregates_before: Aggregates | None = None
    applied: Deltas | None = None
    documents: dict[str, _Document] = field(default_factory=dict)
    written: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: datetime | None = None


class GenerationSwapped(RuntimeError):
    """Another process made another generation live: the batch is rolled back and applied again."""


class ReportingProjection(EventHandler):
    """Applies events to one generation of the projections (the live one when ``generation`` is None)."""

    topics: Sequence[str] = DOMAIN_TOPICS
    one_statement = True

    def __init__(self, generation: int | None = None, *, copy_at: int = COPY_AT) -> None:
        self.generation = generation
        self._copy_at = copy_at
        #: told of the documents each commit rewrote (the live service's response cache)
        self.on_commit: Committed | None = None
        #: told of the sources' tallies and the events each commit applied (the live service's freshness)
        self.on_applied: SourcesCommitted | None = None
        self._memory: _Memory | None = None
        self._window: _Window | None = None
        #: the live generation as last seen (each batch's write tells it again)
        self._live: int | None = None

    def accepts(self, event_type: str) -> bool:
        return event_type in EVENT_TOPICS

    async def is_empty(self, session: AsyncSession) -> bool:
        generation = await self._generation_of(session)
        return not await figures.scope_digests(session, generation, [NATIONAL])

    def adopt(self, other: ReportingProjection) -> None:
        """Take what another handler knows (a rebuild's, once its generation is live)."""
        self._abort()
        self._memory = other._memory
        self._live = other.generation
        if self.on_applied is not None and self._memory is not None:
            self.on_applied(self._memory.generation, self._memory.sources, None)

    # -- the transaction -------------------------------------------------------------------------------

    async def _generation_of(self, session: AsyncSession) -> int:
        if self.generation is not None:
            return self.generation
        if self._live is None:
            self._live = await generations.current_generation(session)
        return self._live

    async def _open(self, session: AsyncSession) -> _Window:
        window = self._window
        if window is not None and window.session is session:
            return window
        self._abort()  # a transaction that did not commit: what it changed in memory is void
        generation = await self._generation_of(session)
        memory = self._memory
        if memory is None or memory.generation != generation:
            memory = self._memory = await _load(session, generation)
        window = self._window = _Window(session, memory, fresh=memory.empty)
        return window

    def _abort(self) -> None:
        window, self._window = self._window, None
        if window is None:
            return
        memory = window.memory
        if window.fresh:
            for states in memory.states.values():
                states.clear()
            memory.regions.clear()
        else:
            for entity, changed in window.before.items():
                states = memory.states[entity]
                for subject, was in changed.items():
                    if was is None:
                        states.pop(subject, None)
                    else:
                        states[subject] = was
            if window.regions_before is not None:
                memory.regions.clear()
                memory.regions.update(window.regions_before)
        if window.aggregates_before is not None:
            memory.aggregates = window.aggregates_before
        elif window.applied is not None:
            memory.aggregates.apply(window.applied.negated())

    async def applied_versions(self, session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The version of each subject's current state (read from the state rows when not in memory)."""
        window = await self._open(session)
        memory = window.memory
        out: dict[tuple[str, str], int] = {}
        missing: dict[Entity, list[str]] = defaultdict(list)
        for topic, subject in keys:
            entity = ENTITY_OF_TOPIC.get(topic)
            if entity is None:
                continue
            row = memory.states[entity].get(subject)
            if row is not None:
                out[(topic, subject)] = row.version
            elif not memory.complete:
                missing[entity].append(subject)
        for entity, ids in missing.items():
            found = await rows.load_states(session, memory.generation, entity, ids)
            memory.remember(entity, found)
            window.looked_up.update((entity, subject) for subject in ids)
            topic = TOPIC_OF_ENTITY[entity]
            out.update(((topic, subject), row.version) for subject, row in found.items())
        return out

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        window = await self._open(session)
        memory = window.memory
        decoded: list[tuple[Entity, Row, Stamp]] = []
        for d in deliveries:
            ev = d.event
            entity = ENTITY_OF_TOPIC.get(d.message.topic)
            if entity is None or entity_of_type(ev.type) != entity:
                raise EventRejected(f"event type {ev.type!r} is not one of topic {d.message.topic!r}")
            try:
                row = decode(ev.type, ev.subject, ev.entityversion, ev.data)
            except InvalidEventData as exc:
                raise EventRejected(str(exc)) from exc
            decoded.append((entity, row, Stamp(ev.time.astimezone(UTC), ev.id)))
        if not memory.complete:  # the states not read yet (the consumer base usually asked for their versions)
            seen = window.looked_up
            unknown = {e: [r.id for en, r, _ in decoded if en == e and r.id not in memory.states[e] and (e, r.id) not in seen]
                       for e in ENTITIES}
            for entity, ids in unknown.items():
                if ids:
                    memory.remember(entity, await rows.load_states(session, memory.generation, entity, ids))
                    seen.update((entity, subject) for subject in ids)
        generation = memory.generation
        records: dict[Entity, list[Record]] = defaultdict(list)
        for entity, row, stamp in decoded:
            records[entity].append(record_of(generation, row, stamp))
        if len(decoded) >= self._copy_at and dialect_of(session) == "postgresql":
            for entity, copied in records.items():
                await rows.add_history(session, entity, copied)
            window.copied = True
        else:
            for entity, kept in records.items():
                window.pending[entity].extend(kept)
        for entity, row, stamp in decoded:  # every write above succeeded: the states change in memory
            self._change(window, entity, row)
            window.sources.add(memory.sources, entity, row.id, stamp)
        window.events += len(decoded)

    @staticmethod
    def _change(window: _Window, entity: Entity, row: Row) -> None:
        memory = window.memory
        states = memory.states[entity]
        if not window.fresh:
            before = window.before[entity]
            if row.id not in before:
                before[row.id] = states.get(row.id)
        if isinstance(row, TerritoryRow):
            if window.regions_before is None:
                window.regions_before = dict(memory.regions)
            memory.regions[row.id] = row.region_code
        states[row.id] = row

    async def finish(self, session: AsyncSession) -> None:
        window = self._window
        if window is None or window.session is not session or window.events == 0:
            return
        await self._write(session, window, await self._writes(session, window, scratch=True))

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        """A small batch (live mode): ``apply``, then the deltas and the documents patched, written as the
        parts of the consumer's one statement, guarded by the generation being live. A batch on an empty
        generation (aggregated from scratch) goes the transaction's way."""
        window = await self._open(session)
        if window.fresh or len(deliveries) >= self._copy_at:
            raise NotInOneStatement
        await self.apply(session, deliveries)
        writes = await self._writes(session, window, scratch=False)
        self._pending_rows(window, writes)
        generation = window.memory.generation
        if self.generation is None:
            statement.guard(_LIVE_GUARD, [generation], refused=lambda: self._swapped(generation))
        statement.add(*statement_parts(writes, statement.where))

    def _swapped(self, generation: int) -> GenerationSwapped:
        self._live = None  # the next transaction applies to the generation that is live now
        return GenerationSwapped(f"another generation went live while this batch was written to {generation}")

    async def _writes(self, session: AsyncSession, window: _Window, *, scratch: bool) -> BatchWrites:
        """What the transaction writes: the aggregates changed (from scratch when ``scratch`` allows it
        and most states changed, else by deltas) and the documents whose text changed."""
        memory = window.memory
        window.at = datetime.now(UTC)
        writes = BatchWrites(memory.generation, at=window.at, sources=window.sources.changed)
        changed = sum(len(c) for c in window.before.values())
        if scratch and memory.complete and (window.fresh or 2 * changed >= sum(len(s) for s in memory.states.values())):
            touched = self._aggregate_from_scratch(window, writes)
        else:
            touched = await self._apply_deltas(session, window, writes)
        self._assemble(window, touched, writes)
        return writes

    def _aggregate_from_scratch(self, window: _Window, writes: BatchWrites) -> Touched | None:
        """Most entities changed (a replay, a catch-up): the aggregates of every scope from the states,
        one contribution per entity instead of two per event."""
        memory = window.memory
        window.aggregates_before = memory.aggregates
        every = [row for states in memory.states.values() for row in states.values()]
        memory.aggregates = aggregate(every, memory.regions)
        writes.replace = True
        writes.counters = dict(memory.aggregates.counter_rows())
        writes.refs = memory.aggregates.ref_rows()
        return None  # every document is assembled

    async def _apply_deltas(self, session: AsyncSession, window: _Window, writes: BatchWrites) -> Touched:
        memory = window.memory
        changes = [
            (was, memory.states[entity][subject])
            for entity, changed in window.before.items() for subject, was in changed.items()
        ]
        if window.regions_before is None:  # no territory changed: none moved
            before, moved = memory.regions, set()
        else:
            before, moved = window.regions_before, moved_territories(window.regions_before, memory.regions)
        dependents = await self._dependents(session, window, moved)
        deltas = deltas_of(changes, before, memory.regions, dependents)
        programmes = memory.aggregates.programmes()
        touched = memory.aggregates.apply(deltas)
        window.applied = deltas
        aggregates = memory.aggregates
        counters: dict[CounterKey, int | None] = {}
        for key, value in deltas.counters.items():
            if value:
                counters[key] = aggregates.counters.get(key[0], {}).get(key[1])  # None: back to 0, removed
        for scope in touched.areas:
            counters[(scope, MEDIAN_NAME)] = median_twice(aggregates.areas.get(scope, ()))
        refs: dict[RefKey, int] = {}
        for ref, n in deltas.refs.items():
            if n:
                refs[ref] = aggregates.refs.get(ref[0], {}).get(ref[1], {}).get(ref[2], 0)
        writes.counters, writes.refs = counters, refs
        if aggregates.programmes() != programmes:  # a programme appeared or went: every document lists them
            for scope in memory.scopes():
                touched.counters.setdefault(scope, set()).add("grants.by_programme.")
        for scope in deltas.scopes:
            touched.counters.setdefault(scope, set())
        return touched

    async def _dependents(self, session: AsyncSession, window: _Window, moved: set[str]) -> list[Row]:
        """The unchanged actions, grants and sites of the territories that arrived or changed region."""
        if not moved:
            return []
        memory = window.memory
        out: list[Row] = []
        for entity in DEPENDENT_ENTITIES:
            changed = window.before[entity]
            if memory.complete:
                candidates: list[Row] = [r for r in memory.states[entity].values() if getattr(r, "territory_id", None) in moved]
            else:
                candidates = await rows.states_of_territories(session, memory.generation, entity, moved)
                memory.remember(entity, {r.id: r for r in candidates if r.id not in changed})
            out += [r for r in candidates if r.id not in changed]
        return out

    def _assemble(self, window: _Window, touched: Touched | None, writes: BatchWrites) -> None:
        """Patch (or assemble) the documents whose inputs changed; keep those whose text changed."""
        memory = window.memory
        aggregates = memory.aggregates
        programmes = aggregates.programmes()
        known = memory.scopes()
        if touched is None:
            scopes: Collection[str] = known
        else:
            scopes = {s for s in (*touched.counters, *touched.refs, *touched.areas) if s in known}
            if NATIONAL not in memory.digests:  # the national and regional documents always exist
                scopes |= {NATIONAL, *("region:" + r for r in REGIONS)}
        for scope in scopes:
            current = memory.documents.get(scope)
            figures_ = aggregates.figures(scope)
            if touched is None or current is None:
                indicators = assemble(scope, figures_, programmes)
            else:
                indicators = patch(
                    current.indicators, scope, figures_, programmes,
                    counters=touched.counters.get(scope, ()), refs=touched.refs.get(scope, ()),
                    areas=scope in touched.areas,
                )
                if indicators is current.indicators:  # no indicator read what changed: the same text
                    window.documents[scope] = current
                    continue
            body = orjson.dumps(indicators)
            digest = digest_of_document(body)
            window.documents[scope] = _Document(indicators, digest)
            if memory.digests.get(scope) != digest:
                writes.documents[scope] = body
                writes.digests[scope] = digest
                window.written[scope] = (digest, body)

    async def _write(self, session: AsyncSession, window: _Window, writes: BatchWrites) -> None:
        memory = window.memory
        if window.copied:
            for entity, records in window.pending.items():
                await rows.add_history(session, entity, records)
            for entity in ENTITIES:
                if window.fresh:
                    if memory.states[entity]:
                        await rows.states_from_history(session, memory.generation, entity, None)
                elif window.before[entity]:
                    await rows.states_from_history(session, memory.generation, entity, sorted(window.before[entity]))
        else:
            self._pending_rows(window, writes)
        live = await write_batch(session, writes)
        if self.generation is None and live != memory.generation:
            raise self._swapped(memory.generation)

    @staticmethod
    def _pending_rows(window: _Window, writes: BatchWrites) -> None:
        """The history rows kept for the end of the transaction, and the new states they give."""
        writes.history = {e: r for e, r in window.pending.items() if r}
        for entity, records in writes.history.items():
            latest: dict[str, Record] = {}
            for record in records:
                latest[record[1]] = record
            writes.states[entity] = list(latest.values())

    def committed(self) -> None:
        window, self._window = self._window, None
        if window is None or window.events == 0:
            return
        memory = window.memory
        memory.documents.update(window.documents)
        memory.digests.update((scope, digest) for scope, (digest, _) in window.written.items())
        memory.sources.update(window.sources.changed)
        if sum(len(s) for e, s in memory.states.items() if e != "territory") > MAX_STATES:
            for entity in DEPENDENT_ENTITIES:
                memory.states[entity].clear()
            memory.complete = False
        if self.on_commit is not None and window.at is not None:
            self.on_commit(memory.generation, window.at, window.written)
        if self.on_applied is not None:
            self.on_applied(memory.generation, memory.sources, window.sources.ids)
        if window.copied:  # what a catch-up leaves in memory lives long: the collector need not scan it again
            gc.freeze()


async def _load(session: AsyncSession, generation: int) -> _Memory:
    """What the tables hold of a generation: its territories, aggregates and document digests, and its
    other states when they are ``LOAD_ALL_AT_MOST`` at most (else they are read when events concern them)."""
    memory = _Memory(generation, sources=await sources.load_sources(session, generation))
    if not await rows.has_states(session, generation):
        return memory
    memory.complete = False
    territories = await rows.load_all_states(session, generation, "territory")
    memory.remember("territory", {t.id: t for t in territories})
    memory.regions.update((t.id, t.region_code) for t in territories if isinstance(t, TerritoryRow))
    if await rows.count_states(session, generation, DEPENDENT_ENTITIES, at_most=LOAD_ALL_AT_MOST) <= LOAD_ALL_AT_MOST:
        for entity in DEPENDENT_ENTITIES:  # few enough: every state at once, none read batch by batch
            memory.remember(entity, {r.id: r for r in await rows.load_all_states(session, generation, entity)})
        memory.complete = True
    counters, refs = await figures.load_aggregates(session, generation)
    aggregates = memory.aggregates
    for (scope, name), value in counters.items():
        if name != MEDIAN_NAME:
            aggregates.counters.setdefault(scope, {})[name] = value
    for (scope, kind, ref), n in refs.items():
        if n > 0:
            aggregates.refs.setdefault(scope, {}).setdefault(kind, {})[ref] = n
    labelled = (
        [s for s in memory.states["site"].values() if s.status == "labelled"]  # type: ignore[union-attr]
        if memory.complete else await rows.load_labelled_sites(session, generation)
    )
    for site in labelled:
        area = site.area_cents  # type: ignore[union-attr]
        for scope in placement(site.region_code, site.territory_id, memory.regions):  # type: ignore[union-attr]
            aggregates.areas.setdefault(scope, []).append(area)
    for areas in aggregates.areas.values():
        areas.sort()
    memory.digests = await figures.scope_digests(session, generation)
    return memory
