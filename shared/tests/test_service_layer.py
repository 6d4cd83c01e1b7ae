"""The service-layer vocabulary (``ti_shared.service``) and its in-memory fakes, on a toy service
written the way docs/conventions.md asks every write service to be written."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel
from ti_shared.auth import Principal
from ti_shared.events import TOPIC_SITES, NewEvent, event_type
from ti_shared.fakes import NO_SESSION, FakeUnitOfWork
from ti_shared.http import check_if_match, write_response
from ti_shared.problems import Problem
from ti_shared.service import Decision, Repository, Uow, WriteResult

# --- a toy service: domain, repository, service -----------------------------------------------


class Site(BaseModel):
    id: str
    name: str
    version: int


Change = Literal["labelled", "updated"]
EVENT_OF_CHANGE: dict[Change, str] = {c: event_type("site", c) for c in ("labelled", "updated")}


def decide_write(current: Site | None, site_id: str, name: str) -> Decision[Change, Site]:
    if current is None:
        return Decision("labelled", Site(id=site_id, name=name, version=1), ("name",))
    if current.name == name:
        return Decision(None, current)
    return Decision("updated", current.model_copy(update={"name": name, "version": current.version + 1}), ("name",))


class SiteRepository(Repository):
    async def get_site(self, site_id: str, *, for_update: bool = False) -> Site | None:
        raise NotImplementedError("a real query in the real repository")

    async def save_site(self, site: Site) -> None:
        raise NotImplementedError

    async def count_sites(self) -> int:
        raise NotImplementedError


async def put_site(
    uow: Uow[SiteRepository], principal: Principal, site_id: str, name: str, *, if_match: str | None
) -> WriteResult[Site]:
    current = await uow.repo.get_site(site_id, for_update=True)
    check_if_match(if_match, current.version if current else None)
    decision = decide_write(current, site_id, name)
    site = decision.entity
    if not decision.changed:
        return WriteResult(site, changed=False, version=site.version)
    assert decision.change is not None
    await uow.repo.save_site(site)
    event = await uow.record(
        topic=TOPIC_SITES, type_=EVENT_OF_CHANGE[decision.change], subject=site_id, version=site.version,
        actor=principal.sub, data=site.model_dump(mode="json"),
    )
    return WriteResult(site, created=site.version == 1, version=site.version, event_ids=(event.id,),
                       location=f"/v1/sites/{site_id}" if site.version == 1 else None)


# --- its unit tests, with the fakes ------------------------------------------------------------


class FakeSiteRepository(SiteRepository):
    def __init__(self, *sites: Site) -> None:
        super().__init__(NO_SESSION)
        self.sites = {s.id: s for s in sites}

    async def get_site(self, site_id: str, *, for_update: bool = False) -> Site | None:
        return self.sites.get(site_id)

    async def save_site(self, site: Site) -> None:
        self.sites[site.id] = site


ANCT = Principal(sub="anct", scopes=frozenset({"admin"}))


async def test_a_new_site_is_created_with_its_event() -> None:
    uow = FakeUnitOfWork(FakeSiteRepository())
    result = await put_site(uow, ANCT, "S-1", "Port fluvial", if_match=None)
    assert (result.status, result.created, result.version, result.location) == (201, True, 1, "/v1/sites/S-1")
    assert uow.repo.sites["S-1"].name == "Port fluvial"
    assert [(e.type, e.subject, e.entityversion, e.tiactor) for e in uow.events] == [
        (EVENT_OF_CHANGE["labelled"], "S-1", 1, "anct")
    ]
    assert result.event_ids == (uow.events[0].id,) and uow.topic_of[uow.events[0].id] == TOPIC_SITES
    assert uow.events[0].time == uow.now


async def test_the_same_state_changes_nothing_and_if_match_is_checked() -> None:
    uow = FakeUnitOfWork(FakeSiteRepository(Site(id="S-1", name="Port", version=3)))
    unchanged = await put_site(uow, ANCT, "S-1", "Port", if_match='W/"3"')
    assert (unchanged.status, unchanged.changed, unchanged.version) == (200, False, 3) and uow.events == []
    with pytest.raises(Problem) as stale:
        await put_site(uow, ANCT, "S-1", "Quai", if_match='W/"2"')
    assert stale.value.status == 412 and uow.events == []


async def test_a_query_the_fake_does_not_fake_fails_naming_itself() -> None:
    repo = FakeSiteRepository()
    with pytest.raises(NotImplementedError):
        await repo.count_sites()
    with pytest.raises(AssertionError, match="execute"):
        await repo.session.execute(None)  # type: ignore[call-overload]


async def test_record_many_records_every_event_in_order() -> None:
    uow = FakeUnitOfWork(FakeSiteRepository())
    ids = await uow.record_many([NewEvent(TOPIC_SITES, EVENT_OF_CHANGE["updated"], f"S-{i}", 2, "batch", {"i": i}) for i in range(3)])
    assert ids == [e.id for e in uow.events] and [e.subject for e in uow.events_of("S-1")] == ["S-1"]


# --- the route's side: WriteResult → HTTP ------------------------------------------------------


def test_write_response_gives_status_etag_location_and_body() -> None:
    created = write_response(WriteResult(Site(id="S-1", name="Port", version=1), created=True, version=1, location="/v1/sites/S-1"))
    assert created.status_code == 201 and created.headers["etag"] == 'W/"1"' and created.headers["location"] == "/v1/sites/S-1"
    assert json.loads(bytes(created.body)) == {"id": "S-1", "name": "Port", "version": 1}
    assert created.headers["content-type"] == "application/json"
    report = write_response(WriteResult({"rows": []}))
    assert report.status_code == 200 and "etag" not in report.headers


def test_write_response_of_a_refusal_is_its_problem_document() -> None:
    problem = Problem(422, "2 rows rejected", kind="import-rejected", instance="/v1/sites/imports/x", extensions={"report": {"rows": 2}})
    refused = write_response(WriteResult({"rows": 2}, problem=problem, location="/v1/sites/imports/x"))
    body = json.loads(bytes(refused.body))
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("import-rejected") and body["instance"] == "/v1/sites/imports/x" and body["report"] == {"rows": 2}
    assert refused.headers["location"] == "/v1/sites/imports/x"
