"""The in-memory repository of the service functions' unit tests (docs/conventions.md, « Tests »)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from funding_ledger.domain import Decision, EntryPlan, Known
from funding_ledger.repository import BatchRecord, GrantFilter, GrantIdentity, GrantKey, LedgerRecord, Repository
from funding_ledger.schemas import Grant, GrantBatch, Operator, Programme
from ti_shared.fakes import NO_SESSION

#: the programmes of the unit tests and the operators running them
PROGRAMMES = {"fonds_vert_ti_te": ["ADEME"], "rebond_industriel": ["BDT", "BPI"]}


class FakeRepository(Repository):
    """Grants by key, their ledgers, batches, operators and programmes over dicts; the replica's
    territories as a set."""

    def __init__(
        self,
        *grants: Grant,
        operators: Iterable[str] = ("ADEME", "BDT", "BPI"),
        programmes: Mapping[str, Sequence[str]] = PROGRAMMES,
        territories: Iterable[str] = ("ti-2705", "ti-8402"),
    ) -> None:
        super().__init__(NO_SESSION)
        self.grants: dict[GrantKey, Grant] = {(g.operator, g.operator_ref): g for g in grants}
        self.operators = {code: Operator(code=code, label=code) for code in operators}
        self.programmes = {code: Programme(code=code, label=code, operators=sorted(ops)) for code, ops in programmes.items()}
        self.territories = set(territories)
        self.ledger: dict[GrantKey, list[LedgerRecord]] = {}
        self.batches: dict[str, tuple[dict[str, Any], str | None, str, str]] = {}

    # operators and programmes

    async def list_operators(self) -> list[Operator]:
        return [self.operators[c] for c in sorted(self.operators)]

    async def get_operator(self, code: str) -> Operator | None:
        return self.operators.get(code)

    async def save_operator(self, value: Operator, *, exists: bool, at: datetime) -> None:
        assert exists == (value.code in self.operators)
        self.operators[value.code] = value

    async def known_operators(self, codes: Iterable[str]) -> set[str]:
        return set(codes) & set(self.operators)

    async def known_programmes(self, codes: Iterable[str] | None = None) -> dict[str, list[str]]:
        wanted = set(self.programmes) if codes is None else set(codes)
        return {c: list(p.operators) for c, p in sorted(self.programmes.items()) if c in wanted}

    async def list_programmes(self) -> list[Programme]:
        return [self.programmes[c] for c in sorted(self.programmes)]

    async def get_programme(self, code: str) -> Programme | None:
        return self.programmes.get(code)

    async def save_programme(self, value: Programme, *, exists: bool, at: datetime) -> None:
        assert exists == (value.code in self.programmes)
        self.programmes[value.code] = value

    async def known_territories(self, territory_ids: Iterable[str]) -> set[str]:
        return set(territory_ids) & self.territories

    async def known_for_grant(self, op: str, programme_code: str, territory_id: str | None) -> Known:
        return Known(
            operators=await self.known_operators([op]),
            programmes=await self.known_programmes([programme_code]),
            territories=await self.known_territories([territory_id] if territory_id is not None else []),
        )

    # grants

    async def get_grant(self, op: str, ref: str, *, for_update: bool = False) -> Grant | None:
        return self.grants.get((op, ref))

    async def get_grants(self, keys: Iterable[GrantKey], *, for_update: bool = False) -> dict[GrantKey, Grant]:
        return {k: self.grants[k] for k in set(keys) if k in self.grants}

    async def get_grant_identities(self, op: str, days: Iterable[date]) -> list[GrantIdentity]:
        wanted = set(days)
        return [
            GrantIdentity(g.operator_ref, g.decision_date, g.beneficiary.siret, g.beneficiary.rna, g.beneficiary.name, g.object,
                          g.scdl.referenceDecision if g.scdl else None, g.scdl.idAttribuant if g.scdl else None)
            for (o, _), g in sorted(self.grants.items())
            if o == op and g.decision_date in wanted
        ]

    async def insert_grants(self, grants: Sequence[Grant]) -> None:
        for g in grants:
            assert (g.operator, g.operator_ref) not in self.grants, "a duplicate key: the real table refuses it"
            self.grants[(g.operator, g.operator_ref)] = g

    async def update_grants(self, grants: Sequence[Grant]) -> None:
        for g in grants:
            assert (g.operator, g.operator_ref) in self.grants, "no row to update"
            self.grants[(g.operator, g.operator_ref)] = g

    def _selected(self, where: GrantFilter) -> list[Grant]:
        return [
            g
            for _, g in sorted(self.grants.items())
            if where.operator in (None, g.operator)
            and where.programme in (None, g.programme)
            and where.territory_id in (None, g.territory_id)
            and where.status in (None, g.status)
        ]

    async def list_grants(self, where: GrantFilter, *, after: GrantKey | None, limit: int) -> list[Grant]:
        return [g for g in self._selected(where) if after is None or (g.operator, g.operator_ref) > after][:limit]

    async def stream_grants(self, where: GrantFilter, *, chunk: int = 500) -> AsyncIterator[list[Grant]]:
        selected = self._selected(where)
        for i in range(0, len(selected), chunk):
            yield selected[i : i + chunk]

    # the ledger

    async def add_ledger_entries(self, decisions: Iterable[Decision], *, actor: str) -> None:
        for d in decisions:
            key = (d.entity.operator, d.entity.operator_ref)
            self.ledger.setdefault(key, []).extend(
                LedgerRecord(e, d.entity.version, d.entity.updated_at, actor) for e in d.entries
            )

    async def get_ledger_entries(self, op: str, ref: str) -> list[LedgerRecord]:
        return list(self.ledger.get((op, ref), []))

    def entries(self, op: str, ref: str) -> list[EntryPlan]:
        return [r.entry for r in self.ledger.get((op, ref), [])]

    # batches

    async def add_batch(
        self, doc: dict[str, Any], *, received_at: datetime, operator: str | None, actor: str, media_type: str
    ) -> None:
        assert doc["id"] not in self.batches
        self.batches[doc["id"]] = (doc, operator, actor, media_type)

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        if batch_id not in self.batches:
            return None
        doc, operator, actor, _ = self.batches[batch_id]
        return BatchRecord(GrantBatch.model_validate(doc), operator, actor)
