"""Every query of the editions: their own tables, the live consumer's offsets (the sources'
high-water marks), and the reporting engine's entity states as of an instant (read, never written)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from ti_shared.db import consumer_offset, dialect_of, insert_rows
from ti_shared.service import Repository

from reporting.domain import ENTITIES, AsOf, Row
from reporting.editions.tables import report_edition, report_edition_entity, report_edition_sign_off
from reporting.repository import generations, rows
from reporting.tables import ENTITY_TABLES

EntityKey = tuple[str, str]
"""(entity kind, entity id)"""

_SUMMARY = (
    report_edition.c.id, report_edition.c.name, report_edition.c.scope, report_edition.c.as_of,
    report_edition.c.frozen_at, report_edition.c.content_hash, report_edition.c.final_at,
)
_PARTS = {"indicators": report_edition.c.indicators, "html": report_edition.c.html, "pdf": report_edition.c.pdf}


@dataclass(frozen=True)
class EntityState:
    """One entity's state as of an instant, as the reporting engine counts it."""

    entity: str
    row: Row
    time: datetime
    event_id: str | None


class EditionRepository(Repository):
    # --- the engine's states (read only) -----------------------------------------------------------

    async def live_generation(self) -> int:
        return await generations.current_generation(self.session)

    async def states_as_of(self, generation: int, as_of: AsOf) -> list[EntityState]:
        """Every entity's state as of the instant: its latest version whose event time is within the bound."""
        states = await rows.states_as_of(self.session, generation, as_of)
        return [EntityState(entity, row, stamp.time, stamp.event_id) for entity in ENTITIES for row, stamp in states[entity]]

    async def rows_at_versions(self, generation: int, keys: Mapping[EntityKey, int]) -> dict[EntityKey, Row]:
        """The states of some entities at given versions (from the projection's history)."""
        out: dict[EntityKey, Row] = {}
        by_entity: dict[str, list[tuple[str, int]]] = {}
        for (entity, entity_id), version in keys.items():
            by_entity.setdefault(entity, []).append((entity_id, version))
        for entity, wanted in by_entity.items():
            history = ENTITY_TABLES[entity][1]
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = sa.select(history).where(
                    history.c.generation == generation, sa.tuple_(history.c.id, history.c.version).in_(chunk)
                )
                for record in await self.session.execute(query):
                    row = rows.row_of(entity, record)  # type: ignore[arg-type]  # the projection's own decoding of its rows
                    out[(entity, row.id)] = row
        return out

    async def source_marks(self, consumer: str) -> list[dict[str, Any]]:
        """The next offset of ``consumer`` in each partition of each topic it reads."""
        result = await self.session.execute(
            sa.select(consumer_offset.c.topic, consumer_offset.c.partition, consumer_offset.c.next_offset)
            .where(consumer_offset.c.consumer == consumer)
            .order_by(consumer_offset.c.topic, consumer_offset.c.partition)
        )
        topics: dict[str, dict[str, int]] = {}
        for topic, partition, offset in result:
            topics.setdefault(topic, {})[str(partition)] = int(offset)
        return [{"topic": t, "partitions": p, "events": sum(p.values())} for t, p in topics.items()]

    # --- editions ----------------------------------------------------------------------------------

    async def insert_edition(self, values: Mapping[str, Any], versions: Mapping[EntityKey, int]) -> None:
        await self.session.execute(report_edition.insert().values(**values))
        await insert_rows(
            self.session,
            report_edition_entity,
            [{"edition_id": values["id"], "entity": e, "entity_id": i, "version": v} for (e, i), v in versions.items()],
        )

    async def get_edition(self, edition_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        """The edition without its parts' bytes."""
        columns = [c for c in report_edition.c if c.name not in _PARTS]
        query = sa.select(*columns).where(report_edition.c.id == edition_id)
        if for_update and dialect_of(self.session) == "postgresql":
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return dict(row) if row is not None else None

    async def get_edition_part(self, edition_id: str, part: str) -> bytes | None:
        value = (await self.session.execute(sa.select(_PARTS[part]).where(report_edition.c.id == edition_id))).scalar()
        return bytes(value) if value is not None else None

    async def list_editions(self, *, after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Newest first."""
        query = sa.select(*_SUMMARY).order_by(report_edition.c.frozen_at.desc(), report_edition.c.id.desc()).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(report_edition.c.frozen_at, report_edition.c.id) < sa.tuple_(*after))
        return [dict(r) for r in (await self.session.execute(query)).mappings()]

    async def get_edition_versions(self, edition_id: str) -> dict[EntityKey, int]:
        t = report_edition_entity
        result = await self.session.execute(sa.select(t.c.entity, t.c.entity_id, t.c.version).where(t.c.edition_id == edition_id))
        return {(entity, entity_id): int(version) for entity, entity_id, version in result}

    async def list_sign_offs(self, edition_id: str) -> list[dict[str, Any]]:
        t = report_edition_sign_off
        result = await self.session.execute(sa.select(t).where(t.c.edition_id == edition_id).order_by(t.c.seq))
        return [dict(r) for r in result.mappings()]

    async def add_sign_off(self, values: Mapping[str, Any]) -> None:
        await self.session.execute(report_edition_sign_off.insert().values(**values))

    async def update_edition_final(self, edition_id: str, at: datetime) -> None:
        await self.session.execute(report_edition.update().where(report_edition.c.id == edition_id).values(final_at=at))


def keys_of(states: Sequence[EntityState]) -> dict[EntityKey, int]:
    return {(s.entity, s.row.id): s.row.version for s in states}
