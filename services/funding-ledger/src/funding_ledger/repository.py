"""Every query of the funding ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import dialect_of, in_values, insert_rows, lookup_chunks

from funding_ledger.domain import EntryPlan, grant_id
from funding_ledger.schemas import Grant, GrantBatch, Operator, Programme
from funding_ledger.tables import grant, grant_batch, grant_ledger_entry, operator, programme, programme_operator

GrantKey = tuple[str, str]
CHUNK = 1000


# --- operators and programmes ----------------------------------------------------------------


async def list_operators(session: AsyncSession) -> list[Operator]:
    rows = await session.execute(sa.select(operator).order_by(operator.c.code))
    return [Operator(code=r.code, label=r.label, siret=r.siret) for r in rows]


async def get_operator(session: AsyncSession, code: str) -> Operator | None:
    row = (await session.execute(sa.select(operator).where(operator.c.code == code))).first()
    return Operator(code=row.code, label=row.label, siret=row.siret) if row else None


async def save_operator(session: AsyncSession, value: Operator, *, exists: bool, now: datetime) -> None:
    values = {"label": value.label, "siret": value.siret, "updated_at": now}
    if exists:
        await session.execute(operator.update().where(operator.c.code == value.code).values(**values))
    else:
        await session.execute(operator.insert().values(code=value.code, **values))


async def programme_runners(session: AsyncSession) -> dict[str, list[str]]:
    """``{programme code: [operator codes that run it]}``."""
    rows = await session.execute(
        sa.select(programme.c.code, programme_operator.c.operator_code)
        .select_from(programme.outerjoin(programme_operator, programme_operator.c.programme_code == programme.c.code))
        .order_by(programme.c.code, programme_operator.c.operator_code)
    )
    out: dict[str, list[str]] = {}
    for code, op in rows:
        out.setdefault(code, [])
        if op is not None:
            out[code].append(op)
    return out


async def list_programmes(session: AsyncSession) -> list[Programme]:
    runners = await programme_runners(session)
    rows = await session.execute(sa.select(programme.c.code, programme.c.label).order_by(programme.c.code))
    return [Programme(code=r.code, label=r.label, operators=runners.get(r.code, [])) for r in rows]


async def save_programme(session: AsyncSession, value: Programme, *, exists: bool, now: datetime) -> None:
    if exists:
        await session.execute(
            programme.update().where(programme.c.code == value.code).values(label=value.label, updated_at=now)
        )
        await session.execute(programme_operator.delete().where(programme_operator.c.programme_code == value.code))
    else:
        await session.execute(programme.insert().values(code=value.code, label=value.label, updated_at=now))
    await session.execute(
        programme_operator.insert(), [{"programme_code": value.code, "operator_code": op} for op in value.operators]
    )


async def known_operators(session: AsyncSession, codes: Iterable[str]) -> set[str]:
    wanted = sorted(set(codes))
    if not wanted:
        return set()
    rows = await session.execute(sa.select(operator.c.code).where(operator.c.code.in_(wanted)))
    return {r.code for r in rows}


# --- grants ----------------------------------------------------------------------------------


def grant_from_row(row: Any) -> Grant:
    return Grant.model_validate(
        {
            "id": grant_id(row.operator, row.operator_ref),
            "operator": row.operator,
            "operator_ref": row.operator_ref,
            "programme": row.programme,
            "beneficiary": {
                "name": row.beneficiary_name,
                "siret": row.beneficiary_siret,
                "rna": row.beneficiary_rna,
                "kind": row.beneficiary_kind,
            },
            "territory_id": row.territory_id,
            "commune_insee": row.commune_insee,
            "action_id": row.action_id,
            "object": row.object,
            "amount_eur": Decimal(row.amount_eur),
            "investment_eur": Decimal(row.investment_eur) if row.investment_eur is not None else None,
            "decision_date": row.decision_date,
            "jobs_forecast": row.jobs_forecast,
            "jobs_conditional": row.jobs_conditional,
            "contributions": list(row.contributions),
            "value_chain": row.value_chain,
            "status": row.status,
            "version": row.version,
            "updated_at": row.updated_at,
            "disbursed_eur": Decimal(row.disbursed_eur),
            "disbursements": list(row.disbursements),
        }
    )


def grant_values(g: Grant, **extra: Any) -> dict[str, Any]:
    """The ``grant`` row of ``g`` (without ``created_at`` unless given in ``extra``)."""
    return {
        "operator": g.operator,
        "operator_ref": g.operator_ref,
        "programme": g.programme,
        "beneficiary_name": g.beneficiary.name,
        "beneficiary_siret": g.beneficiary.siret,
        "beneficiary_rna": g.beneficiary.rna,
        "beneficiary_kind": g.beneficiary.kind,
        "territory_id": g.territory_id,
        "commune_insee": g.commune_insee,
        "action_id": g.action_id,
        "object": g.object,
        "amount_eur": g.amount_eur,
        "investment_eur": g.investment_eur,
        "decision_date": g.decision_date,
        "jobs_forecast": g.jobs_forecast,
        "jobs_conditional": g.jobs_conditional,
        "contributions": list(g.contributions),
        "value_chain": g.value_chain,
        "status": g.status,
        "disbursed_eur": g.disbursed_eur,
        "disbursements": [d.model_dump(mode="json") for d in g.disbursements],
        "version": g.version,
        "updated_at": g.updated_at,
        **extra,
    }


async def get_grant(session: AsyncSession, op: str, ref: str, *, for_update: bool = False) -> Grant | None:
    query = sa.select(grant).where(grant.c.operator == op, grant.c.operator_ref == ref)
    if for_update and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return grant_from_row(row) if row else None


async def load_grants(
    session: AsyncSession, keys: Iterable[GrantKey], *, for_update: bool = False
) -> dict[GrantKey, Grant]:
    """The existing grants among ``keys``: one query per operator on PostgreSQL (its references as one
    array parameter), chunks of :data:`CHUNK` references elsewhere."""
    by_operator: dict[str, list[str]] = {}
    for op, ref in set(keys):
        by_operator.setdefault(op, []).append(ref)
    dialect = dialect_of(session)
    lock = for_update and dialect == "postgresql"
    out: dict[GrantKey, Grant] = {}
    for op, refs in by_operator.items():
        for chunk in lookup_chunks(sorted(refs), dialect, size=CHUNK):
            query = sa.select(grant).where(grant.c.operator == op, in_values(grant.c.operator_ref, chunk, dialect))
            if lock:
                query = query.order_by(grant.c.operator_ref).with_for_update()
            for row in await session.execute(query):
                out[(row.operator, row.operator_ref)] = grant_from_row(row)
    return out


async def insert_grants(session: AsyncSession, grants: Sequence[Grant], now: datetime) -> None:
    await insert_rows(session, grant, [grant_values(g, created_at=now) for g in grants], chunk=CHUNK)


_UPDATE_KEYS = [k for k in grant.c.keys() if k not in ("operator", "operator_ref", "created_at")]


async def update_grants(session: AsyncSession, grants: Sequence[Grant]) -> None:
    if not grants:
        return
    stmt = (
        grant.update()
        .where(grant.c.operator == sa.bindparam("k_operator"), grant.c.operator_ref == sa.bindparam("k_operator_ref"))
        .values({k: sa.bindparam(k) for k in _UPDATE_KEYS})
    )
    rows = []
    for g in grants:
        values = grant_values(g)
        rows.append(
            {"k_operator": g.operator, "k_operator_ref": g.operator_ref, **{k: values[k] for k in _UPDATE_KEYS}}
        )
    for i in range(0, len(rows), CHUNK):
        await session.execute(stmt, rows[i : i + CHUNK], execution_options={"synchronize_session": False})


def entry_rows(g: Grant, entries: Sequence[EntryPlan], *, actor: str) -> list[dict[str, Any]]:
    return [
        {
            "operator": g.operator,
            "operator_ref": g.operator_ref,
            "seq": i,
            "kind": e.kind,
            "amount_delta_eur": e.amount_delta_eur,
            "investment_delta_eur": e.investment_delta_eur,
            "disbursement_ref": e.disbursement_ref,
            "paid_on": e.paid_on,
            "grant_version": g.version,
            "recorded_at": g.updated_at,
            "actor": actor,
        }
        for i, e in enumerate(entries)
    ]


async def insert_entries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await insert_rows(session, grant_ledger_entry, rows, chunk=CHUNK)


async def ledger_entries(session: AsyncSession, op: str, ref: str) -> list[Any]:
    rows = await session.execute(
        sa.select(grant_ledger_entry)
        .where(grant_ledger_entry.c.operator == op, grant_ledger_entry.c.operator_ref == ref)
        .order_by(grant_ledger_entry.c.grant_version, grant_ledger_entry.c.seq)
    )
    return list(rows)


async def all_ledger_entries(session: AsyncSession) -> dict[GrantKey, list[EntryPlan]]:
    """Every grant's entries (checks and audits)."""
    rows = await session.execute(
        sa.select(grant_ledger_entry).order_by(grant_ledger_entry.c.grant_version, grant_ledger_entry.c.seq)
    )
    out: dict[GrantKey, list[EntryPlan]] = {}
    for r in rows:
        out.setdefault((r.operator, r.operator_ref), []).append(
            EntryPlan(
                r.kind, Decimal(r.amount_delta_eur), Decimal(r.investment_delta_eur), r.disbursement_ref, r.paid_on
            )
        )
    return out


def _filtered(
    query: sa.Select[Any],
    *,
    operator_code: str | None,
    programme_code: str | None,
    territory_id: str | None,
    status: str | None,
) -> sa.Select[Any]:
    if operator_code is not None:
        query = query.where(grant.c.operator == operator_code)
    if programme_code is not None:
        query = query.where(grant.c.programme == programme_code)
    if territory_id is not None:
        query = query.where(grant.c.territory_id == territory_id)
    if status is not None:
        query = query.where(grant.c.status == status)
    return query


async def list_grants(
    session: AsyncSession,
    *,
    operator_code: str | None,
    programme_code: str | None,
    territory_id: str | None,
    status: str | None,
    limit: int,
    after: GrantKey | None,
) -> list[Grant]:
    query = _filtered(
        sa.select(grant),
        operator_code=operator_code,
        programme_code=programme_code,
        territory_id=territory_id,
        status=status,
    )
    if after is not None:
        query = query.where(sa.tuple_(grant.c.operator, grant.c.operator_ref) > sa.tuple_(*after))
    query = query.order_by(grant.c.operator, grant.c.operator_ref).limit(limit)
    return [grant_from_row(r) for r in await session.execute(query)]


async def stream_grants(
    session: AsyncSession,
    *,
    operator_code: str | None,
    programme_code: str | None,
    territory_id: str | None,
    status: str | None,
    chunk: int = 500,
) -> AsyncIterator[list[Grant]]:
    """The matching grants in key order, ``chunk`` at a time, over a server-side cursor."""
    query = _filtered(
        sa.select(grant),
        operator_code=operator_code,
        programme_code=programme_code,
        territory_id=territory_id,
        status=status,
    ).order_by(grant.c.operator, grant.c.operator_ref)
    result = await session.stream(query.execution_options(yield_per=chunk))
    async for rows in result.partitions(chunk):
        yield [grant_from_row(r) for r in rows]


async def operator_labels(session: AsyncSession) -> dict[str, tuple[str, str | None]]:
    rows = await session.execute(sa.select(operator.c.code, operator.c.label, operator.c.siret))
    return {r.code: (r.label, r.siret) for r in rows}


async def programme_labels(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(sa.select(programme.c.code, programme.c.label))
    return {r.code: r.label for r in rows}


# --- batches ---------------------------------------------------------------------------------


async def insert_batch(
    session: AsyncSession,
    doc: dict[str, Any],
    *,
    received_at: datetime,
    operator_code: str | None,
    actor: str,
    media_type: str,
) -> None:
    """Store a batch and its report: ``doc`` is the ``GrantBatch`` resource in JSON form."""
    await insert_rows(
        session,
        grant_batch,
        [
            {
                "id": doc["id"],
                "operator": operator_code,
                "actor": actor,
                "mode": doc["mode"],
                "media_type": media_type,
                "status": doc["status"],
                "received_at": received_at,
                "counts": doc["counts"],
                "rows": doc["rows"],
            }
        ],
    )


async def get_batch(session: AsyncSession, batch_id: str) -> tuple[GrantBatch, str | None, str] | None:
    """The batch, the operator of the token that sent it, and its actor."""
    row = (await session.execute(sa.select(grant_batch).where(grant_batch.c.id == batch_id))).first()
    if row is None:
        return None
    batch = GrantBatch.model_validate(
        {
            "id": row.id,
            "status": row.status,
            "mode": row.mode,
            "received_at": row.received_at,
            "counts": row.counts,
            "rows": row.rows,
        }
    )
    return batch, row.operator, row.actor
