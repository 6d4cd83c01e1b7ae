"""The use cases of the funding ledger: functions of the unit of work (or the read repository), the
principal and plain values.

A write loads the reference data its rules need (:class:`~funding_ledger.domain.Known`), checks them with
the domain's :func:`~funding_ledger.domain.grant_problems` — the same rules for a PUT and for every
row of a batch —, loads what it changes (``FOR UPDATE``), lets the domain decide
(:func:`~funding_ledger.domain.decide_write`, :func:`~funding_ledger.domain.decide_disbursement`) and
writes the decision (:func:`write_change`, or :func:`write_changes` for a batch). The route commits
and turns the :class:`WriteResult` into the response.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ti_shared.auth import ADMIN, Principal
from ti_shared.events import NewEvent
from ti_shared.http import Page, check_if_match, check_not_before, cursor_after, page_of
from ti_shared.problems import Problem, field_problem, validation_problem
from ti_shared.service import Uow, WriteResult

from funding_ledger.batches import (
    BatchItem,
    ParsedBatch,
    ParsedRow,
    batch_problem,
    batch_report,
    control_report,
    located,
    read_items,
    reject_repeated,
    row_report,
)
from funding_ledger.domain import (
    Decision,
    DomainError,
    Known,
    decide_disbursement,
    decide_write,
    grant_id,
    grant_problems,
    is_forbidden,
    ledger_totals,
    operator_refusal,
    programme_refusal,
    running_totals,
)
from funding_ledger.events import EVENT_OF_CHANGE
from funding_ledger.repository import GrantFilter as GrantFilter  # re-exported: the routes build it
from funding_ledger.repository import GrantKey
from funding_ledger.repository import Repository as Repository  # re-exported: the routes' dependencies name it
from funding_ledger.scdl import (
    Attributor,
    Profile,
    ScdlContext,
    ScdlRow,
    assign_keys,
    export_header,
    export_line,
    grant_item,
    identity,
    identity_days,
)
from funding_ledger.schemas import (
    DisbursementBody,
    Grant,
    GrantBatch,
    GrantBody,
    GrantLedger,
    LedgerEntry,
    Operator,
    OperatorBody,
    Programme,
    ProgrammeBody,
)

#: the calendar of "today" (a decision date or a payment may not be in the future)
PARIS = ZoneInfo("Europe/Paris")


def today_of(now: datetime) -> date:
    """The day it is in France at ``now``."""
    return now.astimezone(PARIS).date()


# --- operators and programmes --------------------------------------------------------------------


async def list_operators(repo: Repository) -> list[Operator]:
    return await repo.list_operators()


async def list_programmes(repo: Repository) -> list[Programme]:
    return await repo.list_programmes()


async def put_operator(uow: Uow[Repository], principal: Principal, code: str, body: OperatorBody) -> WriteResult[Operator]:
    """Register (201) or relabel an operator (admin); the same label and SIRET change nothing."""
    principal.require_scope(ADMIN)
    current = await uow.repo.get_operator(code)
    value = Operator(code=code, **body.model_dump())
    if current == value:
        return WriteResult(value, changed=False)
    await uow.repo.save_operator(value, exists=current is not None, at=uow.now)
    return WriteResult(value, created=current is None)


async def put_programme(
    uow: Uow[Repository], principal: Principal, code: str, body: ProgrammeBody
) -> WriteResult[Programme]:
    """Register (201) or change a programme and the operators running it (admin): each one registered (422)."""
    principal.require_scope(ADMIN)
    operators = sorted(set(body.operators))
    known = await uow.repo.known_operators(operators)
    unknown = [
        {"loc": ["body", "operators", body.operators.index(o)], "msg": f"unknown operator '{o}'"}
        for o in operators
        if o not in known
    ]
    if unknown:
        raise validation_problem(unknown)
    value = Programme(code=code, label=body.label, operators=operators)
    current = await uow.repo.get_programme(code)
    if current == value:
        return WriteResult(value, changed=False)
    await uow.repo.save_programme(value, exists=current is not None, at=uow.now)
    return WriteResult(value, created=current is None)


# --- reading grants ------------------------------------------------------------------------------


def visible(principal: Principal, where: GrantFilter) -> GrantFilter:
    """The grants ``principal`` reads of those ``where`` asks for: an operator token its own operator's,
    an admin token anyone's; any other token none (403)."""
    _require_reader(principal)
    if principal.is_admin:
        return where
    if where.operator is not None and where.operator != principal.operator:
        raise Problem(403, f"This token may not read the grants of operator '{where.operator}'")
    return replace(where, operator=principal.operator)


def _require_reader(principal: Principal) -> None:
    if not principal.is_admin and principal.operator is None:
        raise Problem(403, "Reading grants needs an operator token (ti_operator) or an admin token")


async def list_grants(repo: Repository, principal: Principal, where: GrantFilter, *, limit: int, cursor: str | None) -> Page[Grant]:
    """A page of the grants ``principal`` may read that ``where`` selects, in key order."""
    found = await repo.list_grants(visible(principal, where), after=cursor_after(cursor, str, str), limit=limit + 1)
    page, next_cursor = page_of(found, limit, lambda g: (g.operator, g.operator_ref))
    return Page[Grant](items=page, next_cursor=next_cursor)


def export_grants(
    repo: Repository, principal: Principal, where: GrantFilter, *, profile: Profile = "full", delimiter: str | None = None
) -> AsyncIterator[bytes]:
    """The CSV of the grants ``principal`` may read that ``where`` selects, line by line (who may read
    is checked here, before the first line): ``profile=scdl`` the 16 SCDL 2.1.1 columns (``,`` unless
    ``delimiter``), ``full`` those and the platform's (``;`` unless ``delimiter``)."""
    return _export_lines(repo, visible(principal, where), profile, delimiter or ("," if profile == "scdl" else ";"))


async def attributors(repo: Repository) -> dict[str, Attributor]:
    """Every operator as SCDL names an attributor (its label and SIRET)."""
    return {o.code: Attributor(o.code, o.label, o.siret) for o in await repo.list_operators()}


async def _export_lines(repo: Repository, where: GrantFilter, profile: Profile, delimiter: str) -> AsyncIterator[bytes]:
    yield export_header(profile, delimiter).encode()
    named = await attributors(repo)
    async for chunk in repo.stream_grants(where):
        yield "".join(
            export_line(g, named.get(g.operator) or Attributor(g.operator, g.operator), profile, delimiter) for g in chunk
        ).encode()


async def get_grant(repo: Repository, principal: Principal, operator: str, operator_ref: str) -> Grant:
    """The grant, to its operator's tokens and admin (403), or the 404."""
    _require_reader(principal)
    principal.require_operator(operator)
    found = await repo.get_grant(operator, operator_ref)
    if found is None:
        raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
    return found


async def get_grant_ledger(repo: Repository, principal: Principal, operator: str, operator_ref: str) -> GrantLedger:
    """The grant's ledger: every entry with the running totals, and the totals (``domain.ledger_totals``)."""
    _require_reader(principal)
    principal.require_operator(operator)
    records = await repo.get_ledger_entries(operator, operator_ref)
    if not records:
        raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
    entries = [r.entry for r in records]
    totals = ledger_totals(entries)
    return GrantLedger(
        id=grant_id(operator, operator_ref),
        committed_eur=totals.committed_eur,
        disbursed_eur=totals.disbursed_eur,
        investment_eur=totals.investment_eur,
        entries=[
            LedgerEntry(
                seq=seq,
                kind=r.entry.kind,
                amount_delta_eur=r.entry.amount_delta_eur,
                investment_delta_eur=r.entry.investment_delta_eur,
                disbursement_ref=r.entry.disbursement_ref,
                paid_on=r.entry.paid_on,
                grant_version=r.grant_version,
                recorded_at=r.recorded_at,
                actor=r.actor,
                committed_eur=running.committed_eur,
                disbursed_eur=running.disbursed_eur,
            )
            for seq, (r, running) in enumerate(zip(records, running_totals(entries), strict=True), 1)
        ],
    )


# --- writing one grant ---------------------------------------------------------------------------


async def known_for(repo: Repository, bodies: Iterable[tuple[str, GrantBody | None]]) -> Known:
    """The operators, programmes and territories that these (operator, body) writes name, as far as
    they exist."""
    operators: set[str] = set()
    programmes: set[str] = set()
    territories: set[str] = set()
    for operator, body in bodies:
        operators.add(operator)
        if body is not None:
            programmes.add(body.programme)
            if body.territory_id is not None:
                territories.add(body.territory_id)
    return Known(
        operators=await repo.known_operators(operators),
        programmes=await repo.known_programmes(programmes),
        territories=await repo.known_territories(territories),
    )


def _put_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Where a grant rule's problem is in a PUT: the operator in the path, the rest in the body."""
    return ["path", "operator"] if list(loc) == ["operator"] else ["body", *loc]


def _refuse(problems: Sequence[Mapping[str, Any]]) -> None:
    """A PUT's answer to the grant rules' problems: the first refusal of who may write as a 403, else
    every problem in one 422."""
    for p in problems:
        if is_forbidden(p):
            raise Problem(403, p["msg"])
    if problems:
        raise validation_problem([{"loc": _put_loc(p["loc"]), "msg": p["msg"]} for p in problems])


def _domain_problem(exc: DomainError) -> Problem:
    if exc.status == 422:
        return field_problem(["body", *exc.loc], exc.msg)
    return Problem(exc.status, exc.msg, errors=[{"loc": ["body", *exc.loc], "msg": exc.msg}])


async def put_grant(
    uow: Uow[Repository],
    principal: Principal,
    operator: str,
    operator_ref: str,
    body: GrantBody,
    *,
    effective_at: datetime | None,
    if_match: str | None,
) -> WriteResult[Grant]:
    """Create (201), amend, cancel or re-activate (200) the grant ``operator/operator_ref``; the same
    body changes nothing (200, same version, no event)."""
    known = await uow.repo.known_for_grant(operator, body.programme, body.territory_id)
    _refuse(
        grant_problems(
            operator,
            body,
            admin=principal.is_admin,
            token_operator=principal.operator,
            known=known,
            today=today_of(uow.now),
        )
    )
    current = await uow.repo.get_grant(operator, operator_ref, for_update=True)
    check_if_match(if_match, current.version if current else None)
    check_not_before(effective_at, current.updated_at if current else None)
    try:
        decision = decide_write(current, body, at=effective_at or uow.now, operator=operator, operator_ref=operator_ref)
    except DomainError as exc:
        raise _domain_problem(exc) from exc
    return await _written(uow, decision, actor=principal.sub, created=current is None)


async def record_disbursement(
    uow: Uow[Repository],
    principal: Principal,
    operator: str,
    operator_ref: str,
    body: DisbursementBody,
    *,
    effective_at: datetime | None,
) -> WriteResult[Grant]:
    """Record a payment on the grant (201); the same ``ref`` with the same values again changes nothing
    (200). Who may is who may PUT the same grant: its operator's tokens while the operator runs the
    grant's programme, and admin (403)."""
    refusal = operator_refusal(operator, admin=principal.is_admin, token_operator=principal.operator)
    if refusal is not None:
        raise Problem(403, refusal["msg"])
    current = await uow.repo.get_grant(operator, operator_ref, for_update=True)
    if current is None:
        raise Problem(404, f"No grant {grant_id(operator, operator_ref)}")
    # the grant's operator is registered: no write creates a grant of an unknown operator, none removes one
    known = Known(operators=(operator,), programmes=await uow.repo.known_programmes([current.programme]))
    refusal = programme_refusal(operator, current.programme, admin=principal.is_admin, known=known)
    if refusal is not None:
        raise Problem(403, refusal["msg"])
    check_not_before(effective_at, current.updated_at)
    try:
        decision = decide_disbursement(current, body, today=today_of(uow.now), at=effective_at or uow.now)
    except DomainError as exc:
        raise _domain_problem(exc) from exc
    return await _written(uow, decision, actor=principal.sub, created=True)


async def _written(uow: Uow[Repository], decision: Decision, *, actor: str, created: bool) -> WriteResult[Grant]:
    """The answer to a decided write of one grant: nothing written when nothing changes, else the change."""
    grant = decision.entity
    if not decision.changed:
        return WriteResult(grant, changed=False, version=grant.version)
    event_id = await write_change(uow, decision, actor=actor)
    return WriteResult(grant, created=created, version=grant.version, event_ids=(event_id,))


async def write_change(uow: Uow[Repository], decision: Decision, *, actor: str) -> str:
    """Write a decided change: the grant's row (its first version inserted, the others updated), its
    ledger entries and its event, in the unit of work's transaction. Returns the event's id."""
    assert decision.change is not None
    grant = decision.entity
    if grant.version == 1:
        await uow.repo.insert_grants([grant])
    else:
        await uow.repo.update_grants([grant])
    await uow.repo.add_ledger_entries([decision], actor=actor)
    spec = EVENT_OF_CHANGE[decision.change]
    event = await uow.record(
        topic=spec.topic,
        type_=spec.type,
        subject=grant.id,
        version=grant.version,
        actor=actor,
        data=grant.model_dump(mode="json"),
        time=grant.updated_at,
    )
    return event.id


# --- batches -------------------------------------------------------------------------------------

#: a grant's JSON text, as its event's ``data`` (the outbox takes it as it is)
_GRANT_JSON = Grant.__pydantic_serializer__.to_json


async def write_changes(
    uow: Uow[Repository], decisions: Sequence[Decision], *, existing: Mapping[GrantKey, Grant], actor: str
) -> list[str]:
    """Write many decided changes at once (a batch, in order; a grant may come back): each grant's last
    state (inserted unless in ``existing``, else updated), every ledger entry, every event with one
    bulk insert. Returns the events' ids."""
    last: dict[GrantKey, Grant] = {}
    for d in decisions:
        last[(d.entity.operator, d.entity.operator_ref)] = d.entity
    await uow.repo.insert_grants([g for k, g in last.items() if k not in existing])
    await uow.repo.update_grants([g for k, g in last.items() if k in existing])
    await uow.repo.add_ledger_entries(decisions, actor=actor)
    grants = [d.entity for d in decisions]
    events = []
    for d, g in zip(decisions, grants, strict=True):
        assert d.change is not None
        spec = EVENT_OF_CHANGE[d.change]
        events.append(NewEvent(spec.topic, spec.type, g.id, g.version, actor, _GRANT_JSON(g), g.updated_at))
    return await uow.record_many(events)


async def post_grant_batch(
    uow: Uow[Repository], principal: Principal, batch: ParsedBatch, *, effective_at: datetime | None
) -> WriteResult[dict[str, Any]]:
    """Apply a batch's rows in order, each checked by the same rules as a PUT (``domain.grant_problems``):
    ``partial`` writes the valid rows (201), ``atomic`` all of them or — when one is rejected — none
    (422 with the report), as does a batch every row of which is rejected. Two rows of one grant are
    both rejected. An SCDL file's rows are completed once their grants are known
    (:func:`read_scdl_rows`). The batch and its report are stored either way."""
    existing: dict[GrantKey, Grant] | None = None
    rows = batch.rows
    if batch.csv:
        rows, existing = await read_scdl_rows(uow.repo, batch)
    items = read_items(rows, csv=batch.csv)
    reject_repeated(items)
    known = await known_for(uow.repo, [(i.operator, i.body) for i in items if i.operator is not None])
    today = today_of(uow.now)
    for item in items:
        if item.operator is not None:
            problems = grant_problems(
                item.operator,
                item.body,
                admin=principal.is_admin,
                token_operator=principal.operator,
                known=known,
                today=today,
            )
            if problems:
                item.parsed.errors.extend(located(problems, csv=batch.csv))
    if existing is None:
        keys = [i.key for i in items if i.valid]
        existing = await uow.repo.get_grants([k for k in keys if k is not None], for_update=True)
    decisions, report = _decide_rows(items, existing, at=effective_at or uow.now, effective_at=effective_at, csv=batch.csv)
    batch_id = str(uuid.uuid4())
    warnings = sum(len(i.parsed.warnings) for i in items)
    accepted = [(i.body.programme, i.body.amount_eur) for i, r in zip(items, report, strict=True) if r["outcome"] != "rejected" and i.body]
    control = control_report(batch.control, accepted)
    doc = batch_report(batch_id, batch.mode, uow.now, report, warnings=warnings, file_warnings=batch.warnings, control=control)
    event_ids: list[str] = []
    if doc["status"] != "rejected":
        event_ids = await write_changes(uow, decisions, existing=existing, actor=principal.sub)
    await uow.repo.add_batch(
        doc, received_at=uow.now, operator=principal.operator, actor=principal.sub, media_type=batch.media_type
    )
    location = f"/v1/grant-batches/{batch_id}"
    if doc["status"] == "rejected":
        return WriteResult(doc, changed=False, location=location, problem=batch_problem(doc, location))
    return WriteResult(doc, created=True, changed=bool(event_ids), location=location, event_ids=tuple(event_ids))


async def read_scdl_rows(repo: Repository, batch: ParsedBatch) -> tuple[list[ParsedRow], dict[GrantKey, Grant]]:
    """An SCDL file's rows as batch rows: each row's key (its ``operator_ref``, else the grant of its
    SCDL identity, else the key derived from it), its grant loaded (``FOR UPDATE``) and the row
    completed over it (``scdl.grant_item``); and the grants loaded."""
    ctx = ScdlContext(await attributors(repo), {p.code: p.label for p in await repo.list_programmes()},
                      batch.programme, batch.beneficiary_kind)
    found: dict[tuple[str, str], list[str]] = {}
    for op, days in identity_days(batch.scdl, ctx).items():
        for g in await repo.get_grant_identities(op, days):
            own = identity(decision_ref=g.decision_ref, decision_date=g.decision_date, siret=g.siret, rna=g.rna, name=g.name,
                           object_=g.object, attributor_siret=g.attributor_siret)
            if own is not None:
                found.setdefault((op, own), []).append(g.operator_ref)
    assign_keys(batch.scdl, ctx, found)
    keys = [(r.operator, r.operator_ref) for r in batch.scdl if r.operator is not None and r.operator_ref is not None]
    existing = await repo.get_grants(keys, for_update=True)
    return [_batch_row(r, existing, ctx) for r in batch.scdl], existing


def _batch_row(row: ScdlRow, existing: Mapping[GrantKey, Grant], ctx: ScdlContext) -> ParsedRow:
    item = None
    if row.operator is not None and row.operator_ref is not None:
        item = grant_item(row, existing.get((row.operator, row.operator_ref)), ctx)
    errors, warnings = row.notes.errors, row.notes.warnings
    return ParsedRow(row.row, item if not errors else None, errors, warnings, row.line, row.operator, row.operator_ref)


def _decide_rows(
    items: Sequence[BatchItem],
    existing: Mapping[GrantKey, Grant],
    *,
    at: datetime,
    effective_at: datetime | None,
    csv: bool,
) -> tuple[list[Decision], list[dict[str, Any]]]:
    """Decide every valid row in order (a key that comes back updates the state the batch reached):
    the changes, and the report's rows."""
    state: dict[GrantKey, Grant] = dict(existing)
    decisions: list[Decision] = []
    report: list[dict[str, Any]] = []
    for item in items:
        key, body, decision = item.key, item.body, None
        if body is not None and key is not None and not item.parsed.errors:  # item.valid
            current = state.get(key)
            try:
                if current is not None:
                    check_not_before(effective_at, current.updated_at)
                decision = decide_write(current, body, at=at, operator=key[0], operator_ref=key[1])
            except DomainError as exc:
                item.parsed.errors.extend(located([{"loc": exc.loc, "msg": exc.msg}], csv=csv))
            except Problem as exc:
                item.parsed.errors.append({"loc": ["updated_at"], "msg": exc.detail})
        if decision is None or key is None:
            report.append(row_report(item, "rejected", None))
            continue
        if decision.change is not None:
            state[key] = decision.entity
            decisions.append(decision)
        report.append(row_report(item, decision.outcome, state[key].version))
    return decisions, report


async def get_grant_batch(repo: Repository, principal: Principal, batch_id: str) -> GrantBatch:
    """A batch and its report, to the tokens of the operator it was sent for, and admin (403): a batch
    sent without an operator (by a token that has none) to its sender alone, the same ``sub`` without
    an operator — the owner of its Idempotency-Key."""
    found = await repo.get_batch(batch_id)
    if found is None:
        raise Problem(404, f"No batch {batch_id}")
    if principal.is_admin:
        return found.batch
    if found.operator is not None:
        allowed = principal.operator == found.operator
    else:
        allowed = principal.operator is None and principal.sub == found.actor
    if not allowed:
        raise Problem(403, "This batch was sent for another operator")
    return found.batch
