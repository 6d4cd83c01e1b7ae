"""The use cases on an in-memory unit of work (no database, no bus): what each write stores, which
event it records, and what it refuses without writing anything."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from action_tracker import service
from action_tracker.domain import Action, Change, decide_write
from action_tracker.events import EVENT_OF_CHANGE
from action_tracker.schemas import ActionPatch, ActionResource, ActionWrite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ti_shared.auth import Principal
from ti_shared.events import TOPIC_ACTIONS
from ti_shared.fakes import FAKE_NOW, FakeUnitOfWork
from ti_shared.problems import Problem
from ti_shared.uploads import Upload
from ti_shared.vocabulary import ACTION_STATUSES, AXES, THEMES

from .fakes import FakeRepository

ADMIN = Principal(sub="anct-admin", scopes=frozenset({"admin"}))
LEAD = Principal(sub="lead", scopes=frozenset({"actions:write"}), territories=frozenset({"ti-8402"}))
EARLIER = FAKE_NOW - timedelta(days=10)

BODY: dict[str, Any] = {
    "territory_id": "ti-8402",
    "title": "Campus des métiers",
    "description": None,
    "axis": "competences_attractivite",
    "themes": ["nouvelles_formations"],
    "status": "en_cours",
    "planned_start": "2024-01-15",
    "planned_end": None,
    "budget_eur": "120000.00",
    "partners": ["BPI"],
}


def write(**fields: Any) -> ActionWrite:
    return ActionWrite.model_validate({**BODY, **fields})


def stored(action_id: str = "a-1", *, version: int = 2, deleted: bool = False, **fields: Any) -> Action:
    return Action(action_id, {**BODY, **fields}, version, deleted, created_at=EARLIER, updated_at=EARLIER)


def uow_with(*actions: Action) -> FakeUnitOfWork[FakeRepository]:
    return FakeUnitOfWork(FakeRepository(*actions))


async def put(uow: FakeUnitOfWork[FakeRepository], body: ActionWrite, principal: Principal = ADMIN, **kw: Any) -> Any:
    action_id = kw.pop("action_id", "a-1")
    args: dict[str, Any] = {"effective_at": None, "if_match": None, "if_none_match": None, **kw}
    return await service.put_action(uow, principal, action_id, body, **args)


async def refused(status: int, call: Any) -> Problem:
    with pytest.raises(Problem) as info:
        await call
    assert info.value.status == status, info.value.detail
    return info.value


# --- writing one action ----------------------------------------------------------------------


async def test_a_first_put_creates_the_action_its_history_and_its_event() -> None:
    uow = uow_with()
    result = await put(uow, write(comment="Lancement"))
    assert (result.status, result.created, result.version, result.location) == (201, True, 1, None)
    assert isinstance(result.entity, ActionResource) and result.entity.model_dump(mode="json") == {
        "id": "a-1",
        **BODY,
        "version": 1,
        "updated_at": "2024-06-01T09:30:00Z",
        "deleted": False,
    }
    action = uow.repo.actions["a-1"]
    assert (action.version, action.created_at, action.updated_at) == (1, FAKE_NOW, FAKE_NOW)
    [version] = uow.repo.versions["a-1"]
    assert (version.change, version.actor, version.comment, version.state) == (
        Change.CREATED,
        "anct-admin",
        "Lancement",
        action.resource(),
    )
    [event] = uow.events
    assert (event.type, event.subject, event.entityversion, event.tiactor, event.time) == (
        EVENT_OF_CHANGE[Change.CREATED].type,
        "a-1",
        1,
        "anct-admin",
        FAKE_NOW,
    )
    assert event.data == action.resource() and uow.topic_of[event.id] == TOPIC_ACTIONS
    assert result.event_ids == (event.id,)


async def test_the_same_body_changes_nothing() -> None:
    current = stored()
    uow = uow_with(current)
    result = await put(uow, write(budget_eur="120000"), if_match='W/"2"')
    assert (result.status, result.changed, result.version, result.event_ids) == (200, False, 2, ())
    assert uow.repo.actions["a-1"] is current and uow.events == [] and uow.repo.versions == {}


async def test_a_status_change_is_its_own_event_with_the_fields_that_changed() -> None:
    uow = uow_with(stored())
    result = await put(uow, write(status="realise", title="Campus"), principal=LEAD)
    assert (result.status, result.version, result.entity.status) == (200, 3, "realise")
    assert [e.type for e in uow.events] == [EVENT_OF_CHANGE[Change.STATUS_CHANGED].type]
    assert uow.repo.versions["a-1"][0].changed_fields == ["title", "status"]
    assert uow.repo.actions["a-1"].created_at == EARLIER


async def test_a_put_over_a_deleted_action_recreates_it() -> None:
    uow = uow_with(stored(deleted=True))
    result = await put(uow, write(), if_none_match="*")
    assert (result.status, result.created, result.version, result.entity.deleted) == (201, True, 3, False)
    assert uow.repo.versions["a-1"][0].changed_fields == ["deleted"]
    assert [e.type for e in uow.events] == [EVENT_OF_CHANGE[Change.CREATED].type]


async def test_conditions_and_ids_are_checked_before_anything_is_written() -> None:
    uow = uow_with(stored())
    await refused(412, put(uow, write(title="Autre"), if_match='W/"1"'))
    await refused(412, put(uow, write(title="Autre"), if_none_match="*"))
    await refused(412, put(uow, write(), action_id="a-new", if_match='W/"1"'))
    reserved = await refused(422, put(uow, write(), action_id="vocabulary"))
    assert reserved.errors == [{"loc": ["path", "action_id"], "msg": "is reserved: plan-imports, vocabulary"}]
    other = await refused(422, put(uow, write(id="a-2")))
    assert other.errors is not None and other.errors[0]["loc"] == ["body", "id"]
    assert uow.events == [] and uow.repo.actions["a-1"].version == 2


async def test_a_lead_writes_only_its_territories_and_only_known_ones() -> None:
    uow = uow_with(stored(), stored("b-1", territory_id="ti-1101"))
    await refused(403, put(uow, write(territory_id="ti-1101"), principal=LEAD))  # moving it out
    await refused(403, put(uow, write(), principal=LEAD, action_id="b-1"))  # moving it in
    unknown = await refused(422, put(uow, write(territory_id="ti-9999"), action_id="a-new"))
    assert unknown.errors is not None and unknown.errors[0]["loc"] == ["body", "territory_id"]
    moved = await put(uow, write(territory_id="ti-1101", status="amont"))
    assert moved.entity.territory_id == "ti-1101"
    assert len(uow.events) == 1


async def test_write_change_refuses_a_decision_that_changes_nothing() -> None:
    current = stored()
    with pytest.raises(ValueError, match="changes nothing"):
        await service.write_change(
            uow_with(current), decide_write(current, dict(current.body), action_id="a-1", at=FAKE_NOW), actor="x", comment=None
        )


async def test_a_back_dated_write_may_not_come_before_the_current_version() -> None:
    uow = uow_with(stored())
    conflict = await refused(409, put(uow, write(title="Autre"), effective_at=EARLIER - timedelta(days=1)))
    assert conflict.kind == "effective-at-conflict"
    unchanged = await put(uow, write(), effective_at=EARLIER - timedelta(days=1))
    assert not unchanged.changed
    later = EARLIER + timedelta(days=1)
    dated = await put(uow, write(title="Autre"), effective_at=later)
    assert uow.repo.actions["a-1"].updated_at == later and uow.events[0].time == later
    assert dated.entity.updated_at == later


async def test_a_post_creates_under_a_server_id_with_its_location() -> None:
    uow = uow_with()
    result = await service.create_action(uow, LEAD, write(), effective_at=None)
    action_id = result.entity.id
    assert action_id.startswith("act-") and result.location == f"/v1/actions/{action_id}"
    assert (result.status, result.version, uow.repo.actions[action_id].version) == (201, 1, 1)
    chosen = await refused(422, service.create_action(uow, ADMIN, write(id="mine"), effective_at=None))
    assert chosen.errors is not None and chosen.errors[0]["loc"] == ["body", "id"]
    await refused(403, service.create_action(uow, LEAD, write(territory_id="ti-1101"), effective_at=None))
    assert len(uow.events) == 1


async def patch(uow: FakeUnitOfWork[FakeRepository], changes: dict[str, Any], **kw: Any) -> Any:
    args: dict[str, Any] = {"effective_at": None, "if_match": None, **kw}
    return await service.patch_action(uow, ADMIN, "a-1", ActionPatch.model_validate(changes), **args)


async def test_a_patch_changes_the_given_fields() -> None:
    uow = uow_with(stored())
    result = await patch(uow, {"status": "realise", "themes": None, "comment": "Inauguré"}, if_match='W/"2"')
    assert (result.status, result.version, result.entity.status, result.entity.themes) == (200, 3, "realise", [])
    assert uow.repo.versions["a-1"][0].comment == "Inauguré"
    assert uow.repo.versions["a-1"][0].changed_fields == ["themes", "status"]
    same = await patch(uow, {"status": "realise", "comment": "encore"})
    assert (same.changed, same.version) == (False, 3) and len(uow.repo.versions["a-1"]) == 1


async def test_a_patch_that_breaks_the_rules_names_the_field() -> None:
    uow = uow_with(stored())
    invalid = await refused(422, patch(uow, {"planned_end": "2023-01-01"}))
    assert invalid.errors is not None and invalid.errors[0]["loc"] == ["body", "planned_end"]
    await refused(412, patch(uow, {"status": "amont"}, if_match='"3"'))
    assert uow.events == []


async def test_a_deleted_or_absent_action_is_not_found() -> None:
    uow = uow_with(stored(deleted=True))
    gone = await refused(404, patch(uow, {"status": "amont"}))
    assert "was deleted (version 2)" in gone.detail
    await refused(404, service.delete_action(uow, ADMIN, "a-1", effective_at=None, if_match=None))
    await refused(404, service.delete_action(uow, ADMIN, "nope", effective_at=None, if_match=None))
    await refused(404, service.get_action(uow.repo, "a-1"))


async def test_a_delete_is_a_new_version_with_its_event() -> None:
    uow = uow_with(stored(), stored("b-1", territory_id="ti-1101"))
    await refused(403, service.delete_action(uow, LEAD, "b-1", effective_at=None, if_match=None))
    result = await service.delete_action(uow, LEAD, "a-1", effective_at=None, if_match='W/"2"')
    assert (result.status, result.version, result.entity.deleted, result.entity.status) == (200, 3, True, "en_cours")
    assert [e.type for e in uow.events] == [EVENT_OF_CHANGE[Change.DELETED].type]
    assert uow.events[0].data["deleted"] is True and uow.repo.versions["a-1"][0].changed_fields == ["deleted"]


bodies = st.fixed_dictionaries(
    {
        "territory_id": st.sampled_from(["ti-8402", "ti-1101"]),
        "title": st.text(min_size=1, max_size=12).filter(str.strip),
        "description": st.none() | st.text(max_size=12),
        "axis": st.sampled_from(AXES),
        "themes": st.lists(st.sampled_from(THEMES), unique=True, max_size=3),
        "status": st.sampled_from(ACTION_STATUSES),
        "planned_start": st.none() | st.dates(date(1900, 1, 1), date(2199, 12, 31)).map(date.isoformat),
        "budget_eur": st.none() | st.decimals(min_value=0, max_value=10**9, places=2).map(str),
        "partners": st.lists(st.text(min_size=1, max_size=8).filter(str.strip), max_size=2),
    }
)
#: back-dated writes, given in UTC or with another offset
instants = st.datetimes(datetime(2000, 1, 1), datetime(2024, 5, 1), timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, instants)
async def test_the_answer_of_a_write_is_the_state_its_event_and_history_carry(body: dict[str, Any], at: datetime) -> None:
    uow = uow_with()
    result = await put(uow, ActionWrite.model_validate(body), effective_at=at)
    answer = result.entity.model_dump(mode="json")
    assert answer == uow.events[0].data == uow.repo.versions["a-1"][0].state == uow.repo.actions["a-1"].resource()
    assert answer["updated_at"].endswith("Z")


# --- reading ---------------------------------------------------------------------------------


def test_the_vocabulary_has_every_axis_theme_and_status_with_a_label() -> None:
    vocabulary = service.get_vocabulary()
    assert [t.code for t in vocabulary.axes] == list(AXES)
    assert [t.code for t in vocabulary.themes] == list(THEMES)
    assert [t.code for t in vocabulary.statuses] == list(ACTION_STATUSES)
    assert all(t.label.strip() for t in [*vocabulary.axes, *vocabulary.themes, *vocabulary.statuses])
    assert all(t.axis in AXES for t in vocabulary.themes)


async def test_lists_are_pages_of_live_actions_by_id() -> None:
    repo = FakeRepository(
        stored("a-1"), stored("a-2", deleted=True), stored("a-3", status="realise"), stored("b-1", territory_id="ti-1101")
    )
    kw: dict[str, Any] = {"territory_id": None, "region_code": None, "axis": None, "theme": None, "status": None}
    first = await service.list_actions(repo, **kw, limit=2, cursor=None)
    assert [a.id for a in first.items] == ["a-1", "a-3"] and first.next_cursor is not None
    rest = await service.list_actions(repo, **kw, limit=2, cursor=first.next_cursor)
    assert ([a.id for a in rest.items], rest.next_cursor) == (["b-1"], None)
    in_84 = await service.list_actions(repo, **{**kw, "region_code": "84"}, limit=10, cursor=None)
    assert [a.id for a in in_84.items] == ["a-1", "a-3"]
    bad = await refused(422, service.list_actions(repo, **{**kw, "region_code": "99"}, limit=10, cursor=None))
    assert bad.errors is not None and bad.errors[0]["loc"] == ["query", "region_code"]
    await refused(422, service.list_actions(repo, **kw, limit=10, cursor="bm90IGEgY3Vyc29y"))


async def test_the_history_pages_every_version() -> None:
    uow = uow_with()
    await put(uow, write())
    await put(uow, write(status="realise"))
    await service.delete_action(uow, ADMIN, "a-1", effective_at=None, if_match=None)
    first = await service.get_action_history(uow.repo, "a-1", limit=2, cursor=None)
    assert [(h.version, h.change, h.event_type) for h in first.items] == [
        (1, "created", "fr.anct.ti.action.created.v1"),
        (2, "status_changed", "fr.anct.ti.action.status_changed.v1"),
    ]
    rest = await service.get_action_history(uow.repo, "a-1", limit=2, cursor=first.next_cursor)
    assert [(h.version, h.state.deleted) for h in rest.items] == [(3, True)] and rest.next_cursor is None
    await refused(404, service.get_action_history(uow.repo, "nope", limit=2, cursor=None))


# --- plan imports ----------------------------------------------------------------------------

PLAN = (
    "action_id;titre;axe;statut;thématiques\n"
    "a-1;Campus des métiers;Compétences et attractivité;En cours;Nouvelles formations\n"  # unchanged
    "a-2;Friche;foncier;amont;\n"  # new
    "a-3;Sans axe;;;\n"  # rejected
    "b-1;Autre territoire;foncier;;\n"  # of ti-1101: moved here only by a token covering both
)


def csv(text: str = PLAN) -> Upload:
    return Upload(text.encode(), "text/csv")


async def import_plan(
    uow: FakeUnitOfWork[FakeRepository], upload: Upload, principal: Principal = ADMIN, **kw: Any
) -> Any:
    args: dict[str, Any] = {"mode": "atomic", "delete_missing": False, "effective_at": None, **kw}
    return await service.import_plan(uow, principal, "ti-8402", upload, **args)


def current_plan() -> tuple[Action, ...]:
    return (
        stored("a-1", partners=[], budget_eur=None, planned_start=None),
        stored("b-1", territory_id="ti-1101"),
        stored("z-9"),  # in the plan, absent from the file
    )


async def test_a_refused_atomic_import_writes_nothing_and_reports_every_row() -> None:
    uow = uow_with(*current_plan())
    result = await import_plan(uow, csv(), principal=LEAD)
    assert result.status == 422 and result.problem is not None and not result.changed
    assert result.problem.kind == "plan-import-rejected"
    assert [tuple(e["loc"]) for e in result.problem.errors or []] == [("body", 4, "axis"), ("body", 5, "action_id")]
    report = result.problem.extensions["report"]
    assert report == result.entity.model_dump(mode="json") and report["applied"] is False
    assert [(r["row"], r["outcome"]) for r in report["rows"]] == [
        (2, "unchanged"),
        (3, "created"),
        (4, "rejected"),
        (5, "rejected"),
    ]
    assert report["missing"] == [{"action_id": "z-9", "outcome": "missing", "version": 2}]
    assert uow.events == [] and set(uow.repo.actions) == {"a-1", "b-1", "z-9"}


async def test_a_partial_import_writes_the_valid_rows_and_may_delete_the_missing() -> None:
    uow = uow_with(*current_plan())
    result = await import_plan(uow, csv(), mode="partial", delete_missing=True)
    assert result.status == 200 and result.entity.applied
    assert result.entity.summary.model_dump() == {
        "rows": 4,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "rejected": 1,
        "missing": 1,
        "deleted": 1,
    }
    assert [(e.subject, e.type.split(".")[-2]) for e in uow.events] == [
        ("a-2", "created"),
        ("b-1", "status_changed"),
        ("z-9", "deleted"),
    ]
    assert result.event_ids == tuple(e.id for e in uow.events)
    assert uow.repo.actions["b-1"].territory_id == "ti-8402" and uow.repo.actions["z-9"].deleted
    assert uow.repo.versions["z-9"][0].comment == "absent from the plan import"
    again = await import_plan(uow, csv(), mode="partial")
    assert (again.entity.summary.unchanged, again.changed) == (3, False)


async def test_a_back_dated_import_conflicts_in_atomic_mode_and_rejects_the_row_in_partial_mode() -> None:
    before = EARLIER - timedelta(days=1)
    uow = uow_with(stored("a-1", title="Ancien titre"))
    await refused(409, import_plan(uow, csv(PLAN.split("a-2")[0]), effective_at=before))
    partial = await import_plan(uow, csv(PLAN.split("a-2")[0]), mode="partial", effective_at=before)
    assert partial.entity.rows[0].errors[0].loc == ["TI-Effective-At"] and uow.events == []


async def test_an_import_is_refused_for_a_territory_the_token_or_the_replica_does_not_have() -> None:
    uow = uow_with()
    other = Principal(sub="lead", scopes=frozenset({"actions:write"}), territories=frozenset({"ti-1101"}))
    await refused(403, import_plan(uow, csv(), principal=other))
    missing = await refused(422, import_plan(FakeUnitOfWork(FakeRepository(territories={})), csv()))
    assert missing.errors == [{"loc": ["query", "territory_id"], "msg": "unknown territory 'ti-8402'"}]
    columns = await refused(422, import_plan(uow, csv("action_id;titre\na-1;T\n")))
    assert columns.errors == [{"loc": ["header", "axis"], "msg": "column axis is missing (also read as: axe, Axe)"}]
    assert uow.events == []
