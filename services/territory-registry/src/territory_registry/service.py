"""The registry's use cases: writing a territory, importing ANCT's files, and the reads.

Functions of the unit of work (or the read repository), the principal and plain values; the routes
of ``api.py`` translate HTTP to these calls and their results back (docs/conventions.md).
"""

from __future__ import annotations

from datetime import datetime

from ti_shared.auth import Principal
from ti_shared.geo import DEPARTEMENTS, REGIONS
from ti_shared.http import Page, check_if_match, check_not_before, cursor_after, page_of
from ti_shared.imports import import_table
from ti_shared.problems import Problem, field_problem, validation_problem
from ti_shared.service import Uow, WriteResult
from ti_shared.tabular import read_sheet
from ti_shared.uploads import Upload

from territory_registry.domain import Decision, decide_write, territory_problems
from territory_registry.events import EVENT_OF_CHANGE
from territory_registry.imports import (
    COMMUNE_LIST,
    GROUPEMENT_LIST,
    TERRITORY_LIST,
    Candidate,
    commune_list_candidates,
    file_territory_ids,
    groupement_candidates,
    is_commune_list,
    territory_candidates,
)
from territory_registry.repository import Repository as Repository  # re-exported: the routes' dependencies name it
from territory_registry.schemas import (
    Departement,
    ImportCounts,
    ImportKind,
    ImportLayout,
    ImportMode,
    ImportReport,
    ImportRowReport,
    Region,
    RowError,
    RowOutcome,
    Territory,
    TerritoryFields,
    TerritoryStatus,
    TerritoryVersion,
)

#: data rows of one imported file (ANCT's files have a few hundred)
MAX_IMPORT_ROWS = 20_000


# --- writing one territory -------------------------------------------------------------------


async def write_change(uow: Uow[Repository], decision: Decision, *, actor: str) -> str:
    """The territory's row (inserted or updated), its history row and its event; the event's id."""
    change, resource = decision.change, decision.entity
    if change is None:
        raise ValueError("nothing to write: the decision changes nothing")
    if change == "registered":
        await uow.repo.insert_territory(resource, actor=actor)
    else:
        await uow.repo.update_territory(resource, actor=actor)
    await uow.repo.add_territory_version(decision, actor=actor, recorded_at=uow.now)
    spec = EVENT_OF_CHANGE[change]
    event = await uow.record(
        topic=spec.topic,
        type_=spec.type,
        subject=resource.id,
        version=resource.version,
        actor=actor,
        data=resource.model_dump(mode="json"),
        time=resource.updated_at,
    )
    return event.id


async def put_territory(
    uow: Uow[Repository],
    principal: Principal,
    territory_id: str,
    body: TerritoryFields,
    *,
    effective_at: datetime | None,
    if_match: str | None,
) -> WriteResult[Territory]:
    """Register a territory or replace its state; the same state changes nothing (same version, no event)."""
    problems = territory_problems(body)
    if problems:
        raise validation_problem([{"loc": ["body", *p["loc"]], "msg": p["msg"]} for p in problems])
    current = await uow.repo.get_territory(territory_id, for_update=True)
    check_if_match(if_match, current.version if current is not None else None)
    check_not_before(effective_at, current.updated_at if current is not None else None)
    decision = decide_write(current, body, territory_id=territory_id, at=effective_at or uow.now)
    resource = decision.entity
    if not decision.changed:
        return WriteResult(resource, changed=False, version=resource.version)
    event_id = await write_change(uow, decision, actor=principal.sub)
    created = decision.change == "registered"
    return WriteResult(
        resource,
        created=created,
        version=resource.version,
        location=f"/v1/territories/{territory_id}" if created else None,
        event_ids=(event_id,),
    )


# --- importing ANCT's files ------------------------------------------------------------------


async def import_territories(
    uow: Uow[Repository], principal: Principal, upload: Upload, *, kind: ImportKind, mode: ImportMode, dry_run: bool = False
) -> WriteResult[ImportReport]:
    """Import a territories list (one row per territory, or ANCT's commune-level list) or a
    groupements file, with a report per territory.

    ``atomic``: one rejected row and nothing is written (a 422 problem carrying the report);
    ``partial``: the valid rows are written. ``dry_run`` only marks the report (the route rolls back).
    """
    table = read_sheet(upload.data, upload.media_type, max_rows=MAX_IMPORT_ROWS + 1)
    if not table.rows:
        raise Problem(422, "The file has a header but no data row", title="Invalid content")
    if len(table.rows) > MAX_IMPORT_ROWS:
        raise Problem(422, f"The file has more than {MAX_IMPORT_ROWS} rows; at most {MAX_IMPORT_ROWS} per import", title="Invalid content")
    layout: ImportLayout = kind
    if kind == "territories" and is_commune_list(table.header):
        layout = "communes"
        communes = import_table(table, COMMUNE_LIST)
        file_warnings = communes.warnings
        ids = {r.get("id_ti").strip().lower() for r in communes.rows}
        current = await uow.repo.get_territories(ids, for_update=True)
        candidates = commune_list_candidates(communes, {i: t.model_dump(mode="json") for i, t in current.items()})
    else:
        read = import_table(table, TERRITORY_LIST if kind == "territories" else GROUPEMENT_LIST)
        file_warnings = read.warnings
        columns = read.header.columns
        rows = table.rows
        current = await uow.repo.get_territories(file_territory_ids(rows, columns["id_ti"]), for_update=True)
        states = {i: t.model_dump(mode="json") for i, t in current.items()}
        if kind == "territories":
            candidates = territory_candidates(rows, columns, states, table.lines)
        else:
            candidates = groupement_candidates(rows, columns, states, table.lines)
    imported = not (mode == "atomic" and any(c.fields is None for c in candidates))
    reports: list[ImportRowReport] = []
    counts = ImportCounts()
    event_ids: list[str] = []
    for candidate in candidates:
        if candidate.fields is None or candidate.territory_id is None:
            reports.append(_row_report(candidate, "rejected", None, ()))
            counts.add("rejected")
            continue
        existing = current.get(candidate.territory_id)
        decision = decide_write(existing, candidate.fields, territory_id=candidate.territory_id, at=uow.now)
        if imported:
            if decision.changed:
                event_ids.append(await write_change(uow, decision, actor=principal.sub))
            version: int | None = decision.entity.version
        else:
            version = existing.version if existing is not None else None
        outcome: RowOutcome = (
            "unchanged" if not decision.changed else "created" if decision.change == "registered" else "updated"
        )
        counts.add(outcome)
        reports.append(_row_report(candidate, outcome, version, decision.changed_fields))
    report = ImportReport(
        kind=kind, layout=layout, mode=mode, dry_run=dry_run, imported=imported,
        counts=counts, warnings=[RowError.model_validate(w.model_dump()) for w in file_warnings], rows=reports,
    )
    if imported:
        return WriteResult(report, changed=bool(event_ids), event_ids=tuple(event_ids))
    problem = Problem(
        422,
        f"{report.counts.rejected} territory row(s) rejected; nothing was imported (mode=atomic)",
        title="Invalid content",
        kind="import-rejected",
        errors=[e.model_dump(mode="json") for r in report.rows for e in r.errors],
        extensions={"report": report.model_dump(mode="json")},
    )
    return WriteResult(report, changed=False, problem=problem)


def _row_report(
    candidate: Candidate, outcome: RowOutcome, version: int | None, changed: tuple[str, ...]
) -> ImportRowReport:
    return ImportRowReport(
        row=candidate.rows[0],
        rows=candidate.rows,
        territory_id=candidate.territory_id,
        outcome=outcome,
        version=version,
        changed_fields=list(changed),
        errors=[RowError.model_validate(e) for e in candidate.errors],
        warnings=[RowError.model_validate(w) for w in candidate.warnings],
    )


# --- reads -----------------------------------------------------------------------------------


def _region(region_code: str | None) -> str | None:
    """A region query parameter: None (any region) or an INSEE region code (else 422)."""
    if region_code is not None and region_code not in REGIONS:
        raise field_problem(["query", "region_code"], "is not an INSEE region code (" + ", ".join(REGIONS) + ")")
    return region_code


def list_regions() -> list[Region]:
    return [Region(code=code, name=name) for code, name in REGIONS.items()]


def list_departements(region_code: str | None) -> list[Departement]:
    wanted = _region(region_code)
    return [
        Departement(code=code, name=name, region_code=region)
        for code, (name, region) in DEPARTEMENTS.items()
        if wanted is None or region == wanted
    ]


async def get_territory(repo: Repository, territory_id: str) -> Territory:
    resource = await repo.get_territory(territory_id)
    if resource is None:
        raise Problem(404, f"Territory {territory_id} is not registered")
    return resource


async def list_territories(
    repo: Repository, *, region_code: str | None, status: TerritoryStatus | None, limit: int, cursor: str | None
) -> Page[Territory]:
    found = await repo.list_territories(
        region_code=_region(region_code), status=status, after=cursor_after(cursor, str), limit=limit + 1
    )
    items, next_cursor = page_of(found, limit, lambda t: t.id)
    return Page[Territory](items=items, next_cursor=next_cursor)


async def get_territory_history(
    repo: Repository, territory_id: str, *, limit: int, cursor: str | None
) -> Page[TerritoryVersion]:
    after = cursor_after(cursor, int)
    found = await repo.list_territory_versions(territory_id, after=after, limit=limit + 1)
    if not found and after is None:
        raise Problem(404, f"Territory {territory_id} is not registered")
    items, next_cursor = page_of(found, limit, lambda v: v.version)
    return Page[TerritoryVersion](items=items, next_cursor=next_cursor)
