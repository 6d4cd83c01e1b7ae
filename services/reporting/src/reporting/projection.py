"""The consumer handler: projections of the four domain topics and the materialised indicators.

``apply`` receives a whole fetched batch: it upserts the entities' current states (a newer version
only), adds every version to the history, and adds to the batch's aggregate deltas each changed
entity's new contribution minus its old one (``reporting.aggregates``). A territory arriving or
changing region moves the contributions of its actions, grants and sites too. ``finish``, called by
the consumer base once per transaction before it commits, writes the deltas (bulk upserts), the area
medians of the scopes whose sites changed, and reassembles the documents of the touched scopes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventHandler, EventRejected
from ti_shared.events import DOMAIN_TOPICS, EVENT_TOPICS
from ti_shared.geo import REGIONS

from reporting import cache, repository
from reporting.aggregates import (
    DEPENDENT_ENTITIES,
    EVERY_SCOPE,
    PROGRAMME_KIND,
    Deltas,
    assemble,
    batch_deltas,
    programmes_from,
    regions_after,
)
from reporting.domain import NATIONAL, InvalidEventData, Row, row_from_event

#: events per consumer batch: a batch's cost is its events plus the scopes it touches (at most all)
BATCH_SIZE = 10_000


class ReportingProjection(EventHandler):
    """Applies events to one generation of the projections (the live one when ``generation`` is None)."""

    topics: Sequence[str] = DOMAIN_TOPICS

    def __init__(self, generation: int | None = None) -> None:
        self.generation = generation
        self._session: AsyncSession | None = None
        self._active_generation: int | None = None
        self._deltas = Deltas()
        #: the responses of the documents written by the transaction being committed (live generation)
        self._written: tuple[int, dict[str, cache.Entry], cache.Mark | None] | None = None
        #: after a committed batch: its generation and programme list (its national document exists)
        self._known: tuple[int, list[str]] | None = None
        self._known_pending: tuple[int, list[str]] | None = None

    def accepts(self, event_type: str) -> bool:
        return event_type in EVENT_TOPICS

    async def _generation(self, session: AsyncSession) -> int:
        if self.generation is not None:
            return self.generation
        return await repository.current_generation(session)

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        if self._session is not session:  # a new transaction: what an abandoned one noted is void
            self._session, self._deltas = session, Deltas()
            self._active_generation = await self._generation(session)
        generation = self._active_generation
        assert generation is not None
        every: dict[str, list[Row]] = {"territory": [], "action": [], "grant": [], "site": []}
        latest: dict[str, dict[str, Row]] = {k: {} for k in every}
        for d in deliveries:
            ev = d.event
            try:
                row = row_from_event(ev.type, ev.subject, ev.entityversion, ev.time, ev.data)
            except InvalidEventData as exc:
                raise EventRejected(str(exc)) from exc
            entity = repository.entity_of_row(row)
            every[entity].append(row)
            current = latest[entity].get(ev.subject)
            if current is None or row.version > current.version:
                latest[entity][ev.subject] = row
        old = {entity: await repository.load_rows(session, generation, entity, rows) for entity, rows in latest.items() if rows}
        deltas = await self._deltas_of(session, generation, latest, old)
        for entity, rows in latest.items():
            if rows:
                await repository.save_rows(session, generation, entity, list(rows.values()), every[entity])
        self._deltas.merge(deltas)

    async def _deltas_of(
        self, session: AsyncSession, generation: int, latest: dict[str, dict[str, Row]], old: dict[str, dict[str, Row]]
    ) -> Deltas:
        """New minus old contributions of the batch's entities, and of the entities of moved territories."""
        needed = set(latest["territory"])
        for entity in DEPENDENT_ENTITIES:
            for row in (*latest[entity].values(), *old.get(entity, {}).values()):
                tid = getattr(row, "territory_id", None)
                if tid is not None:
                    needed.add(tid)
        before = await repository.territory_regions(session, generation, needed)
        after = regions_after(latest["territory"], old.get("territory", {}), before)
        moved = {tid for tid in latest["territory"] if before.get(tid) != after[tid]}
        dependents: list[Row] = []
        if moved:
            for entity in DEPENDENT_ENTITIES:
                dependents += await repository.rows_of_territories(session, generation, entity, moved)
        return batch_deltas(latest, old, before, after, dependents)

    def committed(self) -> None:
        """New figures are committed: the responses of the rewritten documents replace the cached ones."""
        written, self._written = self._written, None
        if written is not None:
            cache.refresh(*written)
        if self._known_pending is not None:
            self._known, self._known_pending = self._known_pending, None

    async def finish(self, session: AsyncSession) -> None:
        """Write the batch's aggregate deltas and reassemble the touched scopes, in the batch's transaction."""
        generation, deltas = self._active_generation, self._deltas
        self._session, self._active_generation, self._deltas = None, None, Deltas()
        self._written = self._known_pending = None
        if generation is None:
            return
        counters, refs = deltas.nonzero()
        scopes = set(deltas.scopes) | {NATIONAL}
        programme_deltas = {v: n for (s, k, v), n in refs.items() if s == EVERY_SCOPE and k == PROGRAMME_KIND}
        before = await repository.programme_refs(session, generation) if programme_deltas else {}
        await repository.add_counters(session, generation, counters)
        await repository.add_refs(session, generation, refs)
        if deltas.site_scopes:
            await repository.update_medians(session, generation, deltas.site_scopes)
        # what earlier committed batches established is not read again: the programme list (which only
        # grant events change) and that the national document exists
        known = self._known if self._known is not None and self._known[0] == generation else None
        if programme_deltas or known is None:
            programmes = programmes_from(await repository.programme_refs(session, generation))
        else:
            programmes = known[1]
        if programme_deltas and programmes_from(before) != programmes:
            scopes |= {"region:" + r for r in REGIONS}
            scopes |= {"territory:" + t for t in await repository.known_territories(session, generation)}
        if known is None and not await repository.scope_digests(session, generation, [NATIONAL]):
            scopes |= {"region:" + r for r in REGIONS}
        scopes = {s for s in scopes if not s.startswith("region:") or s.removeprefix("region:") in REGIONS}
        await self._write_documents(session, generation, scopes, programmes)
        self._known_pending = (generation, programmes)

    async def _write_documents(self, session: AsyncSession, generation: int, scopes: set[str], programmes: list[str]) -> None:
        counters = await repository.load_counters(session, generation, scopes)
        distinct = await repository.load_distinct_counts(session, generation, scopes)
        stored = await repository.scope_digests(session, generation, scopes)
        changed: dict[str, bytes] = {}
        for scope in scopes:
            document = orjson.dumps(assemble(scope, counters.get(scope, {}), distinct.get(scope, {}), programmes))
            if stored.get(scope) != repository.digest_of_document(document):
                changed[scope] = document
        at = datetime.now(UTC)
        await repository.write_documents(session, generation, changed, at)
        if self.generation is None:  # the live generation: what reads will be answered with once committed
            entries: dict[str, cache.Entry] = {}
            for scope, document in changed.items():
                text = document.decode()
                entries[scope] = (cache.etag_of(generation, repository.digest_of_document(document)),
                                  cache.body_of(scope, at, text))
            self._written = (id(session.bind), entries, (generation, at) if changed else None)

    async def is_empty(self, session: AsyncSession) -> bool:
        generation = await self._generation(session)
        return not await repository.scope_digests(session, generation, [NATIONAL])
