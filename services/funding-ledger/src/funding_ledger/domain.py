"""Pure rules of the funding ledger: who may write a grant and what it must satisfy (:func:`grant_problems`),
grant writes and disbursements (:func:`decide_write`, :func:`decide_disbursement`), ledger arithmetic.

The ledger is append-only. Its entries move two totals: the committed amount (commitment, amendment
and cancellation deltas) and the disbursed amount (disbursements). A committed grant's committed
amount equals its ``amount_eur``; a cancelled grant's equals what was already paid (a cancellation
releases the remaining commitment). Paid never exceeds committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from ti_shared.service import Decision as BaseDecision

from funding_ledger.schemas import Disbursement, Grant, GrantBody

ZERO = Decimal("0.00")

Change = Literal["committed", "amended", "cancelled", "disbursed"]


class DomainError(Exception):
    """A rule refused the write: ``status`` 409 (state conflict) or 422 (invalid content)."""

    def __init__(self, status: int, loc: list[str | int], msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.loc = loc
        self.msg = msg


@dataclass(frozen=True)
class EntryPlan:
    """One ledger entry to append."""

    kind: Literal["commitment", "amendment", "cancellation", "disbursement"]
    amount_delta_eur: Decimal
    investment_delta_eur: Decimal = ZERO
    disbursement_ref: str | None = None
    paid_on: date | None = None


@dataclass(frozen=True)
class Decision(BaseDecision[Change, Grant]):
    """What a write does to a grant: its kind (None: unchanged), the grant after it (the current one
    when unchanged) and the ledger entries it appends. ``changed_fields`` stays empty: the ledger's
    entries, not a history of fields, say what changed."""

    entries: tuple[EntryPlan, ...] = ()

    @property
    def outcome(self) -> Literal["created", "updated", "unchanged"]:
        if self.change is None:
            return "unchanged"
        return "created" if self.entity.version == 1 else "updated"


def grant_id(operator: str, operator_ref: str) -> str:
    return f"{operator}/{operator_ref}"


# --- the grant rules: who may write, what a grant must satisfy beyond its types -----------------

#: the ``status`` of a rule about who may write: a PUT answers it as a 403, a batch row reports it
#: like its other errors (docs/operator-guide.md, « Push a batch »)
FORBIDDEN = 403


@dataclass(frozen=True)
class Known:
    """The reference data a write is checked against, as the service loaded it: the registered
    operators, the programmes with the operators running them, the territories the replica knows
    (each restricted to what the write names)."""

    operators: Container[str]
    programmes: Mapping[str, Sequence[str]]
    territories: Container[str] = ()


def operator_refusal(operator: str, *, admin: bool, token_operator: str | None) -> dict[str, Any] | None:
    """A token that is not admin acts only for its own operator (CONTRACT §3): the refusal, or None."""
    if admin or (token_operator is not None and operator == token_operator):
        return None
    return {"loc": ["operator"], "msg": f"This token may not act for operator '{operator}'", "status": FORBIDDEN}


def programme_refusal(operator: str, programme: str, *, admin: bool, known: Known) -> dict[str, Any] | None:
    """A token that is not admin writes only the grants of programmes its operator runs (CONTRACT §3):
    the refusal, or None (an unknown operator or programme is a problem of :func:`grant_problems`)."""
    runners = known.programmes.get(programme)
    if admin or runners is None or operator not in known.operators or operator in runners:
        return None
    return {"loc": ["programme"], "msg": f"Operator '{operator}' does not run programme '{programme}'", "status": FORBIDDEN}


def grant_problems(
    operator: str, body: GrantBody | None, *, admin: bool, token_operator: str | None, known: Known, today: date
) -> list[dict[str, Any]]:
    """Every rule a grant write must satisfy beyond its types, for a PUT and a batch row alike:
    ``[{loc, msg}]`` located in the grant (``operator``, ``programme``, ``beneficiary.siret``…), empty
    when it may be written (``body`` None: a batch row whose body could not be read, whose operator is
    still checked).

    A write the token may not make (another operator's grant, a programme its operator does not run)
    is that one problem, with ``status`` :data:`FORBIDDEN`: nothing else is said about the grant."""
    refusal = operator_refusal(operator, admin=admin, token_operator=token_operator)
    if refusal is None and body is not None:
        refusal = programme_refusal(operator, body.programme, admin=admin, known=known)
    if refusal is not None:
        return [refusal]
    problems: list[dict[str, Any]] = []
    registered = operator in known.operators
    if not registered:
        problems.append({"loc": ["operator"], "msg": f"unknown operator '{operator}'"})
    if body is None:
        return problems
    if body.beneficiary.siret is None and body.beneficiary.rna is None:
        problems.append({"loc": ["beneficiary", "siret"], "msg": "one of siret or rna is required"})
    if body.decision_date > today:
        problems.append({"loc": ["decision_date"], "msg": "may not be in the future"})
    if (
        body.jobs_forecast is not None
        and body.jobs_conditional is not None
        and body.jobs_conditional > body.jobs_forecast
    ):
        problems.append({"loc": ["jobs_conditional"], "msg": "may not exceed jobs_forecast"})
    runners = known.programmes.get(body.programme)
    if runners is None:
        problems.append({"loc": ["programme"], "msg": f"unknown programme '{body.programme}'"})
    elif registered and operator not in runners:  # an admin's write: the grant itself is invalid
        problems.append({"loc": ["programme"], "msg": f"is not run by operator '{operator}'"})
    if body.territory_id is not None and body.territory_id not in known.territories:
        problems.append({"loc": ["territory_id"], "msg": f"unknown territory '{body.territory_id}'"})
    return problems


def is_forbidden(problem: Mapping[str, Any]) -> bool:
    return problem.get("status") == FORBIDDEN


# --- writes ------------------------------------------------------------------------------------

#: what every new grant starts from: version 1, nothing paid; :func:`_new_grant` sets every other field
_NEW_GRANT_FIELDS: dict[str, Any] = {**dict.fromkeys(Grant.model_fields), "version": 1, "disbursed_eur": ZERO}
_GRANT_FIELD_NAMES = frozenset(Grant.model_fields)
_set = object.__setattr__


def _new_grant(values: dict[str, Any]) -> Grant:
    """A grant of these field values (every field, already valid), as ``model_construct`` or a
    ``model_copy`` of a complete grant makes it — its fields set, no extra, no private attributes —
    without going through each field's aliases or copying a prototype (a third of a batch row's
    decision)."""
    grant = Grant.__new__(Grant)
    _set(grant, "__dict__", values)
    _set(grant, "__pydantic_extra__", None)
    _set(grant, "__pydantic_fields_set__", set(_GRANT_FIELD_NAMES))
    _set(grant, "__pydantic_private__", None)
    return grant


def _fields(body: GrantBody) -> dict[str, Any]:
    """The field values of ``body`` (its ``__dict__``: ``dict(body)`` first looks the missing ``keys`` up
    through pydantic's ``__getattr__``, which costs more than the whole copy)."""
    return vars(body)


def body_of(grant: Grant) -> GrantBody:
    return GrantBody.model_validate(grant.model_dump(include=set(GrantBody.model_fields)))


def committed_of(grant: Grant) -> Decimal:
    """The committed amount the ledger must show for ``grant``."""
    return grant.amount_eur if grant.status == "committed" else grant.disbursed_eur


def investment_of(grant: Grant) -> Decimal:
    return (grant.investment_eur or ZERO) if grant.status == "committed" else ZERO


def decide_write(current: Grant | None, body: GrantBody, *, at: datetime, operator: str, operator_ref: str) -> Decision:
    """Create, amend, cancel or re-activate a grant at instant ``at``; an unchanged body changes nothing.
    A rule it breaks raises :class:`DomainError` (409: the grant's state refuses it)."""
    if current is None:
        grant = _new_grant(
            {
                **_NEW_GRANT_FIELDS,
                **_fields(body),
                "id": grant_id(operator, operator_ref),
                "operator": operator,
                "operator_ref": operator_ref,
                "updated_at": at,
                "disbursements": [],
            }
        )
        inv = body.investment_eur or ZERO
        commitment = EntryPlan("commitment", body.amount_eur, inv)
        if body.status == "cancelled":
            return Decision("cancelled", grant, entries=(commitment, EntryPlan("cancellation", -body.amount_eur, -inv)))
        return Decision("committed", grant, entries=(commitment,))

    if body_of(current) == body:
        return Decision(None, current)
    if current.status == "cancelled" and body.status == "cancelled":
        raise DomainError(409, ["status"], "the grant is cancelled: re-activate it (status committed) to change it")
    if body.status == "committed" and body.amount_eur < current.disbursed_eur:
        raise DomainError(
            409, ["amount_eur"], f"may not be less than what was already disbursed ({current.disbursed_eur:.2f})"
        )
    grant = current.model_copy(update={**_fields(body), "version": current.version + 1, "updated_at": at})
    before_amount, before_inv = committed_of(current), investment_of(current)
    after_amount, after_inv = committed_of(grant), investment_of(grant)
    if body.status == "cancelled":
        return Decision("cancelled", grant, entries=(EntryPlan("cancellation", after_amount - before_amount, after_inv - before_inv),))
    if (after_amount, after_inv) != (before_amount, before_inv):
        return Decision("amended", grant, entries=(EntryPlan("amendment", after_amount - before_amount, after_inv - before_inv),))
    return Decision("amended", grant)


def decide_disbursement(current: Grant, request: Disbursement, *, today: date, at: datetime) -> Decision:
    """Pay part of a grant at instant ``at``; the same ``ref`` with the same content again changes
    nothing. A rule it breaks raises :class:`DomainError` (409 state, 422 content)."""
    for paid in current.disbursements:
        if paid.ref == request.ref:
            if paid.amount_eur == request.amount_eur and paid.paid_on == request.paid_on:
                return Decision(None, current)
            raise DomainError(409, ["ref"], f"disbursement '{request.ref}' was already recorded with other values")
    if current.status != "committed":
        raise DomainError(409, ["status"], "the grant is cancelled: nothing more can be disbursed")
    if request.paid_on > today:
        raise DomainError(422, ["paid_on"], "may not be in the future")
    remaining = current.amount_eur - current.disbursed_eur
    if request.amount_eur > remaining:
        raise DomainError(
            422,
            ["amount_eur"],
            f"exceeds what remains to be paid on the grant ({remaining:.2f} of {current.amount_eur:.2f})",
        )
    paid = Disbursement(ref=request.ref, amount_eur=request.amount_eur, paid_on=request.paid_on)
    grant = current.model_copy(
        update={
            "disbursed_eur": current.disbursed_eur + request.amount_eur,
            "disbursements": [*current.disbursements, paid],
            "version": current.version + 1,
            "updated_at": at,
        }
    )
    entry = EntryPlan("disbursement", request.amount_eur, ZERO, request.ref, request.paid_on)
    return Decision("disbursed", grant, entries=(entry,))


@dataclass(frozen=True)
class LedgerTotals:
    committed_eur: Decimal
    disbursed_eur: Decimal
    investment_eur: Decimal


NO_TOTALS = LedgerTotals(ZERO, ZERO, ZERO)


def running_totals(entries: Iterable[EntryPlan]) -> Iterator[LedgerTotals]:
    """The ledger's totals after each of ``entries``, in order."""
    committed = disbursed = investment = ZERO
    for e in entries:
        if e.kind == "disbursement":
            disbursed += e.amount_delta_eur
        else:
            committed += e.amount_delta_eur
            investment += e.investment_delta_eur
        yield LedgerTotals(committed, disbursed, investment)


def ledger_totals(entries: Iterable[EntryPlan]) -> LedgerTotals:
    """The ledger's totals after all of ``entries``."""
    last = deque(running_totals(entries), maxlen=1)
    return last[0] if last else NO_TOTALS


def ledger_problems(grant: Grant, entries: Iterable[EntryPlan]) -> list[str]:
    """Why ``grant`` and its ledger disagree (empty when the ledger balances)."""
    totals = ledger_totals(entries)
    problems = []
    if totals.committed_eur != committed_of(grant):
        problems.append(f"committed {totals.committed_eur} != expected {committed_of(grant)}")
    if totals.investment_eur != investment_of(grant):
        problems.append(f"investment {totals.investment_eur} != expected {investment_of(grant)}")
    if totals.disbursed_eur != grant.disbursed_eur:
        problems.append(f"disbursed {totals.disbursed_eur} != grant's {grant.disbursed_eur}")
    if sum((d.amount_eur for d in grant.disbursements), ZERO) != grant.disbursed_eur:
        problems.append("the disbursements do not add up to disbursed_eur")
    if totals.disbursed_eur > totals.committed_eur:
        problems.append(f"disbursed {totals.disbursed_eur} exceeds committed {totals.committed_eur}")
    return problems
