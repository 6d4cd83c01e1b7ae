"""Batches of grants, read: a JSON ``{items, mode}`` into rows (:func:`parse_json_batch`) or an SCDL
file into its rows' values (:func:`parse_csv_batch`, completed into rows by the service once their
grants are known: ``funding_ledger.scdl``), each row's key and body typed (:func:`read_items`), two
rows of one grant refused (:func:`reject_repeated`), and the batch's report (:func:`batch_report`,
:func:`batch_problem`). The rules are the domain's, the use case the service's
(``service.post_grant_batch``)."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ti_shared.imports import Message, read_import, repeated
from ti_shared.problems import Problem, clean_pydantic_errors, field_problem
from ti_shared.types import format_decimal

from funding_ledger.scdl import LAYOUT, ScdlRow, csv_loc, read_rows
from funding_ledger.schemas import OPERATOR_REF_PATTERN, BatchMode, BeneficiaryKind, ControlTotal, GrantBody

MAX_ITEMS = 10_000
BATCH_KEYS = {"items", "mode", "control"}

_ref_re = re.compile(OPERATOR_REF_PATTERN)

#: the batches under way that hold the cyclic garbage collector off (:func:`collector_paused`)
_paused = 0


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off while a batch is read, checked and written.

    A batch allocates a few hundred thousand containers (its parsed rows, their models, the events),
    almost none of them in cycles: reference counting frees them. Each allocation counts towards the
    collector's thresholds, which then walks the young objects again and again and, every few
    batches, the whole heap: on 5,000 rows a third of the validation's time, and from run to run
    (measured: 48–50 ms without collections, 55–240 ms with). The batch is bounded (``MAX_ITEMS``
    rows, ``BATCH_MAX_BYTES``), so what a pause lets pile up is too; the collector runs again when
    the last batch under way ends."""
    global _paused
    if _paused == 0 and not gc.isenabled():  # held off by someone else: theirs to turn on again
        yield
        return
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()


@dataclass
class ParsedRow:
    """One row of a batch: its position (1-based), its item (None when it could not be read: the
    reasons are in ``errors``), the key it names when the item is None, and its line in a CSV file."""

    row: int
    item: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    line: int | None = None
    operator: str | None = None
    operator_ref: str | None = None


@dataclass(frozen=True)
class ParsedBatch:
    """A batch as the request gave it: its rows (a CSV batch's: its rows' values, completed by the
    service), its mode, whether it came as a file, its media type, the file's warnings and the
    query's defaults for rows without a programme or a beneficiary's kind."""

    rows: list[ParsedRow]
    mode: BatchMode
    csv: bool = False
    media_type: str = "application/json"
    scdl: list[ScdlRow] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)
    programme: str | None = None
    beneficiary_kind: BeneficiaryKind | None = None
    control: list[ControlTotal] | None = None


_CONTROL: TypeAdapter[list[ControlTotal]] = TypeAdapter(list[ControlTotal])


def read_control(doc: Any, loc: list[str | int]) -> tuple[list[ControlTotal] | None, list[dict[str, Any]]]:
    """A batch's control totals (``[{programme, count, amount_eur}]``, one per programme) and the errors
    that refuse them, located under ``loc``."""
    if doc is None:
        return None, []
    try:
        totals = _CONTROL.validate_python(doc)
    except ValidationError as exc:
        return None, [{"loc": [*loc, *e["loc"]], "msg": e["msg"]} for e in clean_pydantic_errors(exc.errors())]
    seen = [t.programme for t in totals]
    errors: list[dict[str, Any]] = [
        {"loc": [*loc, i, "programme"], "msg": f"{p} is declared twice: one total per programme"}
        for i, p in enumerate(seen)
        if p in seen[:i]
    ]
    return totals, errors


def parse_control_query(values: Sequence[str] | None) -> list[ControlTotal] | None:
    """``?control=PROGRAMME:COUNT:AMOUNT`` (repeated, one per programme) as control totals (422 otherwise)."""
    if not values:
        return None
    docs: list[Any] = []
    for text in values:
        parts = text.split(":")
        docs.append(dict(zip(("programme", "count", "amount_eur"), parts, strict=False)) if len(parts) == 3 else text)
        if len(parts) == 3 and parts[1].strip().isdigit():
            docs[-1]["count"] = int(parts[1])
    if any(not isinstance(d, dict) for d in docs):
        raise field_problem(["query", "control"], "must be PROGRAMME:COUNT:AMOUNT, e.g. fonds_vert_ti_te:12:1500000.00")
    totals, errors = read_control(docs, ["query", "control"])
    if errors:
        raise Problem(422, "; ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in errors), title="Invalid content", errors=errors)
    return totals


def parse_json_batch(doc: Any, *, media_type: str = "application/json", query_mode: str | None = None) -> ParsedBatch:
    """The items of a JSON batch (as ``ti_shared.http.parse_json_body`` read it) and its mode (413
    beyond :data:`MAX_ITEMS`); ``?mode=`` is for CSV bodies only."""
    if query_mode is not None:
        raise field_problem(["query", "mode"], "is for CSV bodies; a JSON batch gives its mode in the body")
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
    control, control_errors = read_control(doc.get("control"), ["body", "control"])
    errors.extend(control_errors)
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
    return ParsedBatch(rows, "atomic" if mode == "atomic" else "partial", media_type=media_type, control=control)


def parse_csv_batch(
    body: bytes,
    default_operator: str | None,
    *,
    media_type: str = "text/csv",
    query_mode: BatchMode | None = None,
    programme: str | None = None,
    beneficiary_kind: BeneficiaryKind | None = None,
    control: list[ControlTotal] | None = None,
) -> ParsedBatch:
    """An SCDL file's rows, read (a row's operator defaults to the token's); ``?mode=`` gives its mode
    (partial by default), ``?programme=`` and ``?beneficiary_kind=`` the defaults of its rows."""
    table = read_import(body, media_type, LAYOUT, max_rows=MAX_ITEMS + 1)
    check_size(len(table.rows))
    return ParsedBatch(
        [],
        query_mode or "partial",
        csv=True,
        media_type=media_type,
        scdl=read_rows(table, default_operator),
        warnings=table.warnings,
        programme=programme,
        beneficiary_kind=beneficiary_kind,
        control=control,
    )


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


# --- each row's key and body, typed -------------------------------------------------------------


@dataclass(slots=True)
class BatchItem:
    """A row with its key and body as far as they could be read (None where they could not: the
    reason is in ``parsed.errors``); ``key`` its operator and reference when both could be."""

    parsed: ParsedRow
    operator: str | None = None
    operator_ref: str | None = None
    body: GrantBody | None = None
    key: tuple[str, str] | None = field(init=False)

    def __post_init__(self) -> None:
        self.key = None if self.operator is None or self.operator_ref is None else (self.operator, self.operator_ref)

    @property
    def valid(self) -> bool:
        """Typed and with no error so far: the domain may decide it."""
        return self.body is not None and self.key is not None and not self.parsed.errors


_BODIES: TypeAdapter[list[GrantBody]] = TypeAdapter(list[GrantBody])
_KEY_FIELDS = ("operator", "operator_ref")


def _body_item(item: dict[str, Any]) -> dict[str, Any]:
    """The grant fields of a batch item (without its key)."""
    body = dict(item)
    for key in _KEY_FIELDS:
        body.pop(key, None)
    return body


def _validated_bodies(rows: Sequence[ParsedRow]) -> list[GrantBody | None] | None:
    """Every item's body validated in one call, or None when one is invalid (then each row is
    validated on its own, which gives its errors)."""
    items = [_body_item(r.item) for r in rows if r.item is not None]
    try:
        bodies = iter(_BODIES.validate_python(items))
    except ValidationError:
        return None
    return [next(bodies) if r.item is not None else None for r in rows]


def read_items(rows: Sequence[ParsedRow], *, csv: bool) -> list[BatchItem]:
    """Each row's operator, reference and body; what cannot be read is an error of its row (located
    in the CSV's columns for a CSV batch)."""
    bodies = _validated_bodies(rows) or [None] * len(rows)
    return [_read_item(parsed, body, csv=csv) for parsed, body in zip(rows, bodies, strict=True)]


def _read_item(parsed: ParsedRow, body: GrantBody | None, *, csv: bool) -> BatchItem:
    item = parsed.item
    if item is None:
        return BatchItem(parsed)
    operator, operator_ref = item.get("operator"), item.get("operator_ref")
    errors = parsed.errors
    if not isinstance(operator, str):
        errors.append({"loc": ["operator"], "msg": "is not a registered operator"})
        operator = None
    if not isinstance(operator_ref, str) or not _ref_re.fullmatch(operator_ref):
        errors.append({"loc": ["operator_ref"], "msg": "must match " + OPERATOR_REF_PATTERN})
        operator_ref = None
    if body is None:
        try:
            body = GrantBody.model_validate(_body_item(item))
        except ValidationError as exc:
            errors.extend(located(clean_pydantic_errors(exc.errors()), csv=csv))
    return BatchItem(parsed, operator, operator_ref, body)


def reject_repeated(items: Sequence[BatchItem]) -> None:
    """Two rows of one batch that write one grant are both rejected, each naming the other(s): a batch
    never amends a grant it created, nor decides which of two rows holds."""
    keys = [i.key or _named_key(i.parsed) for i in items]
    for index, others in repeated(keys).items():
        parsed = items[index].parsed
        named = [items[o].parsed for o in others]
        where = "line" if parsed.line is not None else "row"
        numbers = [p.line if p.line is not None else p.row for p in named]
        label = f"{where} {numbers[0]}" if len(numbers) == 1 else f"{where}s " + ", ".join(map(str, numbers))
        parsed.errors.append({"loc": ["operator_ref"], "msg": f"repeats the grant of {label}"})


def _named_key(parsed: ParsedRow) -> tuple[str, str] | None:
    """The key a row that could not be read names (its operator and reference, when it gave them)."""
    if parsed.item is not None:
        op, ref = parsed.item.get("operator"), parsed.item.get("operator_ref")
    else:
        op, ref = parsed.operator, parsed.operator_ref
    return (op, ref) if isinstance(op, str) and isinstance(ref, str) else None


def located(found: Sequence[dict[str, Any]], *, csv: bool) -> list[dict[str, Any]]:
    """A row's errors ``{loc, msg}`` located in the grant, or in the CSV's columns for a CSV batch."""
    if not found:
        return []
    return [{"loc": csv_loc(e["loc"]) if csv else list(e["loc"]), "msg": e["msg"]} for e in found]


# --- the report ---------------------------------------------------------------------------------


def _messages(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row's errors or warnings as the report's ``FieldMessage`` objects (JSON form)."""
    if not found:
        return []
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in found]


def row_report(item: BatchItem, outcome: str, version: int | None) -> dict[str, Any]:
    """A row of the report (``BatchRow``, JSON form): rejected when it has errors."""
    parsed = item.parsed
    if outcome == "rejected":
        raw = parsed.item or {"operator": parsed.operator, "operator_ref": parsed.operator_ref}
        op, ref = raw.get("operator"), raw.get("operator_ref")
        operator, operator_ref = (op if isinstance(op, str) else None), (ref if isinstance(ref, str) else None)
    else:
        operator, operator_ref = item.operator, item.operator_ref
    return {
        "row": parsed.row,
        "line": parsed.line,
        "operator": operator,
        "operator_ref": operator_ref,
        "outcome": outcome,
        "version": version,
        "errors": _messages(parsed.errors) if outcome == "rejected" else [],
        "warnings": _messages(parsed.warnings),
    }


_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


def control_report(declared: Sequence[ControlTotal] | None, accepted: Iterable[tuple[str, Decimal]]) -> dict[str, Any] | None:
    """The batch against the operator's control totals (``BatchControl``, JSON form): per programme
    declared or received, the grants accepted (their count and amount), the difference, match or
    mismatch. None when the batch declared none."""
    if declared is None:
        return None
    received: dict[str, list[Decimal]] = {}
    for programme, amount in accepted:
        received.setdefault(programme, []).append(amount)
    own = {t.programme: t for t in declared}
    checks = []
    for programme in sorted(own.keys() | received.keys()):
        got = received.get(programme, [])
        count, amount = len(got), sum(got, Decimal("0"))
        total = own.get(programme)
        base_count, base_amount = (total.count, total.amount_eur) if total is not None else (0, Decimal("0"))
        matched = total is not None and (count, amount) == (base_count, base_amount)
        checks.append(
            {
                "programme": programme,
                "declared": None if total is None else {"count": total.count, "amount_eur": format_decimal(total.amount_eur)},
                "received": {"count": count, "amount_eur": format_decimal(amount)},
                "difference": {"count": count - base_count, "amount_eur": format_decimal(amount - base_amount)},
                "status": "match" if matched else "mismatch",
            }
        )
    return {"status": "match" if all(c["status"] == "match" for c in checks) else "mismatch", "programmes": checks}


def control_errors(control: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A mismatch of the control totals as the errors of a refusal (``loc: ["control", programme]``)."""
    if control is None:
        return []
    out = []
    for c in control["programmes"]:
        if c["status"] == "match":
            continue
        got = c["received"]
        if c["declared"] is None:
            msg = f"no total declared; the batch holds {got['count']} grants for {got['amount_eur']} EUR"
        else:
            own = c["declared"]
            msg = (f"declared {own['count']} grants for {own['amount_eur']} EUR; the batch holds {got['count']} for "
                   f"{got['amount_eur']} EUR (difference {c['difference']['count']:+d}, {c['difference']['amount_eur']} EUR)")
        out.append({"loc": ["control", c["programme"]], "msg": msg})
    return out


def batch_report(
    batch_id: str,
    mode: BatchMode,
    received_at: datetime,
    rows: list[dict[str, Any]],
    *,
    warnings: int,
    file_warnings: Sequence[Message] = (),
    control: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The batch resource (``GrantBatch``, JSON form): ``rejected`` — nothing written — when an atomic
    batch has a rejected row or does not match its control totals, or when every row of a batch is
    rejected."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    for r in rows:
        counts[r["outcome"]] += 1
    rejected = counts["rejected"] > 0
    mismatch = control is not None and control["status"] == "mismatch"
    nothing_valid = rejected and counts["rejected"] == len(rows)
    if ((rejected or mismatch) and mode == "atomic") or nothing_valid:
        status = "rejected"
    else:
        status = "completed_with_errors" if rejected else "completed"
    return {
        "id": batch_id,
        "status": status,
        "mode": mode,
        "received_at": _INSTANT.dump_python(received_at, mode="json"),
        "counts": {"total": len(rows), **counts, "warnings": warnings + len(file_warnings)},
        "rows": rows,
        "warnings": [w.model_dump(mode="json") for w in file_warnings],
        "control": control,
    }


def batch_problem(doc: dict[str, Any], location: str) -> Problem:
    """The 422 of a batch that wrote nothing (atomic with a rejected row or a control total that does not
    match, or every row rejected), with its whole report (``doc``) as ``batch``."""
    errors = [
        {"loc": ["items", r["row"] - 1, *e["loc"]], "msg": e["msg"]}
        for r in doc["rows"]
        if r["outcome"] == "rejected"
        for e in r["errors"]
    ]
    errors.extend(control_errors(doc.get("control")))
    shown = "; ".join(".".join(map(str, e["loc"])) + ": " + str(e["msg"]) for e in errors[:5])
    counts = doc["counts"]
    why = "atomic mode" if doc["mode"] == "atomic" else "no row is valid"
    what = f"{counts['rejected']} of {counts['total']} rows are invalid" if counts["rejected"] else "the batch does not match its control totals"
    return Problem(
        422,
        f"{what}; nothing was written ({why}): {shown}",
        title="Batch rejected",
        kind="batch-rejected",
        instance=location,
        errors=errors,
        extensions={"batch": doc},
    )
