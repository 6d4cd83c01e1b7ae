"""The site catalogue's use cases: writing a site, importing a CNIG « sites économiques » file, and the reads.

Functions of the unit of work (or the read repository), the principal and plain values; the routes
of ``api.py`` translate HTTP to these calls and their results back (docs/conventions.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from ti_shared.auth import Principal
from ti_shared.http import Page, check_if_match, check_not_before, cursor_after, page_of
from ti_shared.imports import read_import
from ti_shared.problems import Problem, clean_pydantic_errors, field_problem, validation_problem
from ti_shared.service import Uow, WriteResult
from ti_shared.uploads import Upload

from site_catalog.domain import Decision, decide_write, territory_to_check
from site_catalog.events import EVENT_OF_CHANGE
from site_catalog.imports import LAYOUT, parse_rows, perimeter_warning, with_current_cnig
from site_catalog.repository import Repository as Repository  # re-exported: the routes' dependencies name it
from site_catalog.repository import SiteFilter
from site_catalog.schemas import (
    RESERVED_SITE_IDS,
    ImportCounts,
    ImportMode,
    ImportRow,
    ImportRowError,
    Maturity,
    RowOutcome,
    SiteBody,
    SiteDefaults,
    SiteHistory,
    SiteImportReport,
    SiteResource,
    SiteStatus,
)

# --- writing one site ---------------------------------------------------------------------------


async def write_change(uow: Uow[Repository], decision: Decision, *, actor: str) -> str:
    """The site's row (inserted or updated), its history row and its event; the event's id."""
    change, resource = decision.change, decision.entity
    if change is None:
        raise ValueError("nothing to write: the decision changes nothing")
    if change == "labelled":
        await uow.repo.insert_site(resource)
    else:
        await uow.repo.update_site(resource)
    await uow.repo.add_site_version(decision, actor=actor)
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


def _unknown_territory(territory_id: str) -> str:
    return f"the territory '{territory_id}' is unknown to the territory registry"


async def put_site(
    uow: Uow[Repository],
    principal: Principal,
    site_id: str,
    body: SiteBody,
    *,
    effective_at: datetime | None,
    if_match: str | None,
) -> WriteResult[SiteResource]:
    """Create a site or replace its state; the same state changes nothing (same version, no event)."""
    if site_id in RESERVED_SITE_IDS:
        raise field_problem(["path", "site_id"], f"'{site_id}' is reserved (it names an endpoint under /v1/sites)")
    current, known = await uow.repo.get_site_for_write(site_id, body.territory_id)
    check_if_match(if_match, current.version if current else None)
    decision = decide_write(current, body, site_id=site_id, at=effective_at or uow.now)
    resource = decision.entity
    if not decision.changed:
        return WriteResult(resource, changed=False, version=resource.version)
    check_not_before(effective_at, current.updated_at if current else None)
    territory = territory_to_check(current, body)  # the body's, when it must be checked: looked up with the site
    if territory is not None and not known:
        raise field_problem(["body", "territory_id"], _unknown_territory(territory))
    event_id = await write_change(uow, decision, actor=principal.sub)
    return WriteResult(resource, created=decision.change == "labelled", version=resource.version, event_ids=(event_id,))


# --- import ---------------------------------------------------------------------------------------


def site_defaults(**given: Any) -> SiteDefaults:
    """The defaults an import's query gives (422 on ``["query", name]`` for a value that is not one)."""
    try:
        return SiteDefaults.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise validation_problem(
            [{"loc": ["query", *e["loc"]], "msg": e["msg"]} for e in clean_pydantic_errors(exc.errors())]
        ) from None


async def import_sites(
    uow: Uow[Repository],
    principal: Principal,
    upload: Upload,
    *,
    mode: ImportMode,
    effective_at: datetime | None,
    defaults: SiteDefaults | None = None,
    dry_run: bool = False,
) -> WriteResult[SiteImportReport]:
    """Import the rows of a CNIG « sites économiques » file, each creating, updating or leaving a site.

    ``atomic``: one rejected row and nothing is written (a 422 problem carrying the report, which is not
    kept); ``partial``: the valid rows are written. An applied import's report is kept (its ``Location``).
    ``defaults``: the programme's values for the rows that do not give them. ``dry_run`` only marks the
    report (the route rolls back).
    """
    table = read_import(upload.data, upload.media_type, LAYOUT)
    parsed = parse_rows(table, defaults)
    at = effective_at or uow.now
    territories = await uow.repo.territory_perimeters(
        {p.body.territory_id for p in parsed if p.body is not None and p.body.territory_id}
    )
    rows: list[ImportRow] = []
    pending: list[tuple[int, Decision]] = []
    for p in parsed:
        if p.body is None or p.site_id is None:
            rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="rejected", version=None, errors=p.errors, warnings=p.warnings))
            continue
        current = await uow.repo.get_site(p.site_id, for_update=True)
        body = with_current_cnig(p.body, current.cnig if current is not None else None, table)
        decision = decide_write(current, body, site_id=p.site_id, at=at)
        errors = _row_problems(decision, current, p.body, effective_at, set(territories))
        warnings = list(p.warnings)
        outside = perimeter_warning(p.body, territories[p.body.territory_id]) if p.body.territory_id in territories else None
        if outside is not None:
            warnings.append(ImportRowError(column=table.written("site_comm_insee"), field="commune_insee", msg=outside))
        if errors:
            rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="rejected", version=None, errors=errors, warnings=warnings))
            continue
        rows.append(ImportRow(row=p.row, site_id=p.site_id, outcome="unchanged", version=None, warnings=warnings))
        pending.append((len(rows) - 1, decision))
    rejected = [r for r in rows if r.outcome == "rejected"]
    refused = mode == "atomic" and bool(rejected)
    event_ids: list[str] = []
    if not refused:
        for index, decision in pending:
            if decision.changed:
                event_ids.append(await write_change(uow, decision, actor=principal.sub))
            outcome: RowOutcome = "unchanged" if not decision.changed else "created" if decision.change == "labelled" else "updated"
            rows[index] = rows[index].model_copy(update={"outcome": outcome, "version": decision.entity.version})
    counts = ImportCounts()
    for r in rows:
        counts.add(r.outcome)
    report = SiteImportReport(
        id=None if refused or dry_run else str(uuid.uuid4()),
        mode=mode,
        status="refused" if refused else "applied",
        imported_at=uow.now,
        actor=principal.sub,
        dry_run=dry_run,
        row_count=len(rows),
        counts=counts,
        warnings=[ImportRowError(column=str(w.loc[1]) if len(w.loc) > 1 else None, field=None, msg=w.msg) for w in table.warnings],
        rows=rows,
    )
    if refused:
        problem = Problem(
            422,
            f"{len(rejected)} of {len(rows)} rows are invalid; nothing was imported (mode=atomic)",
            title="Invalid content",
            kind="import-refused",
            errors=[{"loc": ["body", r.row, e.column or "row"], "msg": e.msg} for r in rejected for e in r.errors],
            extensions={"report": report.model_dump(mode="json")},
        )
        return WriteResult(report, changed=False, problem=problem)
    if not dry_run:
        await uow.repo.add_site_import(report)
    return WriteResult(report, created=True, location=f"/v1/sites/imports/{report.id}", event_ids=tuple(event_ids))


def _row_problems(
    decision: Decision,
    current: SiteResource | None,
    body: SiteBody,
    effective_at: datetime | None,
    known: set[str],
) -> list[ImportRowError]:
    """Why a row that changes its site cannot be written (a row that changes nothing always can)."""
    if not decision.changed:
        return []
    errors = []
    territory = territory_to_check(current, body)
    if territory is not None and territory not in known:
        errors.append(ImportRowError(column="territory_id", field="territory_id", msg=_unknown_territory(territory)))
    try:
        check_not_before(effective_at, current.updated_at if current else None)
    except Problem as exc:
        errors.append(ImportRowError(column=None, field=None, msg=exc.detail))
    return errors


# --- reads --------------------------------------------------------------------------------------


async def get_site_import(repo: Repository, import_id: str) -> dict[str, Any]:
    """The report of an applied import, as it was answered."""
    report = await repo.get_site_import(import_id)
    if report is None:
        raise Problem(404, f"No import '{import_id}'")
    return report


async def list_sites(
    repo: Repository,
    *,
    region_code: str | None,
    departement_code: str | None,
    maturity: Maturity | None,
    land_recycling: bool | None,
    territory_id: str | None,
    status: SiteStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[SiteResource]:
    where = SiteFilter(region_code, departement_code, maturity, land_recycling, territory_id, status)
    found = await repo.list_sites(where, after=cursor_after(cursor, str), limit=limit + 1)
    items, next_cursor = page_of(found, limit, lambda s: s.id)
    return Page[SiteResource](items=items, next_cursor=next_cursor)


async def get_site(repo: Repository, site_id: str) -> SiteResource:
    site = await repo.get_site(site_id)
    if site is None:
        raise Problem(404, f"No site '{site_id}'")
    return site


async def get_site_history(repo: Repository, site_id: str, *, limit: int, cursor: str | None) -> SiteHistory:
    """Every version of a site, oldest first (404 for a site that never existed)."""
    await get_site(repo, site_id)
    found = await repo.list_site_versions(site_id, after=cursor_after(cursor, int), limit=limit + 1)
    items, next_cursor = page_of(found, limit, lambda v: v.version)
    return SiteHistory(items=items, next_cursor=next_cursor)
