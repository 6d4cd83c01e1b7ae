"""The use cases on an in-memory unit of work (no database, no bus): what each write stores, which
event it records, and what it refuses without writing anything."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from territory_registry import service
from territory_registry.domain import FIELDS, decide_write
from territory_registry.events import EVENT_OF_CHANGE
from territory_registry.schemas import TERRITORY_EXAMPLE, Change, Territory, TerritoryFields
from ti_shared.auth import Principal
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.fakes import FAKE_NOW, FakeUnitOfWork
from ti_shared.http import decode_cursor, encode_cursor
from ti_shared.problems import Problem
from ti_shared.uploads import Upload

from .fakes import FakeRepository

WRITER = Principal(sub="anct-import", scopes=frozenset({"territories:write"}))
EARLIER = FAKE_NOW - timedelta(days=30)
TID = "ti-8402"


def fields(**changes: Any) -> TerritoryFields:
    return TerritoryFields.model_validate({**copy.deepcopy(TERRITORY_EXAMPLE), **changes})


def stored(territory_id: str = TID, *, version: int = 1, **changes: Any) -> Territory:
    doc = {**copy.deepcopy(TERRITORY_EXAMPLE), **changes, "id": territory_id, "version": version, "updated_at": EARLIER}
    return Territory.model_validate(doc)


def uow_with(*territories: Territory) -> FakeUnitOfWork[FakeRepository]:
    return FakeUnitOfWork(FakeRepository(*territories))


async def put(uow: FakeUnitOfWork[FakeRepository], body: TerritoryFields, **kw: Any) -> Any:
    territory_id = kw.pop("territory_id", TID)
    args: dict[str, Any] = {"effective_at": None, "if_match": None, **kw}
    return await service.put_territory(uow, WRITER, territory_id, body, **args)


async def refused(status: int, call: Any) -> Problem:
    with pytest.raises(Problem) as info:
        await call
    assert info.value.status == status, info.value.detail
    return info.value


def csv(text: str) -> Upload:
    return Upload(text.encode("latin-1"), "text/csv")


# --- writing one territory -------------------------------------------------------------------


async def test_a_first_put_registers_the_territory_its_version_and_its_event() -> None:
    uow = uow_with()
    result = await put(uow, fields())
    assert (result.status, result.created, result.changed, result.version) == (201, True, True, 1)
    assert result.location == f"/v1/territories/{TID}"
    assert result.entity == uow.repo.territories[TID] and result.entity.updated_at == FAKE_NOW
    assert result.entity.model_dump(mode="json", include=set(FIELDS)) == {**TERRITORY_EXAMPLE, "communes": []}
    assert uow.repo.updated_by[TID] == "anct-import"
    (event,) = uow.events
    assert result.event_ids == (event.id,) and uow.topic_of[event.id] == TOPIC_TERRITORIES
    assert (event.type, event.subject, event.entityversion, event.tiactor, event.time) == (
        EVENT_OF_CHANGE["registered"].type, TID, 1, "anct-import", FAKE_NOW,
    )
    assert event.data == result.entity.model_dump(mode="json")
    version = uow.repo.versions[(TID, 1)]
    assert (version.change, version.changed_fields, version.actor, version.recorded_at) == (
        "registered", list(FIELDS), "anct-import", FAKE_NOW,
    )


async def test_the_same_state_changes_nothing() -> None:
    current = stored(version=3)
    uow = uow_with(current)
    result = await put(uow, fields(), if_match='W/"3"')
    assert (result.status, result.created, result.changed, result.version, result.location) == (200, False, False, 3, None)
    assert result.entity == current and uow.events == [] and uow.repo.versions == {}


@pytest.mark.parametrize(
    ("changes", "change", "changed_fields"),
    [
        ({"name": "Bassin burgien"}, "updated", ["name"]),
        ({"status": "withdrawn", "phase": None}, "withdrawn", ["phase", "status"]),
    ],
)
async def test_a_change_is_the_next_version_with_its_event(
    changes: dict[str, Any], change: Change, changed_fields: list[str]
) -> None:
    uow = uow_with(stored(version=2))
    result = await put(uow, fields(**changes))
    assert (result.status, result.version, result.entity.updated_at) == (200, 3, FAKE_NOW)
    assert [(e.type, e.entityversion) for e in uow.events] == [(EVENT_OF_CHANGE[change].type, 3)]
    assert uow.repo.territories[TID].version == 3
    assert uow.repo.versions[(TID, 3)].changed_fields == changed_fields


async def test_reactivation_is_an_update() -> None:
    uow = uow_with(stored(version=2, status="withdrawn"))
    await put(uow, fields())
    assert [e.type for e in uow.events] == [EVENT_OF_CHANGE["updated"].type]


async def test_if_match_must_name_the_current_version_of_an_existing_territory() -> None:
    uow = uow_with(stored(version=2))
    await refused(412, put(uow, fields(name="Autre"), if_match='W/"1"'))
    await refused(412, put(uow, fields(), territory_id="ti-8499", if_match="*"))
    assert uow.events == [] and set(uow.repo.territories) == {TID}
    assert (await put(uow, fields(name="Autre"), if_match='W/"2"')).version == 3


async def test_effective_at_back_dates_the_version_but_never_before_the_current_one() -> None:
    uow = uow_with(stored(version=1))
    await refused(409, put(uow, fields(name="Autre"), effective_at=EARLIER - timedelta(seconds=1)))
    assert uow.events == []
    later = EARLIER + timedelta(days=1)
    result = await put(uow, fields(name="Autre"), effective_at=later)
    assert result.entity.updated_at == later and uow.events[0].time == later
    assert uow.repo.versions[(TID, 2)].time == later and uow.repo.versions[(TID, 2)].recorded_at == FAKE_NOW


async def test_a_siren_or_departement_listed_twice_is_a_422_naming_it() -> None:
    uow = uow_with()
    epcis = [{"siren": "200071751", "name": "A"}, {"siren": "200071751", "name": "B"}]
    problem = await refused(422, put(uow, fields(epcis=epcis, departement_codes=["01", "01"])))
    assert [e["loc"] for e in problem.errors or []] == [["body", "epcis", 1, "siren"], ["body", "departement_codes", 1]]
    assert uow.repo.territories == {} and uow.events == []


async def test_write_change_refuses_a_decision_that_changes_nothing() -> None:
    current = stored()
    uow = uow_with(current)
    with pytest.raises(ValueError, match="changes nothing"):
        await service.write_change(uow, decide_write(current, fields(), territory_id=TID, at=FAKE_NOW), actor="x")


# --- imports ---------------------------------------------------------------------------------

TERRITORIES = (
    "id_ti;lib_ti;code_reg;codes_dep;date_labellisation\n"
    "ti-9451;Ajaccio;94;2A;09/11/2023\n"
    "ti-9452;Bastia;94;2B;2023-13-09\n"
    "ti-9453;Porto-Vecchio;94;2A;\n"
)


async def test_an_atomic_import_with_a_rejected_row_writes_nothing_and_answers_its_report() -> None:
    uow = uow_with()
    result = await service.import_territories(uow, WRITER, csv(TERRITORIES), kind="territories", mode="atomic")
    assert result.status == 422 and not result.changed and uow.events == [] and uow.repo.territories == {}
    report = result.entity
    assert report.imported is False and [r.outcome for r in report.rows] == ["created", "rejected", "created"]
    assert [r.version for r in report.rows] == [None, None, None]
    assert result.problem is not None and result.problem.kind == "import-rejected"
    assert result.problem.errors == [{"loc": ["row", 3, "date_labellisation"], "msg": "'2023-13-09' is not a date of the calendar (1900–2199)"}]
    assert result.problem.extensions == {"report": report.model_dump(mode="json")}


async def test_a_partial_import_writes_the_valid_rows_each_with_its_event() -> None:
    uow = uow_with()
    result = await service.import_territories(uow, WRITER, csv(TERRITORIES), kind="territories", mode="partial")
    assert result.status == 200 and result.problem is None and result.changed and result.version is None
    assert result.entity.counts.model_dump() == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert sorted(uow.repo.territories) == ["ti-9451", "ti-9453"]
    assert uow.repo.territories["ti-9451"].labelled_on is not None
    assert uow.repo.territories["ti-9451"].labelled_on.isoformat() == "2023-11-09"
    assert [(e.subject, e.type) for e in uow.events] == [
        ("ti-9451", EVENT_OF_CHANGE["registered"].type), ("ti-9453", EVENT_OF_CHANGE["registered"].type),
    ]
    assert result.event_ids == tuple(e.id for e in uow.events)
    assert {e.tiactor for e in uow.events} == {"anct-import"}


async def test_reimporting_changes_nothing_and_groupements_replace_the_epcis() -> None:
    current = stored("ti-9451", name="Ajaccio", region_code="94", departement_codes=["2A"], epcis=[], version=4)
    uow = uow_with(current)
    same = "id_ti;lib_ti;code_reg;codes_dep\nti-9451;Ajaccio;94;2A\n"
    again = await service.import_territories(uow, WRITER, csv(same), kind="territories", mode="atomic")
    assert again.entity.counts.unchanged == 1 and not again.changed and uow.events == []
    assert again.entity.rows[0].version == 4
    groupements = "id_ti;lib_groupement;siren_groupement\nti-9451;CA du Pays Ajaccien;200066744\nti-9499;CC;200071751\n"
    result = await service.import_territories(uow, WRITER, csv(groupements), kind="groupements", mode="partial")
    assert [(r.territory_id, r.outcome, r.version, r.changed_fields) for r in result.entity.rows] == [
        ("ti-9451", "updated", 5, ["epcis"]), ("ti-9499", "rejected", None, []),
    ]
    assert [e.siren for e in uow.repo.territories["ti-9451"].epcis] == ["200066744"]
    assert "import the territories file first" in result.entity.rows[1].errors[0].msg


async def test_a_file_without_rows_or_with_too_many_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    uow = uow_with()
    await refused(422, service.import_territories(uow, WRITER, csv("id_ti;lib_ti;code_reg\n"), kind="territories", mode="atomic"))
    monkeypatch.setattr(service, "MAX_IMPORT_ROWS", 2)
    problem = await refused(422, service.import_territories(uow, WRITER, csv(TERRITORIES), kind="territories", mode="partial"))
    assert "at most 2" in problem.detail and uow.events == []
    missing = await refused(422, service.import_territories(uow, WRITER, csv("id_ti;lib_ti\nti-9451;A\n"), kind="territories", mode="atomic"))
    assert missing.errors == [{"loc": ["header", "code_reg"], "msg": "column code_reg is missing (also read as: insee_reg, reg)"}]


# --- reads -----------------------------------------------------------------------------------


async def test_get_answers_404_for_an_unknown_territory() -> None:
    repo = FakeRepository(stored())
    assert (await service.get_territory(repo, TID)).version == 1
    problem = await refused(404, service.get_territory(repo, "ti-8499"))
    assert problem.detail == "Territory ti-8499 is not registered"


async def test_lists_filter_and_page_with_cursors() -> None:
    repo = FakeRepository(*(stored(f"ti-53{n:02d}", region_code="53", status="withdrawn" if n == 5 else "active") for n in range(1, 6)), stored())
    first = await service.list_territories(repo, region_code="53", status=None, limit=2, cursor=None)
    assert [t.id for t in first.items] == ["ti-5301", "ti-5302"] and first.next_cursor is not None
    assert decode_cursor(first.next_cursor) == ["ti-5302"]
    rest = await service.list_territories(repo, region_code="53", status="active", limit=10, cursor=first.next_cursor)
    assert [t.id for t in rest.items] == ["ti-5303", "ti-5304"] and rest.next_cursor is None
    everything = await service.list_territories(repo, region_code=None, status=None, limit=6, cursor=None)
    assert len(everything.items) == 6 and everything.next_cursor is None


async def test_a_bad_region_or_cursor_is_a_422_naming_the_query_parameter() -> None:
    repo = FakeRepository(stored())
    region = await refused(422, service.list_territories(repo, region_code="20", status=None, limit=2, cursor=None))
    assert region.errors is not None and region.errors[0]["loc"] == ["query", "region_code"]
    version_cursor = encode_cursor([3])  # a history cursor is not a list cursor, nor the other way round
    for call in (
        service.list_territories(repo, region_code=None, status=None, limit=2, cursor=version_cursor),
        service.get_territory_history(repo, TID, limit=2, cursor=encode_cursor([TID])),
        service.list_territories(repo, region_code=None, status=None, limit=2, cursor="not-a-cursor"),
    ):
        problem = await refused(422, call)
        assert problem.errors == [{"loc": ["query", "cursor"], "msg": "is not a cursor this API produced"}]


async def test_history_pages_its_versions_and_answers_404_for_an_unknown_territory() -> None:
    uow = uow_with()
    await put(uow, fields())
    await put(uow, fields(name="Autre"))
    await put(uow, fields(name="Autre", status="withdrawn"))
    page = await service.get_territory_history(uow.repo, TID, limit=2, cursor=None)
    assert [(v.version, v.change) for v in page.items] == [(1, "registered"), (2, "updated")]
    assert page.items[1].event_type == EVENT_OF_CHANGE["updated"].type and page.next_cursor is not None
    rest = await service.get_territory_history(uow.repo, TID, limit=2, cursor=page.next_cursor)
    assert [v.change for v in rest.items] == ["withdrawn"] and rest.next_cursor is None
    past_the_end = await service.get_territory_history(uow.repo, TID, limit=2, cursor=encode_cursor([3]))
    assert past_the_end.items == []  # a cursor past the last version is an empty page, not a 404
    await refused(404, service.get_territory_history(uow.repo, "ti-8499", limit=2, cursor=None))


def test_reference_data_of_a_region() -> None:
    assert len(service.list_regions()) == 18 and len(service.list_departements(None)) == 101
    assert [d.code for d in service.list_departements("94")] == ["2A", "2B"]
    with pytest.raises(Problem) as info:
        service.list_departements("20")
    assert info.value.errors is not None and info.value.errors[0]["loc"] == ["query", "region_code"]
