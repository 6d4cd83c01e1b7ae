from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from funding_ledger.domain import (
    FORBIDDEN,
    ZERO,
    DomainError,
    EntryPlan,
    Known,
    LedgerTotals,
    decide_disbursement,
    decide_write,
    grant_problems,
    is_forbidden,
    ledger_problems,
    ledger_totals,
    operator_refusal,
    programme_refusal,
    running_totals,
)
from funding_ledger.schemas import Disbursement, Grant, GrantBody
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)
TODAY = date(2024, 10, 1)


def body(**changes) -> GrantBody:
    doc = {
        "programme": "fonds_vert_ti_te",
        "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
        "commune_insee": "71076",
        "object": "Recyclage de métaux stratégiques",
        "amount_eur": "1000.00",
        "investment_eur": "4000.00",
        "decision_date": "2024-06-12",
        "jobs_forecast": 12,
        "jobs_conditional": 6,
        "contributions": ["circular_economy"],
        "status": "committed",
    }
    doc.update(changes)
    return GrantBody.model_validate(doc)


def create(b: GrantBody | None = None) -> tuple[Grant, list[EntryPlan]]:
    w = decide_write(None, b or body(), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert w.change in ("committed", "cancelled") and w.outcome == "created"
    return w.entity, list(w.entries)


def test_creation_commits_the_amount_and_investment():
    g, entries = create()
    assert (g.version, g.id, g.disbursed_eur) == (1, "ADEME/FV-1", Decimal("0"))
    assert [e.kind for e in entries] == ["commitment"]
    assert ledger_totals(entries).committed_eur == Decimal("1000.00")
    assert ledger_problems(g, entries) == []


def test_a_new_grant_is_a_whole_valid_grant_of_its_own():
    b = body(contributions=["water", "climate_mitigation"], investment_eur=None)
    g, _ = create(b)
    other, _ = create(b)
    assert g.model_fields_set == set(Grant.model_fields)
    assert Grant.model_validate(g.model_dump(mode="json")) == g
    own = {"id", "operator", "operator_ref", "version", "updated_at", "disbursed_eur", "disbursements"}
    assert g.model_dump(exclude=own) == b.model_dump()
    assert (g.operator, g.operator_ref, g.updated_at, g.disbursements) == ("ADEME", "FV-1", NOW, [])
    assert g.disbursements is not other.disbursements
    assert g.model_fields_set is not other.model_fields_set
    assert (g.__pydantic_extra__, g.__pydantic_private__) == (None, None)
    assert g.model_dump_json() == Grant.model_validate(g.model_dump()).model_dump_json()


def test_unchanged_body_is_no_write():
    g, _ = create()
    w = decide_write(g, body(amount_eur="1000"), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert w.entity is g and w.change is None and not w.changed and w.outcome == "unchanged"


def test_amendment_records_signed_deltas():
    g, entries = create()
    w = decide_write(
        g, body(amount_eur="750.50", investment_eur=None), operator="ADEME", operator_ref="FV-1", at=NOW
    )
    assert w.change == "amended" and w.entity.version == 2 and w.outcome == "updated"
    assert w.entries == (EntryPlan("amendment", Decimal("-249.50"), Decimal("-4000.00")),)
    assert ledger_problems(w.entity, [*entries, *w.entries]) == []


def test_non_money_change_is_an_amendment_without_entry():
    g, _ = create()
    w = decide_write(g, body(object="Autre objet"), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert w.change == "amended" and w.entries == ()


def test_amount_below_disbursed_is_a_conflict():
    g, _ = create()
    paid = decide_disbursement(g, Disbursement(ref="DP-1", amount_eur="600", paid_on="2024-09-01"), today=TODAY, at=NOW)
    with pytest.raises(DomainError) as err:
        decide_write(paid.entity, body(amount_eur="500"), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert err.value.status == 409 and err.value.loc == ["amount_eur"]


def test_cancellation_releases_the_remaining_commitment_and_reactivation_restores_it():
    g, entries = create()
    paid = decide_disbursement(g, Disbursement(ref="DP-1", amount_eur="300", paid_on="2024-09-01"), today=TODAY, at=NOW)
    entries += paid.entries
    cancel = decide_write(paid.entity, body(status="cancelled"), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert cancel.change == "cancelled"
    assert cancel.entries[0].amount_delta_eur == Decimal("-700.00")
    entries += cancel.entries
    assert ledger_totals(entries).committed_eur == Decimal("300.00")
    assert ledger_problems(cancel.entity, entries) == []
    with pytest.raises(DomainError) as err:
        decide_write(
            cancel.entity, body(status="cancelled", object="x"), operator="ADEME", operator_ref="FV-1", at=NOW
        )
    assert err.value.status == 409
    again = decide_write(cancel.entity, body(), operator="ADEME", operator_ref="FV-1", at=NOW)
    assert again.change == "amended" and again.entity.status == "committed"
    entries += again.entries
    assert ledger_totals(entries).committed_eur == Decimal("1000.00")
    assert ledger_problems(again.entity, entries) == []


def test_disbursement_rules():
    g, _ = create()
    d = Disbursement(ref="DP-1", amount_eur="400", paid_on="2024-09-01")
    first = decide_disbursement(g, d, today=TODAY, at=NOW)
    assert first.entity.disbursed_eur == Decimal("400.00") and first.change == "disbursed"
    assert not decide_disbursement(first.entity, d, today=TODAY, at=NOW).changed
    with pytest.raises(DomainError) as other:
        decide_disbursement(
            first.entity, Disbursement(ref="DP-1", amount_eur="401", paid_on="2024-09-01"), today=TODAY, at=NOW
        )
    assert other.value.status == 409
    with pytest.raises(DomainError) as over:
        decide_disbursement(
            first.entity, Disbursement(ref="DP-2", amount_eur="600.01", paid_on="2024-09-01"), today=TODAY, at=NOW
        )
    assert over.value.status == 422 and over.value.loc == ["amount_eur"]
    with pytest.raises(DomainError) as future:
        decide_disbursement(
            first.entity, Disbursement(ref="DP-2", amount_eur="1", paid_on="2024-10-02"), today=TODAY, at=NOW
        )
    assert future.value.loc == ["paid_on"]
    cancelled = decide_write(
        first.entity, body(status="cancelled"), operator="ADEME", operator_ref="FV-1", at=NOW
    ).entity
    with pytest.raises(DomainError) as on_cancelled:
        decide_disbursement(
            cancelled, Disbursement(ref="DP-2", amount_eur="1", paid_on="2024-09-01"), today=TODAY, at=NOW
        )
    assert on_cancelled.value.status == 409


KNOWN = Known(
    operators={"ADEME", "BPI"},
    programmes={"fonds_vert_ti_te": ["ADEME"], "rebond_industriel": ["BPI"]},
    territories={"ti-2705"},
)


def problems(
    b: GrantBody | None = None, operator: str = "ADEME", *, admin: bool = False, acting_for: str | None = "ADEME"
) -> list[dict]:
    """The grant rules' problems for a token acting for ``acting_for`` (admin: any operator)."""
    return grant_problems(operator, b, admin=admin, token_operator=acting_for, known=KNOWN, today=TODAY)


def test_cross_field_rules_name_their_field():
    b = body(
        beneficiary={"name": "X", "kind": "association"},
        decision_date="2024-10-02",
        jobs_forecast=1,
        jobs_conditional=2,
    )
    assert [e["loc"] for e in problems(b)] == [["beneficiary", "siret"], ["decision_date"], ["jobs_conditional"]]
    assert problems(body()) == [] and problems(body(territory_id="ti-2705")) == []


def test_the_operator_programme_and_territory_a_grant_names_must_exist():
    b = body(programme="inconnu", territory_id="ti-9999", decision_date="2024-10-02")
    assert problems(b, "ZZZ", admin=True) == [
        {"loc": ["operator"], "msg": "unknown operator 'ZZZ'"},
        {"loc": ["decision_date"], "msg": "may not be in the future"},
        {"loc": ["programme"], "msg": "unknown programme 'inconnu'"},
        {"loc": ["territory_id"], "msg": "unknown territory 'ti-9999'"},
    ]
    # an unknown operator runs nothing: its programme is not said to be run by another
    assert problems(body(), "ZZZ", admin=True) == [{"loc": ["operator"], "msg": "unknown operator 'ZZZ'"}]
    assert problems(body(), "ZZZ", acting_for="ZZZ") == [{"loc": ["operator"], "msg": "unknown operator 'ZZZ'"}]


def test_a_token_writes_only_its_operators_grants_of_the_programmes_it_runs():
    other = problems(body(decision_date="2099-01-01"), "BPI")
    assert other == [{"loc": ["operator"], "msg": "This token may not act for operator 'BPI'", "status": FORBIDDEN}]
    assert problems(body(), "ADEME", acting_for=None)[0]["status"] == FORBIDDEN
    not_run = problems(body(programme="rebond_industriel", decision_date="2099-01-01"))
    assert not_run == [
        {"loc": ["programme"], "msg": "Operator 'ADEME' does not run programme 'rebond_industriel'", "status": FORBIDDEN}
    ]
    assert all(is_forbidden(p) for p in other + not_run)
    # an admin may write any operator's grant: a programme the operator does not run makes it invalid
    assert problems(body(programme="rebond_industriel"), admin=True, acting_for=None) == [
        {"loc": ["programme"], "msg": "is not run by operator 'ADEME'"}
    ]
    assert problems(body(), "BPI", admin=True) == [{"loc": ["programme"], "msg": "is not run by operator 'BPI'"}]


def test_without_a_body_only_the_operator_is_checked():
    assert problems(None) == []
    assert problems(None, "BPI")[0]["status"] == FORBIDDEN
    assert problems(None, "ZZZ", admin=True) == [{"loc": ["operator"], "msg": "unknown operator 'ZZZ'"}]


def test_refusals_of_operator_and_programme_alone():
    assert operator_refusal("ADEME", admin=False, token_operator="ADEME") is None
    assert operator_refusal("BPI", admin=True, token_operator=None) is None
    assert operator_refusal("BPI", admin=False, token_operator="ADEME") is not None
    assert programme_refusal("ADEME", "fonds_vert_ti_te", admin=False, known=KNOWN) is None
    assert programme_refusal("ADEME", "rebond_industriel", admin=True, known=KNOWN) is None
    refusal = programme_refusal("ADEME", "rebond_industriel", admin=False, known=KNOWN)
    assert refusal is not None and refusal["loc"] == ["programme"] and is_forbidden(refusal)


def test_running_totals_end_at_the_ledger_totals():
    g, entries = create()
    paid = decide_disbursement(g, Disbursement(ref="DP-1", amount_eur="300", paid_on="2024-09-01"), today=TODAY, at=NOW)
    cancel = decide_write(paid.entity, body(status="cancelled"), operator="ADEME", operator_ref="FV-1", at=NOW)
    entries = [*entries, *paid.entries, *cancel.entries]
    running = list(running_totals(entries))
    assert [(t.committed_eur, t.disbursed_eur) for t in running] == [
        (Decimal("1000.00"), Decimal("0")),
        (Decimal("1000.00"), Decimal("300")),
        (Decimal("300.00"), Decimal("300")),
    ]
    assert ledger_totals(entries) == running[-1] and ledger_totals([]) == LedgerTotals(ZERO, ZERO, ZERO)


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("amend"), amounts, st.one_of(st.none(), amounts)),
        st.tuples(st.just("cancel"), st.none(), st.none()),
        st.tuples(st.just("reactivate"), amounts, st.none()),
        st.tuples(st.just("pay"), amounts, st.none()),
        st.tuples(st.just("repay_same_ref"), st.none(), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(amounts, operations)
def test_any_sequence_keeps_the_ledger_balanced(initial, ops):
    g, entries = create(body(amount_eur=str(initial)))
    payments = 0
    for kind, amount, investment in ops:
        try:
            if kind == "amend":
                w = decide_write(
                    g,
                    body(amount_eur=str(amount), investment_eur=investment and str(investment), status=g.status),
                    operator="ADEME",
                    operator_ref="FV-1",
                    at=NOW,
                )
            elif kind == "cancel":
                w = decide_write(
                    g,
                    body(
                        amount_eur=str(g.amount_eur),
                        investment_eur=g.investment_eur and str(g.investment_eur),
                        status="cancelled",
                    ),
                    operator="ADEME",
                    operator_ref="FV-1",
                    at=NOW,
                )
            elif kind == "reactivate":
                w = decide_write(
                    g, body(amount_eur=str(amount), status="committed"), operator="ADEME", operator_ref="FV-1", at=NOW
                )
            elif kind == "pay":
                payments += 1
                w = decide_disbursement(
                    g,
                    Disbursement(ref=f"DP-{payments}", amount_eur=str(amount), paid_on="2024-09-01"),
                    today=TODAY,
                    at=NOW,
                )
            else:
                if not g.disbursements:
                    continue
                last = g.disbursements[-1]
                w = decide_disbursement(g, last, today=TODAY, at=NOW)
                assert not w.changed
        except DomainError as exc:
            assert exc.status in (409, 422)
            continue
        if w.changed:
            assert w.entity.version == g.version + 1
            g = w.entity
            entries += w.entries
        assert ledger_problems(g, entries) == []
        totals = ledger_totals(entries)
        assert totals.disbursed_eur <= totals.committed_eur
        assert g.disbursed_eur <= g.amount_eur
