"""Every query of the funding ledger: :class:`Repository`, over one session (a unit of work's or a read
session)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from ti_shared import replica
from ti_shared.app import concurrent_write
from ti_shared.copytext import InstantTexts, copy_text, lines_buffer
from ti_shared.db import dialect_of, in_values, insert_rows, lookup_chunks, territory_replica
from ti_shared.service import Repository as BaseRepository
from ti_shared.statements import Sql

from funding_ledger.domain import Decision, EntryPlan, Known, grant_id
from funding_ledger.schemas import Grant, GrantBatch, Operator, Programme
from funding_ledger.tables import grant, grant_batch, grant_ledger_entry, operator, programme, programme_operator

GrantKey = tuple[str, str]
CHUNK = 1000


@dataclass(frozen=True)
class GrantFilter:
    """Which grants a list or an export shows (None: any)."""

    operator: str | None = None
    programme: str | None = None
    territory_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class LedgerRecord:
    """A ledger entry as it was recorded: the entry, the grant version it came with, when and by whom."""

    entry: EntryPlan
    grant_version: int
    recorded_at: datetime
    actor: str


@dataclass(frozen=True)
class GrantIdentity:
    """The fields of a grant that identify it in SCDL terms (``scdl.identity`` joins them)."""

    operator_ref: str
    decision_date: date
    siret: str | None
    rna: str | None
    name: str
    object: str
    decision_ref: str | None
    attributor_siret: str | None


@dataclass(frozen=True)
class BatchRecord:
    """A stored batch: its report, the operator of the token that sent it (None: an admin's) and its sender."""

    batch: GrantBatch
    operator: str | None
    actor: str


def grant_from_row(row: Mapping[Any, Any]) -> Grant:
    """A grant from its ``grant`` row (a mapping: ``row._mapping`` of a session's row)."""
    investment = row["investment_eur"]
    return Grant.model_validate(
        {
            "id": grant_id(row["operator"], row["operator_ref"]),
            "operator": row["operator"],
            "operator_ref": row["operator_ref"],
            "programme": row["programme"],
            "beneficiary": {
                "name": row["beneficiary_name"],
                "siret": row["beneficiary_siret"],
                "rna": row["beneficiary_rna"],
                "kind": row["beneficiary_kind"],
            },
            "territory_id": row["territory_id"],
            "commune_insee": row["commune_insee"],
            "action_id": row["action_id"],
            "object": row["object"],
            "amount_eur": Decimal(row["amount_eur"]),
            "investment_eur": Decimal(investment) if investment is not None else None,
            "decision_date": row["decision_date"],
            "jobs_forecast": row["jobs_forecast"],
            "jobs_conditional": row["jobs_conditional"],
            "contributions": list(row["contributions"]),
            "value_chain": row["value_chain"],
            "status": row["status"],
            "version": row["version"],
            "updated_at": row["updated_at"],
            "disbursed_eur": Decimal(row["disbursed_eur"]),
            "disbursements": list(row["disbursements"]),
            "scdl": row["scdl"],
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
        "scdl": g.scdl.model_dump(mode="json") if g.scdl is not None else None,
        "version": g.version,
        "updated_at": g.updated_at,
        **extra,
    }


_UPDATE_KEYS = [k for k in grant.c.keys() if k not in ("operator", "operator_ref", "created_at")]
#: the columns of :func:`_grant_line`, in its order
_RECORD_COLUMNS = (
    "operator", "operator_ref", "programme", "beneficiary_name", "beneficiary_siret", "beneficiary_rna", "beneficiary_kind",
    "territory_id", "commune_insee", "action_id", "object", "amount_eur", "investment_eur", "decision_date",
    "jobs_forecast", "jobs_conditional", "contributions", "value_chain", "status", "disbursed_eur", "disbursements",
    "scdl", "version", "created_at", "updated_at",
)
assert set(_RECORD_COLUMNS) == set(grant.c.keys()), "a column of grant is missing from _RECORD_COLUMNS"


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _grant_line(g: Grant, instant: InstantTexts) -> tuple[str | None, ...]:
    """The ``grant`` row of a new grant as the values of a text ``COPY`` line (:data:`_RECORD_COLUMNS`),
    straight from the model's fields (its ``__dict__``: an attribute of a model costs more): the values
    :func:`grant_values` gives, as PostgreSQL reads their text, its ``created_at`` its ``updated_at``."""
    f = vars(g)
    b = vars(f["beneficiary"])
    inv, jobs, conditional, scdl, paid = f["investment_eur"], f["jobs_forecast"], f["jobs_conditional"], f["scdl"], f["disbursements"]
    at = instant(f["updated_at"])
    return (
        f["operator"], f["operator_ref"], f["programme"], b["name"], b["siret"], b["rna"], b["kind"], f["territory_id"],
        f["commune_insee"], f["action_id"], f["object"], str(f["amount_eur"]), None if inv is None else str(inv),
        f["decision_date"].isoformat(), None if jobs is None else str(jobs), None if conditional is None else str(conditional),
        _json_text(list(f["contributions"])), f["value_chain"], f["status"], str(f["disbursed_eur"]),
        _json_text([d.model_dump(mode="json") for d in paid]) if paid else "[]",
        _json_text(scdl.model_dump(mode="json")) if scdl is not None else "null", str(f["version"]), at, at,
    )


_LEDGER_KEYS = [k for k in grant_ledger_entry.c.keys() if k != "id"]
assert _LEDGER_KEYS == [
    "operator", "operator_ref", "seq", "kind", "amount_delta_eur", "investment_delta_eur", "disbursement_ref", "paid_on",
    "grant_version", "recorded_at", "actor",
], "the columns of grant_ledger_entry are not those of _ledger_lines"
#: a write of one grant writes its ledger entries with the rest of its transaction's statements up to
#: this many (more: ``COPY``)
FEW_ENTRIES = 8

# the write path of one grant (prepared on PostgreSQL's driver; its writes go as one statement)
_KEY = (grant.c.operator == sa.bindparam("k_operator"), grant.c.operator_ref == sa.bindparam("k_operator_ref"))
_GET = Sql(sa.select(grant).where(*_KEY))
_GET_FOR_UPDATE = Sql(sa.select(grant).where(*_KEY).with_for_update())
_INSERT = Sql(grant.insert(), column_keys=list(grant.c.keys()))
_UPDATE = Sql(
    grant.update().where(*_KEY, grant.c.version == sa.bindparam("replaced")), column_keys=_UPDATE_KEYS
)
_ADD_ENTRY = Sql(grant_ledger_entry.insert(), column_keys=_LEDGER_KEYS)
#: what a write of one grant names, in one query: the operator, the programme with each operator running
#: it (a row each), the territory — each NULL when it does not exist
_KNOWN_FOR_GRANT = Sql(
    sa.select(
        operator.c.code.label("operator"),
        programme.c.code.label("programme"),
        programme_operator.c.operator_code.label("runner"),
        territory_replica.c.territory_id.label("territory"),
    )
    .select_from(
        sa.select(sa.literal_column("1").label("one"))
        .subquery("one")
        .outerjoin(operator, operator.c.code == sa.bindparam("operator"))
        .outerjoin(programme, programme.c.code == sa.bindparam("programme"))
        .outerjoin(programme_operator, programme_operator.c.programme_code == programme.c.code)
        .outerjoin(territory_replica, territory_replica.c.territory_id == sa.bindparam("territory_id"))
    )
    .order_by(programme_operator.c.operator_code)
)


def _filtered(query: sa.Select[Any], where: GrantFilter) -> sa.Select[Any]:
    if where.operator is not None:
        query = query.where(grant.c.operator == where.operator)
    if where.programme is not None:
        query = query.where(grant.c.programme == where.programme)
    if where.territory_id is not None:
        query = query.where(grant.c.territory_id == where.territory_id)
    if where.status is not None:
        query = query.where(grant.c.status == where.status)
    return query


def _ledger_row(g: Grant, seq: int, e: EntryPlan, actor: str) -> dict[str, Any]:
    return {
        "operator": g.operator,
        "operator_ref": g.operator_ref,
        "seq": seq,
        "kind": e.kind,
        "amount_delta_eur": e.amount_delta_eur,
        "investment_delta_eur": e.investment_delta_eur,
        "disbursement_ref": e.disbursement_ref,
        "paid_on": e.paid_on,
        "grant_version": g.version,
        "recorded_at": g.updated_at,
        "actor": actor,
    }


def _ledger_lines(decisions: Iterable[Decision], actor: str) -> list[tuple[str | None, ...]]:
    """The ledger rows of ``decisions`` as the values of text ``COPY`` lines (:data:`_LEDGER_KEYS`), the
    values of :func:`_ledger_row`."""
    instant = InstantTexts()
    return [
        (g.operator, g.operator_ref, str(seq), e.kind, str(e.amount_delta_eur), str(e.investment_delta_eur), e.disbursement_ref,
         None if e.paid_on is None else e.paid_on.isoformat(), str(g.version), instant(g.updated_at), actor)
        for d in decisions
        for g in (d.entity,)
        for seq, e in enumerate(d.entries)
    ]


def _entry(row: Any) -> EntryPlan:
    return EntryPlan(row.kind, Decimal(row.amount_delta_eur), Decimal(row.investment_delta_eur), row.disbursement_ref, row.paid_on)


class Repository(BaseRepository):
    """The funding ledger's queries over ``session``."""

    # --- operators and programmes ------------------------------------------------------------

    async def list_operators(self) -> list[Operator]:
        rows = await self.session.execute(sa.select(operator).order_by(operator.c.code))
        return [Operator(code=r.code, label=r.label, siret=r.siret) for r in rows]

    async def get_operator(self, code: str) -> Operator | None:
        row = (await self.session.execute(sa.select(operator).where(operator.c.code == code))).first()
        return Operator(code=row.code, label=row.label, siret=row.siret) if row else None

    async def save_operator(self, value: Operator, *, exists: bool, at: datetime) -> None:
        values = {"label": value.label, "siret": value.siret, "updated_at": at}
        if exists:
            await self.session.execute(operator.update().where(operator.c.code == value.code).values(**values))
        else:
            await self.session.execute(operator.insert().values(code=value.code, **values))

    async def known_operators(self, codes: Iterable[str]) -> set[str]:
        """Which of ``codes`` are registered operators."""
        wanted = sorted(set(codes))
        if not wanted:
            return set()
        rows = await self.session.execute(sa.select(operator.c.code).where(operator.c.code.in_(wanted)))
        return {r.code for r in rows}

    async def known_programmes(self, codes: Iterable[str] | None = None) -> dict[str, list[str]]:
        """``{programme code: [codes of the operators that run it]}`` for those of ``codes`` that exist
        (every programme when None)."""
        query = (
            sa.select(programme.c.code, programme_operator.c.operator_code)
            .select_from(programme.outerjoin(programme_operator, programme_operator.c.programme_code == programme.c.code))
            .order_by(programme.c.code, programme_operator.c.operator_code)
        )
        if codes is not None:
            wanted = sorted(set(codes))
            if not wanted:
                return {}
            query = query.where(programme.c.code.in_(wanted))
        out: dict[str, list[str]] = {}
        for code, op in await self.session.execute(query):
            out.setdefault(code, [])
            if op is not None:
                out[code].append(op)
        return out

    async def list_programmes(self) -> list[Programme]:
        runners = await self.known_programmes()
        rows = await self.session.execute(sa.select(programme.c.code, programme.c.label).order_by(programme.c.code))
        return [Programme(code=r.code, label=r.label, operators=runners.get(r.code, [])) for r in rows]

    async def get_programme(self, code: str) -> Programme | None:
        row = (await self.session.execute(sa.select(programme.c.label).where(programme.c.code == code))).first()
        if row is None:
            return None
        return Programme(code=code, label=row.label, operators=(await self.known_programmes([code])).get(code, []))

    async def save_programme(self, value: Programme, *, exists: bool, at: datetime) -> None:
        if exists:
            await self.session.execute(
                programme.update().where(programme.c.code == value.code).values(label=value.label, updated_at=at)
            )
            await self.session.execute(programme_operator.delete().where(programme_operator.c.programme_code == value.code))
        else:
            await self.session.execute(programme.insert().values(code=value.code, label=value.label, updated_at=at))
        await self.session.execute(
            programme_operator.insert(), [{"programme_code": value.code, "operator_code": op} for op in value.operators]
        )

    async def known_territories(self, territory_ids: Iterable[str]) -> set[str]:
        """Which of ``territory_ids`` the local replica of ``ti.territories`` knows."""
        return set(await replica.known_territories(self.session, set(territory_ids)))

    async def known_for_grant(self, op: str, programme_code: str, territory_id: str | None) -> Known:
        """What a write of one grant names, as far as it exists (one query): as ``known_operators``,
        ``known_programmes`` and ``known_territories`` would say of it."""
        rows = await _KNOWN_FOR_GRANT.fetch(self.session, operator=op, programme=programme_code, territory_id=territory_id)
        first = rows[0]
        runners = [r["runner"] for r in rows if r["runner"] is not None]
        return Known(
            operators={first["operator"]} if first["operator"] is not None else set(),
            programmes={first["programme"]: runners} if first["programme"] is not None else {},
            territories={first["territory"]} if first["territory"] is not None else set(),
        )

    # --- grants ------------------------------------------------------------------------------

    async def get_grant(self, op: str, ref: str, *, for_update: bool = False) -> Grant | None:
        row = await (_GET_FOR_UPDATE if for_update else _GET).fetchrow(self.session, k_operator=op, k_operator_ref=ref)
        return grant_from_row(row) if row is not None else None

    async def get_grants(self, keys: Iterable[GrantKey], *, for_update: bool = False) -> dict[GrantKey, Grant]:
        """The existing grants among ``keys``: one query per operator on PostgreSQL (its references as one
        array parameter), chunks of :data:`CHUNK` references elsewhere."""
        by_operator: dict[str, list[str]] = {}
        for op, ref in set(keys):
            by_operator.setdefault(op, []).append(ref)
        dialect = dialect_of(self.session)
        lock = for_update and dialect == "postgresql"
        out: dict[GrantKey, Grant] = {}
        for op, refs in by_operator.items():
            for chunk in lookup_chunks(sorted(refs), dialect, size=CHUNK):
                query = sa.select(grant).where(grant.c.operator == op, in_values(grant.c.operator_ref, chunk, dialect))
                if lock:
                    query = query.order_by(grant.c.operator_ref).with_for_update()
                for row in await self.session.execute(query):
                    out[(row.operator, row.operator_ref)] = grant_from_row(row._mapping)
        return out

    async def get_grant_identities(self, op: str, days: Iterable[date]) -> list[GrantIdentity]:
        """What identifies, in SCDL terms, each grant of operator ``op`` decided on one of ``days`` (the
        candidates of the rows of an SCDL file without ``operator_ref``)."""
        dialect = dialect_of(self.session)
        columns = (grant.c.operator_ref, grant.c.decision_date, grant.c.beneficiary_siret, grant.c.beneficiary_rna,
                   grant.c.beneficiary_name, grant.c.object, grant.c.scdl)
        out: list[GrantIdentity] = []
        for chunk in lookup_chunks(sorted(set(days)), dialect, size=CHUNK):
            query = sa.select(*columns).where(grant.c.operator == op, in_values(grant.c.decision_date, chunk, dialect))
            for r in await self.session.execute(query.order_by(grant.c.operator_ref)):
                scdl = r.scdl or {}
                out.append(GrantIdentity(r.operator_ref, r.decision_date, r.beneficiary_siret, r.beneficiary_rna,
                                         r.beneficiary_name, r.object, scdl.get("referenceDecision"), scdl.get("idAttribuant")))
        return out

    async def insert_grants(self, grants: Sequence[Grant]) -> None:
        """New grants (their ``created_at``: the instant of their first version, their ``updated_at``);
        one with the transaction's other writes, many by ``COPY``."""
        if len(grants) == 1:
            await _INSERT.defer(self.session, expect=1, **grant_values(grants[0], created_at=grants[0].updated_at))
            return
        if dialect_of(self.session) == "postgresql":
            instant = InstantTexts()
            await copy_text(self.session, grant, _RECORD_COLUMNS, lines_buffer([_grant_line(g, instant) for g in grants]))
            return
        await insert_rows(self.session, grant, [grant_values(g, created_at=g.updated_at) for g in grants], chunk=CHUNK)

    async def update_grants(self, grants: Sequence[Grant]) -> None:
        """The next version of each of ``grants``; one with the transaction's other writes (409 when its
        version moved meanwhile)."""
        if not grants:
            return
        if len(grants) == 1:
            g = grants[0]
            values = grant_values(g)
            await _UPDATE.defer(
                self.session, expect=1, on_mismatch=concurrent_write, k_operator=g.operator, k_operator_ref=g.operator_ref,
                replaced=g.version - 1, **{k: values[k] for k in _UPDATE_KEYS},
            )
            return
        stmt = (
            grant.update()
            .where(grant.c.operator == sa.bindparam("k_operator"), grant.c.operator_ref == sa.bindparam("k_operator_ref"))
            .values({k: sa.bindparam(k) for k in _UPDATE_KEYS})
        )
        rows = []
        for g in grants:
            values = grant_values(g)
            rows.append({"k_operator": g.operator, "k_operator_ref": g.operator_ref, **{k: values[k] for k in _UPDATE_KEYS}})
        for i in range(0, len(rows), CHUNK):
            await self.session.execute(stmt, rows[i : i + CHUNK], execution_options={"synchronize_session": False})

    async def list_grants(self, where: GrantFilter, *, after: GrantKey | None, limit: int) -> list[Grant]:
        """A page of the grants ``where`` selects, in key order, after the key ``after``."""
        query = _filtered(sa.select(grant), where)
        if after is not None:
            query = query.where(sa.tuple_(grant.c.operator, grant.c.operator_ref) > sa.tuple_(*after))
        query = query.order_by(grant.c.operator, grant.c.operator_ref).limit(limit)
        return [grant_from_row(r._mapping) for r in await self.session.execute(query)]

    async def stream_grants(self, where: GrantFilter, *, chunk: int = 500) -> AsyncIterator[list[Grant]]:
        """The grants ``where`` selects in key order, ``chunk`` at a time, over a server-side cursor."""
        query = _filtered(sa.select(grant), where).order_by(grant.c.operator, grant.c.operator_ref)
        result = await self.session.stream(query.execution_options(yield_per=chunk))
        async for rows in result.partitions(chunk):
            yield [grant_from_row(r._mapping) for r in rows]

    # --- the ledger --------------------------------------------------------------------------

    async def add_ledger_entries(self, decisions: Iterable[Decision], *, actor: str) -> None:
        """The ledger entries of these decisions, each with its grant's version and time."""
        decisions = list(decisions)
        if sum(len(d.entries) for d in decisions) <= FEW_ENTRIES:  # one grant's: with the transaction's other writes
            for d in decisions:
                for seq, e in enumerate(d.entries):
                    await _ADD_ENTRY.defer(self.session, expect=1, **_ledger_row(d.entity, seq, e, actor))
            return
        if dialect_of(self.session) == "postgresql":
            await copy_text(self.session, grant_ledger_entry, _LEDGER_KEYS, lines_buffer(_ledger_lines(decisions, actor)))
            return
        rows = [_ledger_row(d.entity, seq, e, actor) for d in decisions for seq, e in enumerate(d.entries)]
        await insert_rows(self.session, grant_ledger_entry, rows, chunk=CHUNK)

    async def get_ledger_entries(self, op: str, ref: str) -> list[LedgerRecord]:
        """The grant's ledger, oldest entry first (empty: no such grant)."""
        rows = await self.session.execute(
            sa.select(grant_ledger_entry)
            .where(grant_ledger_entry.c.operator == op, grant_ledger_entry.c.operator_ref == ref)
            .order_by(grant_ledger_entry.c.grant_version, grant_ledger_entry.c.seq)
        )
        return [LedgerRecord(_entry(r), r.grant_version, r.recorded_at, r.actor) for r in rows]

    async def get_ledgers(self) -> dict[GrantKey, list[EntryPlan]]:
        """Every grant's entries, oldest first (checks and audits)."""
        rows = await self.session.execute(
            sa.select(grant_ledger_entry).order_by(grant_ledger_entry.c.grant_version, grant_ledger_entry.c.seq)
        )
        out: dict[GrantKey, list[EntryPlan]] = {}
        for r in rows:
            out.setdefault((r.operator, r.operator_ref), []).append(_entry(r))
        return out

    # --- batches -----------------------------------------------------------------------------

    async def add_batch(
        self, doc: dict[str, Any], *, received_at: datetime, operator: str | None, actor: str, media_type: str
    ) -> None:
        """Store a batch and its report: ``doc`` is the ``GrantBatch`` resource in JSON form."""
        await insert_rows(
            self.session,
            grant_batch,
            [
                {
                    "id": doc["id"],
                    "operator": operator,
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

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        row = (await self.session.execute(sa.select(grant_batch).where(grant_batch.c.id == batch_id))).first()
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
        return BatchRecord(batch, row.operator, row.actor)
