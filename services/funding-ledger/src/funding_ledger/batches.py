"""Batches of grants: validate every row, apply them in order, write everything with a few bulk statements."""

from __future__ import annotations

import re
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.auth import Principal
from ti_shared.events import NewEvent
from ti_shared.http import check_not_before
from ti_shared.problems import Problem, clean_pydantic_errors
from ti_shared.replica import known_territories
from ti_shared.tabular import read_csv

from funding_ledger import repository as repo
from funding_ledger.domain import DomainError, GrantWrite, cross_field_errors, plan_grant_write
from funding_ledger.events import GRANT_EVENTS
from funding_ledger.scdl import ParsedRow, csv_loc, item_from_csv_row
from funding_ledger.schemas import OPERATOR_REF_PATTERN, Grant, GrantBody

MAX_ITEMS = 10_000
BATCH_KEYS = {"items", "mode"}

_ref_re = re.compile(OPERATOR_REF_PATTERN)


def parse_json_batch(doc: Any) -> tuple[list[ParsedRow], str]:
    """The items of a JSON batch (as ``ti_shared.http.parse_json_body`` read it) and its mode (413
    beyond :data:`MAX_ITEMS`)."""
    if not isinstance(doc, dict):
        raise Problem(
            422, "body: must be an object {items, mode}", errors=[{"loc": ["body"], "msg": "must be an object"}]
        )
    errors: list[dict[str, Any]] = [
        {"loc": ["body", k], "msg": "is not a field of a batch"} for k in sorted(set(doc) - BATCH_KEYS)
    ]
    mode = doc.get("mode", "partial")
    if mode not in ("partial", "atomic"):
        errors.append({"loc": ["body", "mode"], "msg": "must be partial or atomic"})
    items = doc.get("items")
    if not isinstance(items, list):
        errors.append({"loc": ["body", "items"], "msg": "is required: a list of grants"})
    if errors:
        raise Problem(
            422,
            "; ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in errors),
            title="Invalid content",
            errors=errors,
        )
    assert isinstance(items, list)
    check_size(len(items))
    rows = []
    for i, item in enumerate(items, 1):
        if isinstance(item, dict):
            rows.append(ParsedRow(i, item))
        else:
            rows.append(ParsedRow(i, None, [{"loc": [], "msg": "must be an object"}]))
    return rows, str(mode)


def parse_csv_batch(body: bytes, default_operator: str | None) -> list[ParsedRow]:
    records = read_csv(body)
    check_size(len(records))
    return [item_from_csv_row(i, cells, default_operator) for i, cells in enumerate(records, 1)]


def check_size(count: int) -> None:
    if count == 0:
        raise Problem(
            422,
            "body.items: the batch is empty",
            title="Invalid content",
            errors=[{"loc": ["body", "items"], "msg": "is empty"}],
        )
    if count > MAX_ITEMS:
        raise Problem(413, f"A batch holds at most {MAX_ITEMS} grants ({count} given); split it")


@dataclass
class _Valid:
    row: ParsedRow
    operator: str
    operator_ref: str
    body: GrantBody


_BODIES: TypeAdapter[list[GrantBody]] = TypeAdapter(list[GrantBody])
_KEY_FIELDS = ("operator", "operator_ref")


def _body_item(item: dict[str, Any]) -> dict[str, Any]:
    """The grant fields of a batch item (without its key)."""
    body = dict(item)
    for key in _KEY_FIELDS:
        body.pop(key, None)
    return body


def _validated_bodies(rows: list[ParsedRow]) -> list[GrantBody | None] | None:
    """Every item's body validated in one call, or None when one is invalid (then each row is
    validated on its own, which gives its errors)."""
    items = [_body_item(r.item) for r in rows if r.item is not None]
    try:
        bodies = iter(_BODIES.validate_python(items))
    except ValidationError:
        return None
    return [next(bodies) if r.item is not None else None for r in rows]


def _validate_item(
    parsed: ParsedRow,
    principal: Principal,
    runners: dict[str, list[str]],
    operators: set[str],
    today: date,
    *,
    csv_locs: bool,
    body: GrantBody | None = None,
) -> _Valid | None:
    item = parsed.item
    if item is None:
        return None
    operator, operator_ref = item.get("operator"), item.get("operator_ref")
    errors = parsed.errors
    if not isinstance(operator, str) or operator not in operators:
        errors.append({"loc": ["operator"], "msg": "is not a registered operator"})
    elif not principal.is_admin and operator != principal.operator:
        errors.append({"loc": ["operator"], "msg": f"this token may not write grants of operator '{operator}'"})
    if not isinstance(operator_ref, str) or not _ref_re.fullmatch(operator_ref):
        errors.append({"loc": ["operator_ref"], "msg": "must match " + OPERATOR_REF_PATTERN})
    if body is None:
        try:
            body = GrantBody.model_validate(_body_item(item))
        except ValidationError as exc:
            for e in clean_pydantic_errors(exc.errors()):
                errors.append({"loc": csv_loc(e["loc"]) if csv_locs else e["loc"], "msg": e["msg"]})
            return None
    for e in cross_field_errors(body, today):
        errors.append({"loc": csv_loc(e["loc"]) if csv_locs else e["loc"], "msg": e["msg"]})
    if body.programme not in runners:
        errors.append({"loc": ["programme"], "msg": f"unknown programme '{body.programme}'"})
    elif isinstance(operator, str) and operator not in runners[body.programme]:
        errors.append({"loc": ["programme"], "msg": f"is not run by operator '{operator}'"})
    if errors:
        return None
    assert isinstance(operator, str) and isinstance(operator_ref, str)
    return _Valid(parsed, operator, operator_ref, body)


@dataclass
class BatchResult:
    """What a batch did: its report (the ``GrantBatch`` resource, in JSON form) and what to write."""

    id: str
    status: str
    mode: str
    received_at: datetime
    doc: dict[str, Any]
    inserts: list[Grant] = field(default_factory=list)
    updates: list[Grant] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)


_GRANTS: TypeAdapter[list[Grant]] = TypeAdapter(list[Grant])
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


def _messages(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row's errors or warnings as the report's ``FieldMessage`` objects (JSON form)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in found]


async def run_batch(
    session: AsyncSession,
    *,
    rows: list[ParsedRow],
    mode: str,
    principal: Principal,
    now: datetime,
    effective_at: datetime | None,
    today: date,
    csv_locs: bool,
) -> BatchResult:
    """Validate and apply ``rows`` in memory: the report, then what to insert, update, ledger and publish."""
    runners = await repo.programme_runners(session)
    operators = await repo.known_operators(session, {str(r.item.get("operator")) for r in rows if r.item})
    bodies = _validated_bodies(rows) or [None] * len(rows)
    valid = [
        _validate_item(r, principal, runners, operators, today, csv_locs=csv_locs, body=b)
        for r, b in zip(rows, bodies, strict=True)
    ]
    territories = {v.body.territory_id for v in valid if v is not None and v.body.territory_id}
    known = await known_territories(session, territories)  # type: ignore[arg-type]
    existing = await repo.load_grants(session, [(v.operator, v.operator_ref) for v in valid if v], for_update=True)
    return _apply(
        rows,
        valid,
        known,
        existing,
        mode=mode,
        principal=principal,
        now=now,
        effective_at=effective_at,
        csv_locs=csv_locs,
    )


def _apply(
    rows: list[ParsedRow],
    valid: list[_Valid | None],
    known: Container[str],
    existing: dict[tuple[str, str], Grant],
    *,
    mode: str,
    principal: Principal,
    now: datetime,
    effective_at: datetime | None,
    csv_locs: bool,
) -> BatchResult:
    """Plan every row in order (a key may come back: it then updates the state the batch reached)."""
    state: dict[tuple[str, str], Grant] = dict(existing)
    at = effective_at or now
    report: list[dict[str, Any]] = []
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    warnings = 0
    steps: list[GrantWrite] = []
    for parsed, v in zip(rows, valid, strict=True):
        if v is not None and v.body.territory_id and v.body.territory_id not in known:
            parsed.errors.append({"loc": ["territory_id"], "msg": f"unknown territory '{v.body.territory_id}'"})
            v = None
        write: GrantWrite | None = None
        if v is not None:
            key = (v.operator, v.operator_ref)
            current = state.get(key)
            try:
                if effective_at is not None and current is not None:
                    check_not_before(effective_at, current.updated_at)
                write = plan_grant_write(current, v.body, operator=v.operator, operator_ref=v.operator_ref, now=at)
            except DomainError as exc:
                parsed.errors.append({"loc": csv_loc(exc.loc) if csv_locs else exc.loc, "msg": exc.msg})
            except Problem as exc:
                parsed.errors.append({"loc": ["updated_at"], "msg": exc.detail})
        warnings += len(parsed.warnings)
        if write is None or v is None:
            item = parsed.item or {}
            op, ref = item.get("operator"), item.get("operator_ref")
            report.append(
                {
                    "row": parsed.row,
                    "operator": op if isinstance(op, str) else None,
                    "operator_ref": ref if isinstance(ref, str) else None,
                    "outcome": "rejected",
                    "version": None,
                    "errors": _messages(parsed.errors),
                    "warnings": _messages(parsed.warnings),
                }
            )
            counts["rejected"] += 1
            continue
        key = (v.operator, v.operator_ref)
        if write.grant is not None:
            state[key] = write.grant
            steps.append(write)
        outcome = write.outcome
        counts[outcome] += 1
        report.append(
            {
                "row": parsed.row,
                "operator": v.operator,
                "operator_ref": v.operator_ref,
                "outcome": outcome,
                "version": state[key].version,
                "errors": [],
                "warnings": _messages(parsed.warnings),
            }
        )

    rejected = counts["rejected"] > 0
    status = "rejected" if rejected and mode == "atomic" else "completed_with_errors" if rejected else "completed"
    batch_id = str(uuid.uuid4())
    doc = {
        "id": batch_id,
        "status": status,
        "mode": mode,
        "received_at": _INSTANT.dump_python(now, mode="json"),
        "counts": {"total": len(report), **counts, "warnings": warnings},
        "rows": report,
    }
    result = BatchResult(batch_id, status, mode, now, doc)
    if status == "rejected":
        return result
    result.inserts = [g for k, g in state.items() if k not in existing]
    result.updates = [g for k, g in state.items() if k in existing and g.version != existing[k].version]
    grants = [w.grant for w in steps if w.grant is not None]
    for write, g, data in zip(steps, grants, _GRANTS.dump_python(grants, mode="json"), strict=True):
        assert write.change is not None
        result.entries.extend(repo.entry_rows(g, write.entries, actor=principal.sub))
        spec = GRANT_EVENTS[write.change]
        result.events.append(NewEvent(spec.topic, spec.type, g.id, g.version, principal.sub, data, at))
    return result


def batch_problem_body(doc: dict[str, Any], location: str) -> dict[str, Any]:
    """The 422 problem document of an atomic batch that was refused, with its whole report (``doc``)."""
    errors = [
        {"loc": ["items", r["row"] - 1, *e["loc"]], "msg": e["msg"]}
        for r in doc["rows"]
        if r["outcome"] == "rejected"
        for e in r["errors"]
    ]
    shown = "; ".join(".".join(map(str, e["loc"])) + ": " + str(e["msg"]) for e in errors[:5])
    counts = doc["counts"]
    return {
        "type": "https://ti.anct.gouv.fr/problems/batch-rejected",
        "title": "Batch rejected",
        "status": 422,
        "detail": f"{counts['rejected']} of {counts['total']} rows are invalid; nothing was written (atomic mode): {shown}",
        "instance": location,
        "errors": errors,
        "batch": doc,
    }
