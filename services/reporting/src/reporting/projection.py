"""The consumer handler: projections of the four domain topics and the materialised indicators.

``apply`` receives a whole fetched batch: it upserts the entities' current states (a newer version
only), adds every version to the history and notes the scopes the batch touched (old and new
placement). ``finish``, called by the consumer base once per transaction before it commits,
recomputes the indicators of those scopes (national always) from the compact state columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventRejected
from ti_shared.events import DOMAIN_TOPICS, EVENT_TOPICS
from ti_shared.geo import REGIONS

from reporting import repository
from reporting.domain import (
    NATIONAL,
    ActionRow,
    GrantRow,
    InvalidEventData,
    Row,
    SiteRow,
    TerritoryRow,
    compute_indicators,
    row_from_event,
)


class ReportingProjection:
    """Applies events to one generation of the projections (the live one when ``generation`` is None)."""

    topics: Sequence[str] = DOMAIN_TOPICS

    def __init__(self, generation: int | None = None) -> None:
        self.generation = generation
        self._active_generation: int | None = None
        self._regions: set[str] = set()
        self._territories: set[str] = set()

    def accepts(self, event_type: str) -> bool:
        return event_type in EVENT_TOPICS

    async def _generation(self, session: AsyncSession) -> int:
        if self.generation is not None:
            return self.generation
        return await repository.current_generation(session)

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        generation = await self._generation(session)
        if self._active_generation != generation:
            self._regions.clear()
            self._territories.clear()
        self._active_generation = generation
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
        for entity, rows in latest.items():
            if not rows:
                continue
            old = await repository.load_rows(session, generation, entity, rows)
            for row in (*old.values(), *rows.values()):
                self._touch(row)
            await repository.save_rows(session, generation, entity, list(rows.values()), every[entity])

    def _touch(self, row: Row) -> None:
        if isinstance(row, TerritoryRow):
            self._regions.add(row.region_code)
            self._territories.add(row.id)
        elif isinstance(row, ActionRow):
            self._territories.add(row.territory_id)
        elif isinstance(row, GrantRow):
            if row.departement_region:
                self._regions.add(row.departement_region)
            if row.territory_id:
                self._territories.add(row.territory_id)
        elif isinstance(row, SiteRow):
            if row.region_code:
                self._regions.add(row.region_code)
            if row.territory_id:
                self._territories.add(row.territory_id)

    async def finish(self, session: AsyncSession) -> None:
        """Recompute the indicators of the touched scopes, in the batch's transaction."""
        generation = self._active_generation
        if generation is None:
            return
        regions, territories = set(self._regions), set(self._territories)
        states = await repository.load_states(session, generation)
        known = {t.id: t.region_code for t in states.territories}
        scopes = {NATIONAL}
        if not await repository.scope_digests(session, generation, [NATIONAL]):
            regions |= set(REGIONS)
        for tid in territories:
            if tid in known:
                scopes.add("territory:" + tid)
                regions.add(known[tid])
        scopes |= {"region:" + r for r in regions if r in REGIONS}
        docs = compute_indicators(states, scopes)
        stored = await repository.scope_digests(session, generation, scopes)
        changed = {s: doc for s, doc in docs.items() if stored.get(s) != repository.digest_of(doc)}
        await repository.write_indicators(session, generation, changed, datetime.now(UTC))
        self._regions.clear()
        self._territories.clear()
        self._active_generation = None

    async def is_empty(self, session: AsyncSession) -> bool:
        generation = await self._generation(session)
        return not await repository.scope_digests(session, generation, [NATIONAL])
