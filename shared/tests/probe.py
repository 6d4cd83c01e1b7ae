"""A minimal event handler and app used to exercise the shared machinery end to end."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.app import ConsumerSpec, ServiceContext, ServiceSpec, UowDep
from ti_shared.auth import scoped
from ti_shared.consumer import Delivery, EventHandler, EventRejected
from ti_shared.db import dialect_of, infra_metadata, upsert
from ti_shared.events import TOPIC_TERRITORIES, event_type
from ti_shared.http import TiRoute, accepts
from ti_shared.problems import Problem, problem_responses
from ti_shared.types import PositiveDecimal2

probe_metadata = sa.MetaData()
probe_state = sa.Table(
    "probe_state",
    probe_metadata,
    sa.Column("subject", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("seen", sa.Text(), nullable=False),
)

UPDATED = event_type("territory", "updated")


class ProbeHandler(EventHandler):
    topics: Sequence[str] = (TOPIC_TERRITORIES,)

    def accepts(self, event_type_: str) -> bool:
        return event_type_.startswith("fr.anct.ti.territory.")

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        if any(d.event.data.get("poison") for d in deliveries):
            raise EventRejected("poisoned on purpose")
        subjects = sorted({d.event.subject for d in deliveries})
        rows = await session.execute(sa.select(probe_state.c.subject, probe_state.c.seen).where(probe_state.c.subject.in_(subjects)))
        seen = {r.subject: r.seen for r in rows}
        latest: dict[str, int] = {}
        for d in deliveries:
            previous = seen.get(d.event.subject)
            seen[d.event.subject] = (previous + "," if previous else "") + str(d.event.entityversion)
            latest[d.event.subject] = d.event.entityversion
        ins = upsert(dialect_of(session), probe_state)
        await session.execute(
            ins.on_conflict_do_update(index_elements=["subject"], set_={"version": ins.excluded.version, "seen": ins.excluded.seen}),
            [{"subject": s, "version": v, "seen": seen[s]} for s, v in latest.items()],
        )

    async def is_empty(self, session: AsyncSession) -> bool:
        return (await session.execute(sa.select(probe_state.c.subject).limit(1))).first() is None


async def create_tables(ctx: ServiceContext) -> None:
    async with ctx.db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
        await conn.run_sync(probe_metadata.create_all)


class Amount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_eur: PositiveDecimal2
    label: str


router = APIRouter(route_class=TiRoute)


@router.post("/v1/probes/{subject}", status_code=201)
async def create_probe(subject: str, body: Amount, uow: UowDep, principal: Any = scoped("territories:write")) -> dict[str, Any]:
    data = {"id": subject, "region_code": "84", "status": "active", **body.model_dump(mode="json")}
    await uow.record(topic=TOPIC_TERRITORIES, type_=UPDATED, subject=subject, version=1, actor=principal.sub, data=data)
    await uow.commit()
    return data


@router.post("/v1/probes-csv", openapi_extra=accepts("text/csv", max_body_bytes=2048))
async def upload_csv() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/boom")
async def boom() -> None:
    raise RuntimeError("kaboom")


@router.get("/v1/teapot", responses=problem_responses(409))
async def teapot() -> None:
    raise Problem(409, "conflicting teapot")


PROBE_SPEC = ServiceSpec(
    name="probe",
    title="Probe",
    description="Test service",
    routers=[router],
    metadata=probe_metadata,
    migrations_dir=Path(__file__).parent / "no-migrations",
    consumers=[ConsumerSpec(name="probe", handler=ProbeHandler)],
    on_startup=[create_tables],
)
