"""The write plumbing every write service uses: ``idempotent``, ``read_upload``, the unit of work's
409 on a lost race, ``record_many`` and ``UtcDateTime`` (SQLite, and PostgreSQL where it matters)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from ti_shared.app import ServiceContext, ServiceSpec, UowDep, create_service_app
from ti_shared.auth import Principal, scoped
from ti_shared.db import Database, Instant, idempotency_record, infra_metadata, outbox_message
from ti_shared.events import TOPIC_TERRITORIES, CloudEvent, NewEvent, event_type
from ti_shared.http import CSV_TYPES, MULTIPART, XLSX_TYPE, DryRunQuery, TiRoute, accepts
from ti_shared.idempotency import IdempotencyKeyHeader, idempotent, is_stored, owner_of
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem
from ti_shared.service import WriteResult
from ti_shared.settings import PlatformSettings, ServiceSettings
from ti_shared.testing import bearer, create_database, drop_database, running
from ti_shared.uploads import read_upload

metadata = sa.MetaData()
thing = sa.Table(
    "thing",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("at", Instant, nullable=False),
    # deferred on PostgreSQL: a duplicate label is only found by the commit
    sa.UniqueConstraint("label", name="uq_thing_label", deferrable=True, initially="DEFERRED").ddl_if(dialect="postgresql"),
)
UPDATED = event_type("territory", "updated")
Writer = Annotated[Principal, scoped("territories:write")]
router = APIRouter(route_class=TiRoute)


async def _insert(uow: Any, thing_id: str, label: str) -> None:
    await uow.session.execute(thing.insert().values(id=thing_id, label=label, at=uow.now))
    await uow.record(topic=TOPIC_TERRITORIES, type_=UPDATED, subject=thing_id, version=1, actor="t", data={"id": thing_id})


@router.post("/v1/things/{thing_id}", status_code=201)
async def post_thing(
    thing_id: str,
    request: Request,
    uow: UowDep,
    principal: Writer,
    answer: Annotated[str, Query()] = "created",
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async with idempotent(uow, request, principal, idempotency_key) as idem:
        if idem.replay is not None:
            return idem.replay
        await _insert(uow, thing_id, thing_id)
        if answer == "refused":  # an atomic import refused with its report: returned, the record kept
            problem = Problem(422, "refused", kind="import-refused", extensions={"report": {"rows": 1}})
            return await idem.commit(JSONResponse(problem.body(request.url.path), 422, media_type=PROBLEM_MEDIA_TYPE))
        if answer.isdigit():
            raise Problem(int(answer), f"answered {answer}")
        if answer == "crash":
            raise RuntimeError("the effect crashed")
        response = JSONResponse({"id": thing_id, "at": uow.now.isoformat()}, status_code=201, headers={"Location": f"/v1/things/{thing_id}"})
        return await idem.commit(response)


@router.post("/v1/thing-imports")
async def import_things(
    request: Request,
    uow: UowDep,
    principal: Writer,
    rows: Annotated[int, Query()] = 2,
    prefix: Annotated[str, Query()] = "t",
    dry_run: DryRunQuery = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async with idempotent(uow, request, principal, idempotency_key, dry_run=dry_run) as idem:
        if idem.replay is not None:
            return idem.replay
        for i in range(rows):
            await _insert(uow, f"{prefix}-{i}", f"{prefix}-{i}")
        report = {"created": rows, "rejected": 1}
        refused = Problem(422, "one row rejected", kind="import-refused", extensions={"report": report})
        return await idem.finish(WriteResult(report, created=True, location="/x", problem=refused if rows == 0 else None), request)


@router.put("/v1/things/{thing_id}")
async def put_thing(thing_id: str, uow: UowDep, label: Annotated[str, Query()]) -> dict[str, str]:
    await _insert(uow, thing_id, label)
    await uow.commit()
    return {"id": thing_id}


@router.post("/v1/thing-batches")
async def post_batch(uow: UowDep, n: Annotated[int, Query()]) -> dict[str, list[str]]:
    events = [NewEvent(TOPIC_TERRITORIES, UPDATED, f"b-{i}", 1, "batcher", {"i": i}) for i in range(n)]
    ids = await uow.record_many(events)
    await uow.commit()
    return {"ids": ids}


@router.post("/v1/uploads", openapi_extra=accepts(*CSV_TYPES, XLSX_TYPE, MULTIPART, max_body_bytes=4096))
async def upload(request: Request) -> dict[str, Any]:
    found = await read_upload(request, max_bytes=1024)
    return {"media_type": found.media_type, "size": len(found.data), "filename": found.filename, "charset": found.charset}


async def create_tables(ctx: ServiceContext) -> None:
    async with ctx.db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
        await conn.run_sync(metadata.create_all)


SPEC = ServiceSpec(
    name="plumbing",
    title="Plumbing",
    description="Test service",
    routers=[router],
    metadata=metadata,
    migrations_dir=Path(__file__).parent / "no-migrations",
    on_startup=[create_tables],
)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PlatformSettings, Database]]:
    platform = PlatformSettings(env="test", bus="local", var_dir=tmp_path, migrate_on_start=False, relay_idle_seconds=0.05)
    url = f"sqlite+aiosqlite:///{tmp_path / 'plumbing.db'}"
    db = Database(url)
    app = create_service_app(SPEC, ServiceSettings(name="plumbing", database_url=url, platform=platform))
    # the probe route answers any status it is asked for (?answer=412): no document describes that
    async with running(app, validate=False) as c:
        yield c, platform, db
    await db.dispose()


async def count(db: Database, table: sa.Table) -> int:
    async with db.session() as session:
        return int((await session.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# --- idempotent -------------------------------------------------------------------------------


def test_the_storage_policy() -> None:
    assert [s for s in (200, 201, 400, 403, 404, 409, 412, 413, 422, 429, 500, 503) if is_stored(s)] == [
        200, 201, 400, 403, 404, 413, 422,
    ]


def test_the_owner_is_the_sub_and_its_operator() -> None:
    assert owner_of(Principal(sub="anct")) == "anct"
    assert owner_of(Principal(sub="push", operator="ADEME")) != owner_of(Principal(sub="push", operator="BPI"))
    assert len(owner_of(Principal(sub="x" * 300))) <= 256


async def test_a_stored_answer_is_replayed_and_its_effect_happens_once(service: Any) -> None:
    c, platform, db = service
    h = {**bearer(platform, "anct", "territories:write"), "Idempotency-Key": "k-1"}
    first = await c.post("/v1/things/a", headers=h)
    again = await c.post("/v1/things/a", headers=h)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["location"] == "/v1/things/a"
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await count(db, thing) == 1 and await count(db, outbox_message) == 1
    other_query = await c.post("/v1/things/a?answer=created&x=1", headers=h)
    assert other_query.status_code == 422 and other_query.json()["type"].endswith("idempotency-key-reused")
    other_path = await c.post("/v1/things/b", headers=h)
    assert other_path.status_code == 422
    back_dated = await c.post("/v1/things/a", headers={**h, "TI-Effective-At": "2024-01-01T00:00:00Z"})
    assert back_dated.status_code == 422  # another request (an admin's would be, anyway)
    for_operator = await c.post("/v1/things/c", headers={**bearer(platform, "anct", "territories:write", operator="ADEME"), "Idempotency-Key": "k-1"})
    assert for_operator.status_code == 201  # the same sub acting for an operator: another key space


@pytest.mark.parametrize("answer", ["refused", "404", "422", "403"])
async def test_a_deterministic_refusal_is_stored_and_changes_nothing(service: Any, answer: str) -> None:
    c, platform, db = service
    h = {**bearer(platform, "anct", "territories:write"), "Idempotency-Key": "k-" + answer}
    first = await c.post(f"/v1/things/a?answer={answer}", headers=h)
    again = await c.post(f"/v1/things/a?answer={answer}", headers=h)
    assert first.status_code == again.status_code and first.status_code in (403, 404, 422)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"] == PROBLEM_MEDIA_TYPE
    if answer == "refused":
        assert first.json()["report"] == {"rows": 1}
        assert await count(db, thing) == 1  # a returned refusal commits what the effect wrote (a batch's report)
    else:
        assert await count(db, thing) == 0 and await count(db, outbox_message) == 0


@pytest.mark.parametrize(("answer", "status"), [("409", 409), ("412", 412), ("crash", 500), ("503", 503)])
async def test_a_retryable_failure_releases_the_key(service: Any, answer: str, status: int) -> None:
    c, platform, db = service
    h = {**bearer(platform, "anct", "territories:write"), "Idempotency-Key": "k-" + answer}
    failed = await c.post(f"/v1/things/a?answer={answer}", headers=h)
    assert failed.status_code == status and "idempotent-replayed" not in failed.headers
    assert await count(db, thing) == 0 and await count(db, idempotency_record) == 0
    again = await c.post(f"/v1/things/a?answer={answer}", headers=h)
    assert again.status_code == status and "idempotent-replayed" not in again.headers  # ran again


async def test_a_claim_in_progress_answers_409_until_it_goes_stale(service: Any) -> None:
    c, platform, db = service
    h = {**bearer(platform, "anct", "territories:write"), "Idempotency-Key": "busy"}
    first = await c.post("/v1/things/a", headers=h)
    async with db.session() as session:  # as if a first request were still running
        row = (await session.execute(sa.select(idempotency_record))).one()
        await session.execute(idempotency_record.update().values(state="in_progress", locked_at=datetime.now(UTC)))
        await session.commit()
    busy = await c.post("/v1/things/a", headers=h)
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    async with db.session() as session:
        await session.execute(idempotency_record.update().values(locked_at=datetime.now(UTC) - timedelta(minutes=5)))
        await session.commit()
    taken_over = await c.post("/v1/things/a", headers=h)  # the first one died: its effect was never committed here
    assert taken_over.status_code == 409 and taken_over.json()["type"].endswith("concurrent-write")
    assert first.status_code == 201 and row.owner == "anct"


async def test_without_a_key_the_block_just_commits(service: Any) -> None:
    c, platform, db = service
    h = bearer(platform, "anct", "territories:write")
    assert (await c.post("/v1/things/a", headers=h)).status_code == 201
    assert (await c.post("/v1/things/b?answer=404", headers=h)).status_code == 404
    assert await count(db, thing) == 1 and await count(db, idempotency_record) == 0


# --- dry runs --------------------------------------------------------------------------------


async def test_a_dry_run_answers_the_report_and_writes_nothing_nor_uses_the_key(service: Any) -> None:
    c, platform, db = service
    h = {**bearer(platform, "anct", "territories:write"), "Idempotency-Key": "dry-1"}
    dry = await c.post("/v1/thing-imports?dry_run=true", headers=h)
    assert dry.status_code == 200 and dry.json() == {"created": 2, "rejected": 1}
    assert "location" not in dry.headers and "idempotent-replayed" not in dry.headers
    assert await count(db, thing) == 0 and await count(db, outbox_message) == 0 and await count(db, idempotency_record) == 0
    refused = await c.post("/v1/thing-imports?dry_run=true&rows=0", headers=h)  # a real run would be a 422
    assert refused.status_code == 200 and refused.json()["rejected"] == 1
    real = await c.post("/v1/thing-imports", headers=h)  # the key was not consumed by the dry runs
    assert real.status_code == 201 and "idempotent-replayed" not in real.headers
    assert await count(db, thing) == 2 and await count(db, outbox_message) == 2
    again_dry = await c.post("/v1/thing-imports?dry_run=true&prefix=u", headers=h)  # nor is a used key looked at
    assert again_dry.status_code == 200 and "idempotent-replayed" not in again_dry.headers
    replayed = await c.post("/v1/thing-imports", headers=h)
    assert replayed.headers["idempotent-replayed"] == "true" and await count(db, thing) == 2


async def test_a_dry_run_that_would_commit_is_a_programming_error(service: Any) -> None:
    from ti_shared.idempotency import Idempotent

    idem = Idempotent(None, None, None, dry_run=True)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="dry run"):
        await idem.commit(Response())


# --- the unit of work -------------------------------------------------------------------------


async def test_a_lost_race_is_a_409_and_record_many_is_one_bulk_write(service: Any) -> None:
    c, _platform, db = service
    assert (await c.put("/v1/things/a?label=a")).status_code == 200
    duplicate = await c.put("/v1/things/a?label=other")  # the statement fails (primary key)
    assert duplicate.status_code == 409 and duplicate.json()["type"].endswith("concurrent-write")
    ids = (await c.post("/v1/thing-batches?n=3")).json()["ids"]
    async with db.session() as session:
        rows = (await session.execute(sa.select(outbox_message).order_by(outbox_message.c.id))).all()
    events = [CloudEvent.model_validate_json(r.payload) for r in rows[-3:]]
    assert [e.id for e in events] == ids and [e.subject for e in events] == ["b-0", "b-1", "b-2"]
    assert {e.tiactor for e in events} == {"batcher"} and events[0].data == {"i": 0}


async def test_a_race_lost_at_commit_is_a_409_on_postgresql() -> None:
    url = await create_database("write_plumbing")
    try:
        platform = PlatformSettings(env="test", bus="local", var_dir=Path("/tmp"), migrate_on_start=False)
        app = create_service_app(SPEC, ServiceSettings(name="plumbing", database_url=url, platform=platform))
        async with running(app) as c:
            assert (await c.put("/v1/things/a?label=same")).status_code == 200
            at_commit = await c.put("/v1/things/b?label=same")  # the deferred unique constraint: found by the commit
            assert at_commit.status_code == 409 and at_commit.json()["type"].endswith("concurrent-write")
            at_statement = await c.put("/v1/things/a?label=x")
            assert at_statement.status_code == 409
    finally:
        await drop_database(url)


# --- UtcDateTime ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_instants_are_aware_utc_in_and_out(backend: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'utc.db'}" if backend == "sqlite" else await create_database("utc_datetime")
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        paris = datetime(2024, 6, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
        async with db.session() as session:
            await session.execute(thing.insert().values(id="a", label="a", at=paris))
            await session.commit()
            at = (await session.execute(sa.select(thing.c.at))).scalar_one()
            assert at == paris and at.tzinfo is UTC and at.hour == 9
            with pytest.raises(sa.exc.StatementError, match="naive"):
                await session.execute(thing.insert().values(id="b", label="b", at=datetime(2024, 6, 1)))
    finally:
        await db.dispose()
        if backend == "postgresql":
            await drop_database(url)


# --- read_upload ------------------------------------------------------------------------------


async def test_one_upload_reader_for_bodies_and_multipart(service: Any) -> None:
    c, _platform, _db = service
    csv = b"a;b\n1;2\n"
    body = await c.post("/v1/uploads", content=csv, headers={"content-type": "text/csv; charset=ISO-8859-1"})
    assert body.json() == {"media_type": "text/csv", "size": len(csv), "filename": None, "charset": "iso-8859-1"}
    part = await c.post("/v1/uploads", files={"file": ("plan.xlsx", b"PK\x03\x04rest", "application/octet-stream")})
    assert part.json()["media_type"] == XLSX_TYPE and part.json()["filename"] == "plan.xlsx"  # told by its name
    refusals = [
        (await c.post("/v1/uploads", files={"other": ("a.csv", csv, "text/csv")}), 422, ["body", "file"]),
        (await c.post("/v1/uploads", files={"file": ("a.png", csv, "image/png")}), 415, None),
        (await c.post("/v1/uploads", files={"file": ("a.csv", b"x" * 2000, "text/csv")}), 413, None),
        (await c.post("/v1/uploads", files={"file": ("a.csv", "a;b\n".encode("utf-16"), "text/csv")}), 422, None),
        (await c.post("/v1/uploads", files={"file": ("a.csv", b" \n", "text/csv")}), 422, ["body"]),
        (await c.post("/v1/uploads", content=csv, headers={"content-type": "text/csv; charset=utf-16"}), 415, None),
    ]
    for response, status, loc in refusals:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        if loc is not None:
            assert json.loads(response.text)["errors"][0]["loc"] == loc
