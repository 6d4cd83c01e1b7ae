"""The use cases of the editions: freeze, read, sign, and list restatements.

Freezing reads, in the request's transaction, the sources' high-water marks and the entity versions
as of the instant *first*, then generates the Bilan through the public API (``GET /v1/indicators``
in process, as the dashboard does) and keeps its bytes: an event applied in between is then counted
as later than the edition, so a figure it changed is listed as a restatement, never lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from ti_shared.auth import Principal
from ti_shared.http import decode_cursor, encode_cursor
from ti_shared.problems import Problem, field_problem
from ti_shared.service import Uow, WriteResult

from reporting import engine
from reporting.dashboard import render
from reporting.dashboard.client import PlatformReader
from reporting.dashboard.pages import Links, scope_page
from reporting.domain import AsOf, Row, Scope, TerritoryRow, parse_as_of, parse_scope
from reporting.editions import domain
from reporting.editions.repository import EditionRepository, EntityKey, EntityState, keys_of
from reporting.editions.schemas import (
    Edition,
    EditionBody,
    EditionPage,
    EditionSummary,
    Part,
    ResponsibleEvent,
    Restatement,
    Restatements,
    SignOff,
    SignOffBody,
    Source,
)
from reporting.rebuild import LIVE_CONSUMER

__all__ = [
    "EditionRepository", "freeze_edition", "get_edition", "get_edition_part", "list_editions", "list_restatements",
    "sign_edition",
]

PREFIX = "/v1/reports/editions"


def _problem(exc: domain.EditionRefused) -> Problem:
    return field_problem(exc.loc, str(exc)) if exc.loc is not None else Problem(exc.status, str(exc))


class RecordingReader(PlatformReader):
    """The public API as the Bilan reads it, keeping the exact bytes of one indicators response."""

    def __init__(self, inner: PlatformReader, scope: str, as_of: str) -> None:
        super().__init__(inner.reporting, inner.registry, inner.notices)
        self.wanted = (scope, as_of)
        self.document: bytes | None = None

    async def indicators(self, scope: str, as_of: str | None = None) -> dict[str, Any]:
        if (scope, as_of) != self.wanted:
            return await super().indicators(scope, as_of)
        response = await self.reporting.get("/v1/indicators", params={"scope": scope, "as_of": as_of})
        if response.status_code != 200:
            return await super().indicators(scope, as_of)  # the reader's own error for the page
        self.document = response.content
        document: dict[str, Any] = orjson.loads(response.content)
        return document


def _parse(body: EditionBody) -> tuple[Scope, AsOf]:
    try:
        scope = parse_scope(body.scope)
    except ValueError as exc:
        raise field_problem(["body", "scope"], str(exc)) from exc
    try:
        as_of = parse_as_of(body.as_of)
    except ValueError as exc:
        raise field_problem(["body", "as_of"], str(exc)) from exc
    return scope, as_of


def covered_territories(scope: Scope, states: list[EntityState]) -> list[str]:
    """The territories a scope covers as of the instant (any status)."""
    territories = [s.row for s in states if isinstance(s.row, TerritoryRow)]
    if scope.kind == "territory":
        return [t.id for t in territories if t.id == scope.code]
    return sorted(t.id for t in territories if scope.kind == "national" or t.region_code == scope.code)


async def freeze_edition(
    uow: Uow[EditionRepository], principal: Principal, body: EditionBody, *, reader: PlatformReader, root: str
) -> WriteResult[Edition]:
    scope, as_of = _parse(body)
    try:
        domain.check_freezable(as_of, uow.now)
    except domain.EditionRefused as exc:
        raise _problem(exc) from exc
    repo = uow.repo
    sources = await repo.source_marks(LIVE_CONSUMER)
    generation = await repo.live_generation()
    states = await repo.states_as_of(generation, as_of)
    recording = RecordingReader(reader, scope.key, as_of.label)
    page = await scope_page(recording, Links(root=root, as_of=as_of.label), scope.key)
    if recording.document is None:  # pragma: no cover - the page always reads its own scope
        raise Problem(503, "The indicators of the edition could not be read")
    parts = {
        "indicators": recording.document,
        "html": render.bilan_html(page).encode(),
        "pdf": await asyncio.to_thread(render.bilan_pdf, page),  # CPU-bound: off the event loop
    }
    edition_id = str(uuid.uuid4())
    values = {
        "id": edition_id, "name": body.name, "scope": scope.key, "as_of": as_of.label,
        "as_of_instant": as_of.instant, "as_of_inclusive": as_of.inclusive, "frozen_at": uow.now,
        "frozen_by": principal.sub, "generation": generation, **parts,
        "content_hash": domain.content_hash(parts),
        "digests": {name: {"sha256": domain.sha256(data), "bytes": len(data)} for name, data in parts.items()},
        "sources": sources, "territories": covered_territories(scope, states), "final_at": None,
    }
    await repo.insert_edition(values, keys_of(states))
    edition = await get_edition(repo, edition_id)
    return WriteResult(edition, created=True, location=f"{PREFIX}/{edition_id}")


async def _found(repo: EditionRepository, edition_id: str, *, for_update: bool = False) -> dict[str, Any]:
    row = await repo.get_edition(edition_id, for_update=for_update)
    if row is None:
        raise Problem(404, f"No edition '{edition_id}'")
    return row


def _sign_off(row: dict[str, Any]) -> SignOff:
    return SignOff(role=row["role"], territory_id=row["territory_id"], actor=row["actor"], signed_at=row["signed_at"],
                   comment=row["comment"])


async def get_edition(repo: EditionRepository, edition_id: str) -> Edition:
    row = await _found(repo, edition_id)
    href = f"{PREFIX}/{edition_id}"
    indicators = await repo.get_edition_part(edition_id, "indicators")
    assert indicators is not None
    digests = row["digests"]
    return Edition(
        id=row["id"], name=row["name"], scope=row["scope"], as_of=row["as_of"], frozen_at=row["frozen_at"],
        frozen_by=row["frozen_by"], content_hash=row["content_hash"],
        parts={
            name: Part(
                media_type=domain.MEDIA_TYPES[name], sha256=digests[name]["sha256"], bytes=digests[name]["bytes"],
                href=f"{href}/indicators" if name == "indicators" else f"{href}/bilan?format={name}",
            )
            for name in domain.PARTS
        },
        sources=[Source.model_validate(s) for s in row["sources"]],
        territories=list(row["territories"]),
        sign_offs=[_sign_off(s) for s in await repo.list_sign_offs(edition_id)],
        final=row["final_at"] is not None, final_at=row["final_at"],
        restatements_href=f"{href}/restatements",
        indicators=orjson.loads(indicators),
    )


@dataclass(frozen=True)
class FrozenPart:
    body: bytes
    media_type: str
    etag: str


async def get_edition_part(repo: EditionRepository, edition_id: str, part: str) -> FrozenPart:
    body = await repo.get_edition_part(edition_id, part)
    if body is None:
        raise Problem(404, f"No edition '{edition_id}'")
    return FrozenPart(body, domain.MEDIA_TYPES[part], f'"{domain.sha256(body)}"')


async def list_editions(repo: EditionRepository, *, cursor: str | None, limit: int) -> EditionPage:
    keys = decode_cursor(cursor, (str, str))
    after = (datetime.fromisoformat(keys[0]), keys[1]) if keys is not None else None
    rows = await repo.list_editions(after=after, limit=limit + 1)
    items = [
        EditionSummary(id=r["id"], name=r["name"], scope=r["scope"], as_of=r["as_of"], frozen_at=r["frozen_at"],
                       content_hash=r["content_hash"], final=r["final_at"] is not None, href=f"{PREFIX}/{r['id']}")
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return EditionPage(items=items, next_cursor=encode_cursor([last["frozen_at"].isoformat(), last["id"]]) if last else None)


async def sign_edition(uow: Uow[EditionRepository], principal: Principal, edition_id: str, body: SignOffBody) -> WriteResult[SignOff]:
    repo = uow.repo
    row = await _found(repo, edition_id, for_update=True)
    try:
        signer = domain.signer_of(
            is_admin=principal.is_admin, own_territories=principal.territories, territory_id=body.territory_id,
            covered=row["territories"], final=row["final_at"] is not None,
        )
    except domain.EditionRefused as exc:
        raise _problem(exc) from exc
    signed = await repo.list_sign_offs(edition_id)
    for existing in signed:
        if (existing["role"], existing["territory_id"], existing["actor"]) == (signer.role, signer.territory_id, principal.sub):
            return WriteResult(_sign_off(existing), changed=False)  # already signed: nothing changes
    values = {
        "edition_id": edition_id, "seq": len(signed) + 1, "role": signer.role, "territory_id": signer.territory_id,
        "actor": principal.sub, "signed_at": uow.now, "comment": body.comment,
    }
    await repo.add_sign_off(values)
    if signer.role == "admin":
        await repo.update_edition_final(edition_id, uow.now)
    return WriteResult(_sign_off(values), created=True, location=f"{PREFIX}/{edition_id}")


# --- restatements ----------------------------------------------------------------------------------


def indicators_of(rows: Iterable[Row], scope: str) -> dict[str, Any]:
    """The indicators of a scope over a set of entity states: the reporting engine, as ``as_of`` uses it."""
    return engine.indicators(rows, scope)


async def list_restatements(repo: EditionRepository, edition_id: str, *, now: datetime) -> Restatements:
    """The figures of an edition that differ, as of its instant, from what the engine computes now,
    each with the published value, the value now and the events responsible: those applied after
    the freeze and dated on or before the instant (back-dated writes, or events still on their way
    when it was frozen)."""
    row = await _found(repo, edition_id)
    as_of = AsOf(row["as_of_instant"], row["as_of_inclusive"], row["as_of"])
    frozen = await repo.get_edition_part(edition_id, "indicators")
    assert frozen is not None
    published: dict[str, Any] = orjson.loads(frozen)["indicators"]
    generation = await repo.live_generation()
    states = await repo.states_as_of(generation, as_of)
    current = {(s.entity, s.row.id): s for s in states}
    figures = domain.changed_figures(published, indicators_of((s.row for s in states), row["scope"]))
    out = Restatements(edition_id=edition_id, scope=row["scope"], as_of=row["as_of"], computed_at=now, items=[])
    if not figures:
        return out
    counted = await repo.get_edition_versions(edition_id)
    changed = {k for k in counted.keys() | current.keys() if counted.get(k) != (current[k].row.version if k in current else None)}
    old = await repo.rows_at_versions(generation, {k: counted[k] for k in changed if k in counted})
    responsible = domain.responsible_entities(
        [(code, key) for code, key, _, _ in figures],
        {k: s.row for k, s in current.items()},
        {k: old.get(k) for k in changed},
        lambda rows: indicators_of(rows, row["scope"]),
    )

    def event(key: EntityKey) -> ResponsibleEvent | None:
        state = current.get(key)
        if state is None:
            return None
        return ResponsibleEvent(entity=key[0], subject=key[1], published_version=counted.get(key),  # type: ignore[arg-type]
                                version=state.row.version, time=state.time, event_id=state.event_id)

    for code, key, was, value in figures:
        events = [e for k in sorted(responsible[(code, key)]) if (e := event(k)) is not None]
        out.items.append(Restatement(code=code, key=key, published=was, now=value, events=events))
    return out
