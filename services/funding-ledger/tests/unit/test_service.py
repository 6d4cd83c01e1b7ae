"""The service functions on the fake unit of work (no database, no bus)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from funding_ledger import service
from funding_ledger.batches import collector_paused, parse_control_query, parse_csv_batch, parse_json_batch
from funding_ledger.domain import ledger_problems
from funding_ledger.events import EVENT_OF_CHANGE
from funding_ledger.repository import GrantFilter
from funding_ledger.schemas import ControlTotal, DisbursementBody, GrantBatch, GrantBody, OperatorBody, ProgrammeBody
from ti_shared.auth import Principal
from ti_shared.events import TOPIC_GRANTS
from ti_shared.fakes import FakeUnitOfWork
from ti_shared.problems import Problem

from .fakes import FakeRepository

NOW = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)
ADEME = Principal(sub="ademe-push", scopes=frozenset({"grants:write"}), operator="ADEME")
BPI = Principal(sub="bpi-push", scopes=frozenset({"grants:write"}), operator="BPI")
ADMIN = Principal(sub="anct-admin", scopes=frozenset({"admin"}))

FIELDS: dict[str, Any] = {
    "programme": "fonds_vert_ti_te",
    "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
    "territory_id": "ti-2705",
    "commune_insee": "71076",
    "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1000.00",
    "investment_eur": "4000.00",
    "decision_date": "2024-06-12",
    "contributions": ["circular_economy"],
    "status": "committed",
}


def body(**changes: Any) -> GrantBody:
    return GrantBody.model_validate({**FIELDS, **changes})


def uow(repo: FakeRepository | None = None) -> FakeUnitOfWork[FakeRepository]:
    return FakeUnitOfWork(repo or FakeRepository(), now=NOW, source="/services/funding-ledger")


async def put(u: FakeUnitOfWork[FakeRepository], ref: str = "FV-1", principal: Principal = ADEME, operator: str = "ADEME", **changes: Any) -> Any:
    return await service.put_grant(u, principal, operator, ref, body(**changes), effective_at=None, if_match=None)


async def refused(coro: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        await coro
    return caught.value


def pay(ref: str = "DP-1", amount: str = "400", paid_on: str = "2024-09-01") -> DisbursementBody:
    return DisbursementBody.model_validate({"ref": ref, "amount_eur": amount, "paid_on": paid_on})


# --- one grant -----------------------------------------------------------------------------------


async def test_a_new_grant_is_committed_with_its_event_and_ledger() -> None:
    u = uow()
    result = await put(u)
    assert (result.status, result.created, result.version) == (201, True, 1)
    stored = u.repo.grants[("ADEME", "FV-1")]
    assert stored == result.entity and stored.id == "ADEME/FV-1" and stored.updated_at == NOW
    [event] = u.events
    assert (event.type, event.subject, event.entityversion, event.tiactor) == (
        EVENT_OF_CHANGE["committed"].type,
        "ADEME/FV-1",
        1,
        "ademe-push",
    )
    assert u.topic_of[event.id] == TOPIC_GRANTS and event.data == stored.model_dump(mode="json")
    assert result.event_ids == (event.id,)
    assert [e.kind for e in u.repo.entries("ADEME", "FV-1")] == ["commitment"]
    assert ledger_problems(stored, u.repo.entries("ADEME", "FV-1")) == []


async def test_the_same_body_changes_nothing_and_if_match_is_checked() -> None:
    u = uow()
    await put(u)
    same = await put(u, amount_eur="1000")
    assert (same.status, same.changed, same.version) == (200, False, 1) and len(u.events) == 1
    stale = await refused(service.put_grant(u, ADEME, "ADEME", "FV-1", body(amount_eur="900"), effective_at=None, if_match='W/"7"'))
    absent = await refused(service.put_grant(u, ADEME, "ADEME", "FV-2", body(), effective_at=None, if_match='W/"1"'))
    assert stale.status == absent.status == 412 and len(u.events) == 1
    amended = await service.put_grant(u, ADEME, "ADEME", "FV-1", body(amount_eur="900"), effective_at=None, if_match='W/"1"')
    assert (amended.status, amended.version, amended.entity.amount_eur) == (200, 2, Decimal("900.00"))
    assert [e.type for e in u.events] == [EVENT_OF_CHANGE["committed"].type, EVENT_OF_CHANGE["amended"].type]
    assert [e.kind for e in u.repo.entries("ADEME", "FV-1")] == ["commitment", "amendment"]


async def test_the_grant_rules_refuse_a_put_and_nothing_is_written() -> None:
    u = uow()
    other = await refused(put(u, operator="BPI", programme="rebond_industriel"))
    assert (other.status, other.detail) == (403, "This token may not act for operator 'BPI'")
    not_run = await refused(put(u, programme="rebond_industriel"))
    assert (not_run.status, not_run.detail) == (403, "Operator 'ADEME' does not run programme 'rebond_industriel'")
    by_admin = await refused(put(u, principal=ADMIN, programme="rebond_industriel"))
    assert by_admin.status == 422 and by_admin.errors == [{"loc": ["body", "programme"], "msg": "is not run by operator 'ADEME'"}]
    unknown = await refused(put(u, principal=ADMIN, operator="ZZZ", territory_id="ti-9999"))
    assert unknown.errors == [
        {"loc": ["path", "operator"], "msg": "unknown operator 'ZZZ'"},
        {"loc": ["body", "territory_id"], "msg": "unknown territory 'ti-9999'"},
    ]
    future = await refused(put(u, decision_date="2024-10-02"))
    assert future.detail == "body.decision_date: may not be in the future"
    assert u.events == [] and u.repo.grants == {} and u.repo.ledger == {}


async def test_a_state_conflict_and_a_back_dated_write_are_409() -> None:
    u = uow()
    await put(u)
    await service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(amount="600"), effective_at=None)
    below = await refused(put(u, amount_eur="500"))
    assert below.status == 409 and below.errors is not None and below.errors[0]["loc"] == ["body", "amount_eur"]
    early = datetime(2024, 1, 1, tzinfo=UTC)
    back = await refused(service.put_grant(u, ADMIN, "ADEME", "FV-1", body(object="x"), effective_at=early, if_match=None))
    assert back.status == 409 and len(u.events) == 2


async def test_effective_at_dates_the_grant_and_its_event() -> None:
    u = uow()
    at = datetime(2024, 6, 12, 9, 30, tzinfo=UTC)
    result = await service.put_grant(u, ADMIN, "ADEME", "FV-1", body(), effective_at=at, if_match=None)
    assert result.entity.updated_at == at and u.events[0].time == at and u.events[0].tiactor == "anct-admin"


# --- disbursements -------------------------------------------------------------------------------


async def test_a_disbursement_is_recorded_once_per_ref() -> None:
    u = uow()
    await put(u)
    paid = await service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(), effective_at=None)
    assert (paid.status, paid.version, paid.entity.disbursed_eur) == (201, 2, Decimal("400.00"))
    again = await service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(amount="400.00"), effective_at=None)
    assert (again.status, again.changed, again.version) == (200, False, 2)
    other = await refused(service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(amount="401"), effective_at=None))
    over = await refused(service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay("DP-2", "600.01"), effective_at=None))
    assert (other.status, over.status) == (409, 422) and over.errors is not None and over.errors[0]["loc"] == ["body", "amount_eur"]
    assert [e.type for e in u.events] == [EVENT_OF_CHANGE["committed"].type, EVENT_OF_CHANGE["disbursed"].type]
    assert [e.kind for e in u.repo.entries("ADEME", "FV-1")] == ["commitment", "disbursement"]


async def test_a_disbursement_is_refused_to_whom_a_put_of_the_grant_is() -> None:
    u = uow()
    await put(u)
    missing = await refused(service.record_disbursement(u, ADEME, "ADEME", "NOPE", pay(), effective_at=None))
    assert missing.status == 404
    # another operator's token learns nothing, not even whether the grant exists
    for ref in ("FV-1", "NOPE"):
        other = await refused(service.record_disbursement(u, BPI, "ADEME", ref, pay(), effective_at=None))
        assert (other.status, other.detail) == (403, "This token may not act for operator 'ADEME'")
    # the operator no longer runs the grant's programme: its PUT and its disbursement are refused alike
    u.repo.programmes["fonds_vert_ti_te"] = u.repo.programmes["fonds_vert_ti_te"].model_copy(update={"operators": ["BDT"]})
    put_refused = await refused(put(u, amount_eur="900"))
    paid_refused = await refused(service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(), effective_at=None))
    assert put_refused.status == paid_refused.status == 403 and paid_refused.detail == put_refused.detail
    assert paid_refused.detail == "Operator 'ADEME' does not run programme 'fonds_vert_ti_te'"
    assert len(u.events) == 1
    by_admin = await service.record_disbursement(u, ADMIN, "ADEME", "FV-1", pay(), effective_at=None)
    assert by_admin.status == 201


# --- reads ---------------------------------------------------------------------------------------


async def test_reads_follow_the_operator() -> None:
    u = uow()
    for n in range(3):
        await put(u, f"A-{n}")
    await put(u, "B-1", principal=BPI, operator="BPI", programme="rebond_industriel")
    repo = u.repo
    assert (await service.get_grant(repo, ADEME, "ADEME", "A-0")).id == "ADEME/A-0"
    assert (await refused(service.get_grant(repo, BPI, "ADEME", "A-0"))).status == 403
    assert (await refused(service.get_grant(repo, ADMIN, "ADEME", "A-9"))).status == 404
    nobody = Principal(sub="x", scopes=frozenset({"grants:write"}))
    assert (await refused(service.get_grant(repo, nobody, "ADEME", "A-0"))).status == 403
    own = await service.list_grants(repo, BPI, GrantFilter(), limit=10, cursor=None)
    assert [g.id for g in own.items] == ["BPI/B-1"] and own.next_cursor is None
    assert (await refused(service.list_grants(repo, BPI, GrantFilter("ADEME"), limit=10, cursor=None))).status == 403
    first = await service.list_grants(repo, ADMIN, GrantFilter(), limit=2, cursor=None)
    rest = await service.list_grants(repo, ADMIN, GrantFilter(), limit=2, cursor=first.next_cursor)
    assert [g.id for g in first.items + rest.items] == ["ADEME/A-0", "ADEME/A-1", "ADEME/A-2", "BPI/B-1"] and rest.next_cursor is None
    bad = await refused(service.list_grants(repo, ADMIN, GrantFilter(), limit=2, cursor="!!"))
    assert bad.status == 422
    with pytest.raises(Problem):
        service.export_grants(repo, BPI, GrantFilter("ADEME"))
    lines = [line async for line in service.export_grants(repo, BPI, GrantFilter())]
    text = b"".join(lines).decode().splitlines()
    assert len(text) == 2 and text[0].startswith("nomAttribuant;") and ";BPI;B-1;rebond_industriel;" in text[1]


async def test_the_ledger_shows_running_totals_and_the_totals() -> None:
    u = uow()
    await put(u)
    await service.record_disbursement(u, ADEME, "ADEME", "FV-1", pay(amount="300"), effective_at=None)
    await put(u, status="cancelled")
    ledger = await service.get_grant_ledger(u.repo, ADEME, "ADEME", "FV-1")
    assert [(e.seq, e.kind, e.committed_eur, e.disbursed_eur, e.grant_version) for e in ledger.entries] == [
        (1, "commitment", Decimal("1000.00"), Decimal("0"), 1),
        (2, "disbursement", Decimal("1000.00"), Decimal("300.00"), 2),
        (3, "cancellation", Decimal("300.00"), Decimal("300.00"), 3),
    ]
    assert (ledger.committed_eur, ledger.disbursed_eur, ledger.investment_eur) == (Decimal("300.00"), Decimal("300.00"), Decimal("0"))
    assert all(e.actor == "ademe-push" and e.recorded_at == NOW for e in ledger.entries)
    assert (await refused(service.get_grant_ledger(u.repo, ADEME, "ADEME", "NOPE"))).status == 404


# --- operators and programmes --------------------------------------------------------------------


async def test_operators_and_programmes_are_registered_by_admin() -> None:
    u = uow()
    created = await service.put_operator(u, ADMIN, "CEREMA", OperatorBody(label="Cerema"))
    same = await service.put_operator(u, ADMIN, "CEREMA", OperatorBody(label="Cerema"))
    assert (created.status, same.status, same.changed) == (201, 200, False) and created.version is None
    assert (await refused(service.put_operator(u, ADEME, "CEREMA", OperatorBody(label="x")))).status == 403
    unknown = await refused(service.put_programme(u, ADMIN, "etudes", ProgrammeBody(label="Études", operators=["CEREMA", "NOPE"])))
    assert unknown.errors == [{"loc": ["body", "operators", 1], "msg": "unknown operator 'NOPE'"}]
    programme = await service.put_programme(u, ADMIN, "etudes", ProgrammeBody(label="Études", operators=["CEREMA", "ADEME"]))
    assert (programme.status, programme.entity.operators) == (201, ["ADEME", "CEREMA"])
    again = await service.put_programme(u, ADMIN, "etudes", ProgrammeBody(label="Études", operators=["ADEME", "CEREMA"]))
    changed = await service.put_programme(u, ADMIN, "etudes", ProgrammeBody(label="Études", operators=["CEREMA"]))
    assert (again.status, again.changed, changed.status, changed.changed) == (200, False, 200, True)
    assert u.events == []


# --- batches -------------------------------------------------------------------------------------


def item(ref: str, operator: str = "ADEME", **changes: Any) -> dict[str, Any]:
    return {"operator": operator, "operator_ref": ref, **FIELDS, **changes}


async def batch(u: FakeUnitOfWork[FakeRepository], *items: Any, mode: str = "partial", principal: Principal = ADEME) -> Any:
    parsed = parse_json_batch({"mode": mode, "items": list(items)})
    return await service.post_grant_batch(u, principal, parsed, effective_at=None)


async def test_a_partial_batch_applies_its_rows_in_order_with_bulk_events() -> None:
    u = uow()
    await put(u, "OLD-1")
    await put(u, "OLD-2")
    result = await batch(u, item("N-1"), item("OLD-1"), item("OLD-2", amount_eur="900"), item("N-2", commune_insee="20004"), "x")
    doc = result.entity
    assert GrantBatch.model_validate(doc).model_dump(mode="json") == doc
    assert (result.status, doc["status"]) == (201, "completed_with_errors") and result.location == f"/v1/grant-batches/{doc['id']}"
    assert [(r["outcome"], r["version"]) for r in doc["rows"]] == [
        ("created", 1), ("unchanged", 1), ("updated", 2), ("rejected", None), ("rejected", None)
    ]
    assert doc["counts"] == {"total": 5, "created": 1, "updated": 1, "unchanged": 1, "rejected": 2, "warnings": 0}
    assert u.repo.grants[("ADEME", "OLD-2")].version == 2
    assert [(e.subject, e.entityversion, e.type) for e in u.events[2:]] == [
        ("ADEME/N-1", 1, EVENT_OF_CHANGE["committed"].type),
        ("ADEME/OLD-2", 2, EVENT_OF_CHANGE["amended"].type),
    ]
    assert result.event_ids == tuple(e.id for e in u.events[2:])
    assert all(ledger_problems(g, u.repo.entries(g.operator, g.operator_ref)) == [] for g in u.repo.grants.values())
    stored, operator, actor, media = u.repo.batches[doc["id"]]
    assert (stored, operator, actor, media) == (doc, "ADEME", "ademe-push", "application/json")


async def test_rows_of_one_grant_are_all_rejected_naming_each_other() -> None:
    u = uow()
    await put(u, "OLD-1")
    result = await batch(u, item("N-1"), item("OLD-1"), item("OLD-1", amount_eur="900"), item("N-1", object="Autre"), item("N-3"))
    rows = result.entity["rows"]
    assert [r["outcome"] for r in rows] == ["rejected", "rejected", "rejected", "rejected", "created"]
    assert [r["errors"] for r in rows[:4]] == [
        [{"loc": ["operator_ref"], "msg": "repeats the grant of row 4"}],
        [{"loc": ["operator_ref"], "msg": "repeats the grant of row 3"}],
        [{"loc": ["operator_ref"], "msg": "repeats the grant of row 2"}],
        [{"loc": ["operator_ref"], "msg": "repeats the grant of row 1"}],
    ]
    assert ("ADEME", "N-1") not in u.repo.grants and u.repo.grants[("ADEME", "OLD-1")].version == 1


async def test_a_batch_every_row_of_which_is_rejected_writes_nothing_and_is_a_422() -> None:
    u = uow()
    result = await batch(u, item("A-1", decision_date="2024-10-02"), "x")
    assert result.status == 422 and result.problem is not None and not result.changed
    assert result.entity["status"] == "rejected" and result.entity["mode"] == "partial"
    assert "no row is valid" in result.problem.detail and u.repo.grants == {} and u.events == []


async def test_an_atomic_batch_with_a_rejected_row_writes_nothing_but_its_report() -> None:
    u = uow()
    result = await batch(u, item("A-1"), item("A-2", decision_date="2024-10-02"), mode="atomic")
    assert result.status == 422 and result.problem is not None and not result.changed
    assert result.problem.errors == [{"loc": ["items", 1, "decision_date"], "msg": "may not be in the future"}]
    assert result.problem.extensions["batch"]["status"] == "rejected" and result.problem.instance == result.location
    assert u.repo.grants == {} and u.events == [] and u.repo.ledger == {}
    assert [b[0]["status"] for b in u.repo.batches.values()] == ["rejected"]


#: (principal, operator, changes): writes the grant rules refuse, for a PUT and a batch row alike
REFUSED = [
    (ADEME, "BPI", {"programme": "rebond_industriel"}),
    (ADEME, "ADEME", {"programme": "rebond_industriel"}),
    (ADMIN, "ADEME", {"programme": "rebond_industriel"}),
    (ADEME, "ADEME", {"programme": "inconnu"}),
    (ADEME, "ADEME", {"territory_id": "ti-9999", "decision_date": "2024-10-02"}),
    (ADMIN, "ZZZ", {}),
    (ADEME, "ADEME", {"beneficiary": {"name": "X", "kind": "entreprise"}}),
]


@pytest.mark.parametrize(("principal", "operator", "changes"), REFUSED)
async def test_a_batch_row_is_refused_with_the_message_of_the_put(principal: Principal, operator: str, changes: dict[str, Any]) -> None:
    u = uow()
    problem = await refused(put(u, principal=principal, operator=operator, **changes))
    result = await batch(u, item("FV-1", operator, **changes), principal=principal)
    [row] = result.entity["rows"]
    assert row["outcome"] == "rejected"
    if problem.status == 403:  # a rule of who may write: the row's one error says what the PUT's 403 says
        assert [e["msg"] for e in row["errors"]] == [problem.detail]
    else:
        assert problem.status == 422 and problem.errors is not None
        # the PUT locates them in its path (the operator) or body, the row in the grant
        assert row["errors"] == [{"loc": e["loc"][1:], "msg": e["msg"]} for e in problem.errors]
    assert u.events == [] and u.repo.grants == {}


async def test_a_csv_batch_names_the_columns_and_takes_the_tokens_operator() -> None:
    u = uow()
    header = "operator_ref;nomBeneficiaire;idBeneficiaire;objet;montant;dateConvention;programme;commune_insee;beneficiary_kind\n"
    rows = "FV-1;Aéro;73282932000074;Objet;1 000,50;12/06/2024;fonds_vert_ti_te;71076;entreprise\nFV-2;Aéro;73282932000074;Objet;10;02/10/2024;rebond_industriel;71076;entreprise\n"
    parsed = parse_csv_batch((header + rows).encode("cp1252"), ADEME.operator)
    result = await service.post_grant_batch(u, ADEME, parsed, effective_at=None)
    first, second = result.entity["rows"]
    assert first["outcome"] == "created" and u.repo.grants[("ADEME", "FV-1")].amount_eur == Decimal("1000.50")
    assert second["errors"] == [{"loc": ["programme"], "msg": "Operator 'ADEME' does not run programme 'rebond_industriel'"}]
    assert u.repo.batches[result.entity["id"]][3] == "text/csv"


async def test_batch_reads_follow_the_operator_it_was_sent_for() -> None:
    u = uow()
    sent = (await batch(u, item("FV-1"))).entity["id"]
    same_sub_other_operator = Principal(sub="ademe-push", scopes=frozenset({"grants:write"}), operator="BPI")
    colleague = Principal(sub="ademe-other", scopes=frozenset({"grants:write"}), operator="ADEME")
    for reader in (ADEME, colleague, ADMIN):
        assert (await service.get_grant_batch(u.repo, reader, sent)).id == sent
    for reader in (BPI, same_sub_other_operator, Principal(sub="ademe-push", scopes=frozenset({"grants:write"}))):
        assert (await refused(service.get_grant_batch(u.repo, reader, sent))).status == 403
    assert (await refused(service.get_grant_batch(u.repo, ADMIN, "nope"))).status == 404
    no_operator = Principal(sub="loader", scopes=frozenset({"grants:write"}))
    lonely = (await batch(u, item("FV-2"), principal=no_operator)).entity
    assert lonely["rows"][0]["errors"][0]["msg"] == "This token may not act for operator 'ADEME'"
    assert (await service.get_grant_batch(u.repo, no_operator, lonely["id"])).id == lonely["id"]
    assert (await refused(service.get_grant_batch(u.repo, ADEME, lonely["id"]))).status == 403


# --- control totals ------------------------------------------------------------------------------


async def controlled(u: FakeUnitOfWork[FakeRepository], control: Any, *items: Any, mode: str = "partial") -> Any:
    parsed = parse_json_batch({"mode": mode, "items": list(items), "control": control})
    return await service.post_grant_batch(u, ADEME, parsed, effective_at=None)


async def test_a_batch_says_whether_it_matches_the_operators_control_totals() -> None:
    u = uow()
    own = [{"programme": "fonds_vert_ti_te", "count": 2, "amount_eur": "1500"}]
    doc = (await controlled(u, own, item("C-1"), item("C-2", amount_eur="500"))).entity
    assert GrantBatch.model_validate(doc).model_dump(mode="json") == doc
    assert doc["control"] == {
        "status": "match",
        "programmes": [
            {
                "programme": "fonds_vert_ti_te",
                "declared": {"count": 2, "amount_eur": "1500.00"},
                "received": {"count": 2, "amount_eur": "1500.00"},
                "difference": {"count": 0, "amount_eur": "0.00"},
                "status": "match",
            }
        ],
    }
    # a rejected row is not received: the partial batch writes the other one and says it does not match
    doc = (await controlled(u, own, item("C-3"), item("C-4", amount_eur="500", commune_insee="20004"))).entity
    assert doc["status"] == "completed_with_errors" and ("ADEME", "C-3") in u.repo.grants
    [check] = doc["control"]["programmes"]
    assert (check["status"], check["received"], check["difference"]) == (
        "mismatch", {"count": 1, "amount_eur": "1000.00"}, {"count": -1, "amount_eur": "-500.00"}
    )
    assert doc["control"]["status"] == "mismatch"
    assert (await controlled(u, None, item("C-5"))).entity["control"] is None


async def test_an_atomic_batch_that_does_not_match_its_control_totals_writes_nothing() -> None:
    u = uow()
    own = [{"programme": "fonds_vert_ti_te", "count": 1, "amount_eur": "999.99"}]
    result = await controlled(u, own, item("A-1"), mode="atomic")
    assert result.status == 422 and result.problem is not None and u.repo.grants == {} and u.events == []
    assert result.entity["status"] == "rejected" and result.entity["counts"]["rejected"] == 0
    assert result.problem.errors == [
        {"loc": ["control", "fonds_vert_ti_te"], "msg": "declared 1 grants for 999.99 EUR; the batch holds 1 for 1000.00 EUR (difference +0, 0.01 EUR)"}
    ]
    assert "does not match its control totals" in result.problem.detail
    # a programme of the batch that the operator declared nothing for is a mismatch too
    other = [{"programme": "rebond_industriel", "count": 0, "amount_eur": "0"}]
    result = await controlled(u, other, item("A-1"), mode="atomic")
    assert result.status == 422 and [c["programme"] for c in result.entity["control"]["programmes"]] == ["fonds_vert_ti_te", "rebond_industriel"]
    assert result.entity["control"]["programmes"][0]["declared"] is None
    result = await controlled(u, [{"programme": "fonds_vert_ti_te", "count": 1, "amount_eur": "1000"}], item("A-1"), mode="atomic")
    assert result.status == 201 and result.entity["control"]["status"] == "match" and ("ADEME", "A-1") in u.repo.grants


def test_control_totals_are_read_from_the_body_or_the_query_and_refused_when_malformed() -> None:
    assert parse_control_query(["fonds_vert_ti_te:12:1500000.00"]) == [
        ControlTotal(programme="fonds_vert_ti_te", count=12, amount_eur=Decimal("1500000.00"))
    ]
    assert parse_control_query(None) is None
    for bad in (["fonds_vert_ti_te:12"], ["fonds_vert_ti_te:x:1"], ["fonds_vert_ti_te:1:-5"], ["a:1:1", "a:1:1"], ["Fonds:1:1"]):
        with pytest.raises(Problem) as caught:
            parse_control_query(bad)
        assert caught.value.status == 422 and caught.value.errors and caught.value.errors[0]["loc"][:2] == ["query", "control"]
    with pytest.raises(Problem) as caught:
        parse_json_batch({"items": [item("X")], "control": [{"programme": "fonds_vert_ti_te", "count": 1}]})
    assert caught.value.errors == [{"loc": ["body", "control", 0, "amount_eur"], "msg": "Field required"}]


async def test_a_csv_batch_takes_its_control_totals_from_the_query() -> None:
    u = uow()
    header = "operator_ref,nomBeneficiaire,idBeneficiaire,objet,montant,dateConvention,programme,commune_insee,beneficiary_kind\n"
    rows = 'FV-1,Aéro,73282932000074,Objet,"1 000,50",12/06/2024,fonds_vert_ti_te,71076,entreprise\n'
    parsed = parse_csv_batch((header + rows).encode(), ADEME.operator, query_mode="atomic", control=parse_control_query(["fonds_vert_ti_te:1:1000.50"]))
    result = await service.post_grant_batch(u, ADEME, parsed, effective_at=None)
    assert result.status == 201 and result.entity["control"]["status"] == "match"


def test_a_batch_holds_the_garbage_collector_off_until_the_last_one_ends() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # a second batch under way at once
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # held off by someone else: left so
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_batch_that_fails_turns_the_garbage_collector_on_again() -> None:
    assert gc.isenabled()
    with pytest.raises(Problem), collector_paused():
        raise Problem(422, "a refused batch")
    assert gc.isenabled()
    with collector_paused():  # one of two batches under way fails: still off until the other ends
        with pytest.raises(RuntimeError), collector_paused():
            raise RuntimeError("a batch's write failed")
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.parametrize(
    "text", ["back\\slash", "tab\there", "line\nfeed\r", "\\N", 'quote " ', "é€😀", "\u2028\u2029", "\x01\x1f\x7f", " "]
)
async def test_a_batch_event_data_is_the_json_text_of_the_grant_a_put_dumps(text: str) -> None:
    """A batch's events carry each grant as pydantic's JSON text (taken by the outbox as it is): the
    bytes orjson writes of the document a PUT's event carries."""
    u = uow()
    await put(u, "FV-1", object=f"{text} objet", beneficiary={**FIELDS["beneficiary"], "name": f"Nom {text}"},
              scdl={"referenceDecision": f"DEL {text}", "notificationUE": True})
    grant = u.repo.grants[("ADEME", "FV-1")]
    assert service._GRANT_JSON(grant) == orjson.dumps(grant.model_dump(mode="json"))
    assert u.events[-1].data == grant.model_dump(mode="json")
