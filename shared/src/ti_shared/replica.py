"""A local replica of the territories, fed by ``ti.territories`` (for services that check territory ids)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.consumer import Delivery, EventHandler, EventRejected, OneStatement
from ti_shared.db import dialect_of, territory_replica, upsert
from ti_shared.events import TOPIC_TERRITORIES, event_type
from ti_shared.statements import Sql

TERRITORY_EVENT_TYPES = frozenset(event_type("territory", c) for c in ("registered", "updated", "withdrawn"))


#: the replica's rows of a small batch, as a part of the consumer's one statement (PostgreSQL)
_UPSERT_PART = (
    "INSERT INTO territory_replica (territory_id, region_code, status, version, data) "
    "SELECT i, r, s, v, d::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) AS u(i, r, s, v, d) "
    "WHERE {where} ON CONFLICT (territory_id) DO UPDATE SET region_code = excluded.region_code, "
    "status = excluded.status, version = excluded.version, data = excluded.data"
)


def locked_with_territory_known(table: sa.Table, key: str) -> Sql:
    """A write's one read: the row of ``table`` whose ``key`` is the parameter ``key``, locked (its
    columns NULL when it never existed), and ``territory_known``, whether the replica knows the
    territory of the parameter ``territory_id``; always one row (a lookup was a round trip of its own)."""
    locked = sa.select(table).where(table.c[key] == sa.bindparam(key)).with_for_update().cte("locked")
    known = sa.select(
        sa.exists().where(territory_replica.c.territory_id == sa.bindparam("territory_id")).label("territory_known")
    ).subquery("known")
    return Sql(sa.select(known.c.territory_known, *locked.c).select_from(known.outerjoin(locked, sa.true())))


class TerritoryReplicaHandler(EventHandler):
    """Keeps ``territory_replica`` equal to the latest state of every territory."""

    topics: Sequence[str] = (TOPIC_TERRITORIES,)

    one_statement = True

    def accepts(self, event_type_: str) -> bool:
        return event_type_ in TERRITORY_EVENT_TYPES

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        latest = self._latest(deliveries)
        if not latest:
            return
        ins = upsert(dialect_of(session), territory_replica)
        stmt = ins.on_conflict_do_update(
            index_elements=["territory_id"],
            set_={k: getattr(ins.excluded, k) for k in ("region_code", "status", "version", "data")},
        )
        await session.execute(stmt, list(latest.values()))

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        latest = list(self._latest(deliveries).values())
        if latest:
            statement.add(
                [_UPSERT_PART.format(where=statement.where)],
                [[r[k] for r in latest] for k in ("territory_id", "region_code", "status", "version")]
                + [[json.dumps(r["data"], ensure_ascii=False) for r in latest]],
            )

    @staticmethod
    def _latest(deliveries: list[Delivery]) -> dict[str, dict[str, object]]:
        """The replica row of the latest event of each territory."""
        latest: dict[str, dict[str, object]] = {}
        for d in deliveries:
            data = d.event.data
            region = data.get("region_code")
            status = data.get("status")
            if not isinstance(region, str) or not isinstance(status, str):
                raise EventRejected("territory event without region_code or status")
            latest[d.event.subject] = {
                "territory_id": d.event.subject,
                "region_code": region,
                "status": status,
                "version": d.event.entityversion,
                "data": data,
            }
        return latest

    async def is_empty(self, session: AsyncSession) -> bool:
        row = await session.execute(sa.select(territory_replica.c.territory_id).limit(1))
        return row.first() is None


#: a write's one territory (prepared on PostgreSQL's driver, in the write's transaction)
_KNOWN_ONE = Sql(
    sa.select(territory_replica.c.territory_id, territory_replica.c.region_code).where(
        territory_replica.c.territory_id == sa.bindparam("territory_id")
    )
)


async def known_territories(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    """``{territory_id: region_code}`` for those of ``ids`` that the replica knows."""
    if not ids:
        return {}
    if len(ids) == 1:
        row = await _KNOWN_ONE.fetchrow(session, territory_id=next(iter(ids)))
        return {row["territory_id"]: row["region_code"]} if row is not None else {}
    rows = await session.execute(
        sa.select(territory_replica.c.territory_id, territory_replica.c.region_code).where(
            territory_replica.c.territory_id.in_(sorted(ids))
        )
    )
    return {r.territory_id: r.region_code for r in rows}


async def territory_ids_in_region(session: AsyncSession, region_code: str) -> list[str]:
    rows = await session.execute(
        sa.select(territory_replica.c.territory_id).where(territory_replica.c.region_code == region_code)
    )
    return [r.territory_id for r in rows]
