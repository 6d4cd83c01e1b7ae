"""The use cases on an in-memory unit of work (no database, no bus): what each write stores, which
event it records, and what it refuses without writing anything."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from site_catalog import service
from site_catalog.domain import BODY_FIELDS, decide_write
from site_catalog.events import EVENT_OF_CHANGE
from site_catalog.schemas import SITE_EXAMPLE, Change, SiteBody, SiteResource
from ti_shared.auth import Principal
from ti_shared.events import TOPIC_SITES
from ti_shared.fakes import FAKE_NOW, FakeUnitOfWork
from ti_shared.http import encode_cursor
from ti_shared.problems import Problem
from ti_shared.uploads import Upload

from .fakes import FakeRepository

WRITER = Principal(sub="site-owner", scopes=frozenset({"sites:write"}))
EARLIER = FAKE_NOW - timedelta(days=30)
SITE = "13004_SITE-ECO_00001"
#: no filter on the list of sites
ANY_SITE: dict[str, Any] = dict.fromkeys(("region_code", "departement_code", "maturity", "land_recycling", "territory_id", "status"))


def body(**changes: Any) -> SiteBody:
    return SiteBody.model_validate({**SITE_EXAMPLE, **changes})


def stored(site_id: str = SITE, *, version: int = 1, **changes: Any) -> SiteResource:
    site = decide_write(None, body(**changes), site_id=site_id, at=EARLIER).entity
    return site.model_copy(update={"version": version})


def uow_with(*sites: SiteResource, territories: tuple[str, ...] = ("ti-9303", "ti-8402")) -> FakeUnitOfWork[FakeRepository]:
    return FakeUnitOfWork(FakeRepository(*sites, territories=territories))


async def put(uow: FakeUnitOfWork[FakeRepository], new: SiteBody, **kw: Any) -> Any:
    site_id = kw.pop("site_id", SITE)
    args: dict[str, Any] = {"effective_at": None, "if_match": None, **kw}
    return await service.put_site(uow, WRITER, site_id, new, **args)


async def refused(status: int, call: Any) -> Problem:
    with pytest.raises(Problem) as info:
        await call
    assert info.value.status == status, info.value.detail
    return info.value


HEADER = (
    "site_id;site_nom;site_comm_insee;site_surf_brute;site_maturite;site_friche;site_date_label;"
    "site_atelier;site_feuille_route;site_proprietaire;site_statut;territory_id"
)


def csv(*rows: str) -> Upload:
    """A CNIG-shaped file as ANCT sends it: Latin-1, ``;``, French decimals and words."""
    return Upload("\n".join((HEADER, *rows, "")).encode("latin-1"), "text/csv")


ARLES = "13004_SITE-ECO_00001;Port fluvial d'Arles;13004;25,00;ready;oui;15/04/2024;oui;non;entreprise;labellisé;ti-9303"
AVIGNON = "84007_SITE-ECO_00002;Zone de l'Étang;84007;12,5;court terme;non;2024-04-15;non;non;EPCI;labellisé;"
BAD_AREA = "01053_SITE-ECO_00003;Bourg;01053;-3,5;ready;oui;2024-04-15;oui;oui;entreprise;labellisé;ti-8402"
UNKNOWN_TERRITORY = "38185_SITE-ECO_00004;Grenoble;38185;3;ready;oui;2024-04-15;oui;oui;entreprise;labellisé;ti-9999"


# --- writing one site ---------------------------------------------------------------------------


async def test_a_first_put_labels_the_site_its_version_and_its_event() -> None:
    uow = uow_with()
    result = await put(uow, body(area_ha="25"))
    assert (result.status, result.created, result.changed, result.version, result.location) == (201, True, True, 1, None)
    site = uow.repo.sites[SITE]
    assert result.entity == site and (site.updated_at, site.departement_code, site.region_code) == (FAKE_NOW, "13", "93")
    (event,) = uow.events
    assert result.event_ids == (event.id,) and uow.topic_of[event.id] == TOPIC_SITES
    assert (event.type, event.subject, event.entityversion, event.tiactor, event.time) == (
        EVENT_OF_CHANGE["labelled"].type, SITE, 1, "site-owner", FAKE_NOW,
    )
    assert event.data == site.model_dump(mode="json") and event.data["area_ha"] == "25.00"
    version = uow.repo.versions[(SITE, 1)]
    assert (version.change, version.actor, version.changed_at, version.site) == ("labelled", "site-owner", FAKE_NOW, site)


async def test_the_same_state_changes_nothing_even_an_unknown_territory_it_keeps() -> None:
    current = stored(version=3, territory_id="ti-0001")  # the replica no longer knows it
    uow = uow_with(current)
    result = await put(uow, body(territory_id="ti-0001", name=" Port fluvial d'Arles "), if_match='W/"3"')
    assert (result.status, result.changed, result.version) == (200, False, 3)
    assert result.entity == current and uow.events == [] and uow.repo.versions == {}


@pytest.mark.parametrize(("changes", "change"), [({"maturity": "short_term"}, "updated"), ({"status": "withdrawn"}, "withdrawn")])
async def test_a_change_is_the_next_version_with_its_event(changes: dict[str, Any], change: Change) -> None:
    uow = uow_with(stored(version=2))
    result = await put(uow, body(**changes))
    assert (result.status, result.created, result.version) == (200, False, 3)
    assert [(e.type, e.entityversion) for e in uow.events] == [(EVENT_OF_CHANGE[change].type, 3)]
    assert uow.repo.sites[SITE].version == 3 and uow.repo.versions[(SITE, 3)].change == change


async def test_refusals_write_nothing() -> None:
    uow = uow_with(stored(version=1))
    reserved = await refused(422, put(uow, body(), site_id="imports"))
    assert reserved.errors is not None and reserved.errors[0]["loc"] == ["path", "site_id"]
    await refused(412, put(uow, body(area_ha="3"), if_match='W/"7"'))
    await refused(412, put(uow, body(), site_id="S-new", if_match='W/"1"'))
    unknown = await refused(422, put(uow, body(territory_id="ti-0001")))
    assert unknown.errors == [
        {"loc": ["body", "territory_id"], "msg": "the territory 'ti-0001' is unknown to the territory registry"}
    ]
    await refused(409, put(uow, body(area_ha="3"), effective_at=EARLIER - timedelta(hours=1)))
    assert uow.events == [] and uow.repo.versions == {} and set(uow.repo.sites) == {SITE}
    assert uow.repo.sites[SITE].version == 1


async def test_effective_at_dates_the_version_and_its_event() -> None:
    uow = uow_with(stored(version=1))
    later = EARLIER + timedelta(days=2)
    result = await put(uow, body(area_ha="3"), effective_at=later)
    assert result.entity.updated_at == later and uow.events[0].time == later
    assert uow.repo.versions[(SITE, 2)].changed_at == later


async def test_write_change_refuses_a_decision_that_changes_nothing() -> None:
    current = stored()
    with pytest.raises(ValueError, match="changes nothing"):
        await service.write_change(uow_with(current), decide_write(current, body(), site_id=SITE, at=FAKE_NOW), actor="x")


# --- import ---------------------------------------------------------------------------------------


async def test_an_atomic_import_with_a_rejected_row_writes_nothing_and_keeps_no_report() -> None:
    uow = uow_with()
    result = await service.import_sites(uow, WRITER, csv(ARLES, BAD_AREA, UNKNOWN_TERRITORY), mode="atomic", effective_at=None)
    assert (result.status, result.changed, result.location) == (422, False, None)
    report = result.entity
    assert (report.id, report.status, report.row_count, report.actor) == (None, "refused", 3, "site-owner")
    assert [(r.row, r.outcome) for r in report.rows] == [(2, "unchanged"), (3, "rejected"), (4, "rejected")]
    assert result.problem is not None and result.problem.kind == "import-refused"
    assert [e["loc"] for e in result.problem.errors or []] == [["body", 3, "site_surf_brute"], ["body", 4, "territory_id"]]
    assert result.problem.extensions == {"report": report.model_dump(mode="json")}
    assert uow.repo.sites == {} and uow.repo.imports == {} and uow.events == []


async def test_a_partial_import_writes_the_valid_rows_and_keeps_its_report() -> None:
    uow = uow_with()
    result = await service.import_sites(uow, WRITER, csv(ARLES, AVIGNON, BAD_AREA), mode="partial", effective_at=None)
    report = result.entity
    assert (result.status, result.created, report.status) == (201, True, "applied")
    assert report.id is not None and result.location == f"/v1/sites/imports/{report.id}"
    assert report.counts.model_dump() == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert uow.repo.imports == {report.id: report.model_dump(mode="json")}
    avignon = uow.repo.sites["84007_SITE-ECO_00002"]
    assert (avignon.maturity, avignon.owner_kind, avignon.territory_id, str(avignon.area_ha)) == (
        "short_term", "collectivite", None, "12.50",
    )
    assert [e.subject for e in uow.events] == ["13004_SITE-ECO_00001", "84007_SITE-ECO_00002"]
    assert result.event_ids == tuple(e.id for e in uow.events)
    assert await service.get_site_import(uow.repo, report.id) == report.model_dump(mode="json")
    await refused(404, service.get_site_import(uow.repo, "no-such-import"))


async def test_reimporting_changes_nothing_and_an_update_is_reported_with_its_version() -> None:
    uow = uow_with()
    await service.import_sites(uow, WRITER, csv(ARLES, AVIGNON), mode="atomic", effective_at=None)
    events = len(uow.events)
    again = await service.import_sites(uow, WRITER, csv(ARLES, AVIGNON.replace("12,5", "13")), mode="atomic", effective_at=None)
    assert [(r.outcome, r.version) for r in again.entity.rows] == [("unchanged", 1), ("updated", 2)]
    assert again.status == 201 and len(uow.events) == events + 1 and uow.events[-1].type == EVENT_OF_CHANGE["updated"].type


async def test_a_back_dated_import_row_before_the_current_version_is_rejected() -> None:
    uow = uow_with(stored("84007_SITE-ECO_00002", commune_insee="84007"))
    earlier = EARLIER - timedelta(days=1)
    result = await service.import_sites(uow, WRITER, csv(ARLES, AVIGNON), mode="partial", effective_at=earlier)
    assert [r.outcome for r in result.entity.rows] == ["created", "rejected"]
    assert result.entity.rows[1].errors[0].column is None and "TI-Effective-At" in result.entity.rows[1].errors[0].msg
    assert uow.repo.sites["13004_SITE-ECO_00001"].updated_at == earlier and uow.events[0].time == earlier


async def test_a_file_without_rows_or_a_required_column_is_refused() -> None:
    uow = uow_with()
    await refused(422, service.import_sites(uow, WRITER, csv(), mode="atomic", effective_at=None))
    no_name = Upload(b"site_id;site_comm_insee\nS-1;13004\n", "text/csv")
    problem = await refused(422, service.import_sites(uow, WRITER, no_name, mode="atomic", effective_at=None))
    assert problem.errors == [
        {"loc": ["header", "site_nom"], "msg": "column site_nom is missing"},
        {"loc": ["header", "site_surf_brute"], "msg": "column site_surf_brute is missing"},
    ]


# --- reads --------------------------------------------------------------------------------------


async def test_reads_answer_404_for_an_unknown_site() -> None:
    repo = FakeRepository(stored())
    assert (await service.get_site(repo, SITE)).version == 1
    assert (await refused(404, service.get_site(repo, "S-none"))).detail == "No site 'S-none'"
    await refused(404, service.get_site_history(repo, "S-none", limit=10, cursor="not-a-cursor"))  # 404 first


async def test_lists_filter_and_page_with_cursors() -> None:
    repo = FakeRepository(
        stored("S-arles"),
        stored("S-avignon", commune_insee="84007"),
        stored("S-bourg", commune_insee="01053", territory_id="ti-8402"),
        stored("S-corse", commune_insee="2A004", territory_id=None, status="withdrawn"),
    )

    async def ids(limit: int = 10, cursor: str | None = None, **where: Any) -> tuple[list[str], str | None]:
        page = await service.list_sites(repo, **{**ANY_SITE, **where}, limit=limit, cursor=cursor)
        return [s.id for s in page.items], page.next_cursor

    assert await ids(region_code="93") == (["S-arles", "S-avignon"], None)
    assert await ids(territory_id="ti-8402") == (["S-bourg"], None)
    assert await ids(status="withdrawn", departement_code="2A") == (["S-corse"], None)
    first, cursor = await ids(limit=3)
    assert first == ["S-arles", "S-avignon", "S-bourg"] and cursor is not None
    assert await ids(limit=3, cursor=cursor) == (["S-corse"], None)
    bad = await refused(422, service.list_sites(repo, **ANY_SITE, limit=3, cursor=encode_cursor([2])))
    assert bad.errors == [{"loc": ["query", "cursor"], "msg": "is not a cursor this API produced"}]


async def test_history_pages_every_version_oldest_first() -> None:
    uow = uow_with()
    await put(uow, body())
    await put(uow, body(maturity="short_term"))
    await put(uow, body(maturity="short_term", status="withdrawn"))
    page = await service.get_site_history(uow.repo, SITE, limit=2, cursor=None)
    assert [(v.version, v.change) for v in page.items] == [(1, "labelled"), (2, "updated")] and page.next_cursor
    rest = await service.get_site_history(uow.repo, SITE, limit=2, cursor=page.next_cursor)
    assert [v.change for v in rest.items] == ["withdrawn"] and rest.next_cursor is None
    assert rest.items[0].site == uow.repo.sites[SITE]
    await refused(422, service.get_site_history(uow.repo, SITE, limit=2, cursor=encode_cursor([SITE])))


def test_the_body_fields_are_the_contract_ones() -> None:
    # and the CNIG values kept as written (optional)
    assert set(BODY_FIELDS) == set(SITE_EXAMPLE) | {"cnig"}
