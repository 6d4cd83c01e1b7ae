from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from funding_ledger.domain import (
    DomainError,
    EntryPlan,
    cross_field_errors,
    ledger_problems,
    ledger_totals,
    plan_disbursement,
    plan_grant_write,
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
    w = plan_grant_write(None, b or body(), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert w.grant is not None
    return w.grant, list(w.entries)


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


def test_unchanged_body_is_no_write():
    g, _ = create()
    w = plan_grant_write(g, body(amount_eur="1000"), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert w.grant is None and w.change is None and w.outcome == "unchanged"


def test_amendment_records_signed_deltas():
    g, entries = create()
    w = plan_grant_write(
        g, body(amount_eur="750.50", investment_eur=None), operator="ADEME", operator_ref="FV-1", now=NOW
    )
    assert w.change == "amended" and w.grant is not None and w.grant.version == 2
    assert w.entries == [EntryPlan("amendment", Decimal("-249.50"), Decimal("-4000.00"))]
    assert ledger_problems(w.grant, [*entries, *w.entries]) == []


def test_non_money_change_is_an_amendment_without_entry():
    g, _ = create()
    w = plan_grant_write(g, body(object="Autre objet"), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert w.change == "amended" and w.entries == []


def test_amount_below_disbursed_is_a_conflict():
    g, _ = create()
    paid = plan_disbursement(g, Disbursement(ref="DP-1", amount_eur="600", paid_on="2024-09-01"), today=TODAY, now=NOW)
    assert paid.grant is not None
    with pytest.raises(DomainError) as err:
        plan_grant_write(paid.grant, body(amount_eur="500"), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert err.value.status == 409 and err.value.loc == ["amount_eur"]


def test_cancellation_releases_the_remaining_commitment_and_reactivation_restores_it():
    g, entries = create()
    paid = plan_disbursement(g, Disbursement(ref="DP-1", amount_eur="300", paid_on="2024-09-01"), today=TODAY, now=NOW)
    assert paid.grant is not None
    entries += paid.entries
    cancel = plan_grant_write(paid.grant, body(status="cancelled"), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert cancel.change == "cancelled" and cancel.grant is not None
    assert cancel.entries[0].amount_delta_eur == Decimal("-700.00")
    entries += cancel.entries
    assert ledger_totals(entries).committed_eur == Decimal("300.00")
    assert ledger_problems(cancel.grant, entries) == []
    with pytest.raises(DomainError) as err:
        plan_grant_write(
            cancel.grant, body(status="cancelled", object="x"), operator="ADEME", operator_ref="FV-1", now=NOW
        )
    assert err.value.status == 409
    again = plan_grant_write(cancel.grant, body(), operator="ADEME", operator_ref="FV-1", now=NOW)
    assert again.change == "amended" and again.grant is not None and again.grant.status == "committed"
    entries += again.entries
    assert ledger_totals(entries).committed_eur == Decimal("1000.00")
    assert ledger_problems(again.grant, entries) == []


def test_disbursement_rules():
    g, _ = create()
    d = Disbursement(ref="DP-1", amount_eur="400", paid_on="2024-09-01")
    first = plan_disbursement(g, d, today=TODAY, now=NOW)
    assert first.grant is not None and first.grant.disbursed_eur == Decimal("400.00") and first.change == "disbursed"
    assert plan_disbursement(first.grant, d, today=TODAY, now=NOW).grant is None
    with pytest.raises(DomainError) as other:
        plan_disbursement(
            first.grant, Disbursement(ref="DP-1", amount_eur="401", paid_on="2024-09-01"), today=TODAY, now=NOW
        )
    assert other.value.status == 409
    with pytest.raises(DomainError) as over:
        plan_disbursement(
            first.grant, Disbursement(ref="DP-2", amount_eur="600.01", paid_on="2024-09-01"), today=TODAY, now=NOW
        )
    assert over.value.status == 422 and over.value.loc == ["amount_eur"]
    with pytest.raises(DomainError) as future:
        plan_disbursement(
            first.grant, Disbursement(ref="DP-2", amount_eur="1", paid_on="2024-10-02"), today=TODAY, now=NOW
        )
    assert future.value.loc == ["paid_on"]
    cancelled = plan_grant_write(
        first.grant, body(status="cancelled"), operator="ADEME", operator_ref="FV-1", now=NOW
    ).grant
    assert cancelled is not None
    with pytest.raises(DomainError) as on_cancelled:
        plan_disbursement(
            cancelled, Disbursement(ref="DP-2", amount_eur="1", paid_on="2024-09-01"), today=TODAY, now=NOW
        )
    assert on_cancelled.value.status == 409


def test_cross_field_rules_name_their_field():
    b = body(
        beneficiary={"name": "X", "kind": "association"},
        decision_date="2024-10-02",
        jobs_forecast=1,
        jobs_conditional=2,
    )
    locs = [e["loc"] for e in cross_field_errors(b, TODAY)]
    assert locs == [["beneficiary", "siret"], ["decision_date"], ["jobs_conditional"]]
    assert cross_field_errors(body(), TODAY) == []


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
                w = plan_grant_write(
                    g,
                    body(amount_eur=str(amount), investment_eur=investment and str(investment), status=g.status),
                    operator="ADEME",
                    operator_ref="FV-1",
                    now=NOW,
                )
            elif kind == "cancel":
                w = plan_grant_write(
                    g,
                    body(
                        amount_eur=str(g.amount_eur),
                        investment_eur=g.investment_eur and str(g.investment_eur),
                        status="cancelled",
                    ),
                    operator="ADEME",
                    operator_ref="FV-1",
                    now=NOW,
                )
            elif kind == "reactivate":
                w = plan_grant_write(
                    g, body(amount_eur=str(amount), status="committed"), operator="ADEME", operator_ref="FV-1", now=NOW
                )
            elif kind == "pay":
                payments += 1
                w = plan_disbursement(
                    g,
                    Disbursement(ref=f"DP-{payments}", amount_eur=str(amount), paid_on="2024-09-01"),
                    today=TODAY,
                    now=NOW,
                )
            else:
                if not g.disbursements:
                    continue
                last = g.disbursements[-1]
                w = plan_disbursement(g, last, today=TODAY, now=NOW)
                assert w.grant is None
        except DomainError as exc:
            assert exc.status in (409, 422)
            continue
        if w.grant is not None:
            assert w.grant.version == g.version + 1
            g = w.grant
            entries += w.entries
        assert ledger_problems(g, entries) == []
        totals = ledger_totals(entries)
        assert totals.disbursed_eur <= totals.committed_eur
        assert g.disbursed_eur <= g.amount_eur
