"""The use cases of the action plans: functions of the unit of work, the principal and plain values.

Each write loads what it changes (``FOR UPDATE``), checks the request's conditions, lets the domain
decide (``decide_write``, ``decide_delete``) and writes the decision with :func:`write_change`; the
route commits and turns the :class:`WriteResult` into the response.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from ti_shared import http
from ti_shared.auth import Principal
from ti_shared.geo import REGIONS
from ti_shared.http import check_if_match, check_not_before, cursor_after, etag_of, page_of
from ti_shared.imports import read_import
from ti_shared.problems import Problem, clean_pydantic_errors, field_problem, validation_problem
from ti_shared.service import Uow, WriteResult
from ti_shared.uploads import Upload
from ti_shared.vocabulary import AXIS_LABELS, STATUS_LABELS, THEME_AXES, THEME_LABELS

from action_tracker.domain import (
    RESERVED_ACTION_IDS,
    Action,
    Change,
    Decision,
    decide_delete,
    decide_write,
    merge_patch,
    territories_touched,
)
from action_tracker.events import EVENT_OF_CHANGE
from action_tracker.plan_import import MAX_PLAN_ROWS, PLAN, PlanRow, plan_report, read_plan
from action_tracker.repository import ActionFilter
from action_tracker.repository import Repository as Repository  # re-exported: the routes' dependencies name it
from action_tracker.schemas import (
    ActionBody,
    ActionPage,
    ActionPatch,
    ActionResource,
    ActionWrite,
    HistoryEntry,
    HistoryPage,
    PlanImportReport,
    ThemeTerm,
    Vocabulary,
    VocabularyTerm,
)

ImportMode = Literal["atomic", "partial"]


# --- reading -------------------------------------------------------------------------------------


def get_vocabulary() -> Vocabulary:
    """The axes, themes and statuses with their French labels (reference data: no query)."""
    return Vocabulary(
        axes=[VocabularyTerm(code=c, label=label) for c, label in AXIS_LABELS.items()],
        themes=[ThemeTerm(code=c, label=label, axis=THEME_AXES[c]) for c, label in THEME_LABELS.items()],  # type: ignore[arg-type]
        statuses=[VocabularyTerm(code=c, label=label) for c, label in STATUS_LABELS.items()],
    )


async def list_actions(
    repo: Repository,
    *,
    territory_id: str | None,
    region_code: str | None,
    axis: str | None,
    theme: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> ActionPage:
    """A page of the live actions matching the filters, by id."""
    if region_code is not None and region_code not in REGIONS:
        raise field_problem(["query", "region_code"], "is not an INSEE region code (" + ", ".join(REGIONS) + ")")
    where = ActionFilter(territory_id=territory_id, region_code=region_code, axis=axis, theme=theme, status=status)
    found = await repo.list_actions(where, after=cursor_after(cursor, str), limit=limit + 1)
    page, next_cursor = page_of(found, limit, lambda a: a.action_id)
    return ActionPage(items=[_resource(a) for a in page], next_cursor=next_cursor)


async def get_action(repo: Repository, action_id: str) -> ActionResource:
    """The live action ``action_id`` (404 when it does not exist or was deleted)."""
    return _resource(_live(action_id, await repo.get_action(action_id)))


async def get_action_history(repo: Repository, action_id: str, *, limit: int, cursor: str | None) -> HistoryPage:
    """A page of the action's versions, oldest first (deleted actions included; 404 if it never existed)."""
    after = cursor_after(cursor, int)
    found = await repo.list_action_versions(action_id, after=after, limit=limit + 1)
    if not found and after is None:
        raise Problem(404, f"No action '{action_id}'")
    page, next_cursor = page_of(found, limit, lambda v: v.version)
    return HistoryPage(
        action_id=action_id,
        items=[
            HistoryEntry(
                version=v.version,
                time=v.recorded_at,
                actor=v.actor,
                change=v.change.value,  # type: ignore[arg-type]
                event_type=EVENT_OF_CHANGE[v.change].type,
                changed_fields=v.changed_fields,
                comment=v.comment,
                state=ActionResource.model_validate(v.state),
            )
            for v in page
        ],
        next_cursor=next_cursor,
    )


# --- writing one action --------------------------------------------------------------------------


async def put_action(
    uow: Uow[Repository],
    principal: Principal,
    action_id: str,
    body: ActionWrite,
    *,
    effective_at: datetime | None,
    if_match: str | None,
    if_none_match: str | None,
) -> WriteResult[ActionResource]:
    """Create (201, also over a deleted action) or replace the action ``action_id``; the same body
    changes nothing (200, same version, no event)."""
    if action_id in RESERVED_ACTION_IDS:
        raise field_problem(["path", "action_id"], "is reserved: " + ", ".join(sorted(RESERVED_ACTION_IDS)))
    if body.id is not None and body.id != action_id:
        raise field_problem(["body", "id"], "must equal the action id of the path")
    current, known = await uow.repo.get_action_for_write(action_id, body.territory_id)
    live_version = current.version if current is not None and not current.deleted else None
    check_if_match(if_match, live_version)
    if http.if_none_match(if_none_match, etag_of(live_version) if live_version is not None else None):
        raise Problem(412, "If-None-Match matches the action's current version")
    new = body.body().canonical()
    await _authorize(uow.repo, principal, current, new, looked_up=(body.territory_id, known))
    decision = decide_write(current, new, action_id=action_id, at=effective_at or uow.now)
    return await _write(uow, principal, decision, current, comment=body.comment, effective_at=effective_at)


async def create_action(
    uow: Uow[Repository], principal: Principal, body: ActionWrite, *, effective_at: datetime | None
) -> WriteResult[ActionResource]:
    """Create an action under an id chosen here (``act-<uuid>``): 201 with its ``Location``."""
    if body.id is not None:
        raise field_problem(["body", "id"], "is chosen by the server here; use PUT /v1/actions/{action_id} to choose it")
    new = body.body().canonical()
    await _authorize(uow.repo, principal, None, new)
    action_id = "act-" + uuid.uuid4().hex
    decision = decide_write(None, new, action_id=action_id, at=effective_at or uow.now)
    result = await _write(uow, principal, decision, None, comment=body.comment, effective_at=effective_at)
    return replace(result, location=f"/v1/actions/{action_id}")


async def patch_action(
    uow: Uow[Repository],
    principal: Principal,
    action_id: str,
    patch: ActionPatch,
    *,
    effective_at: datetime | None,
    if_match: str | None,
) -> WriteResult[ActionResource]:
    """Change the given fields of a live action (JSON merge patch); no change → same version."""
    current = _live(action_id, await uow.repo.get_action(action_id, for_update=True))
    check_if_match(if_match, current.version)
    try:
        new = ActionBody.model_validate(merge_patch(current.body, patch.changes())).canonical()
    except ValidationError as exc:
        raise validation_problem(
            [{**e, "loc": ["body", *e["loc"]]} for e in clean_pydantic_errors(exc.errors())]
        ) from exc
    await _authorize(uow.repo, principal, current, new)
    decision = decide_write(current, new, action_id=action_id, at=effective_at or uow.now)
    return await _write(uow, principal, decision, current, comment=patch.comment, effective_at=effective_at)


async def delete_action(
    uow: Uow[Repository],
    principal: Principal,
    action_id: str,
    *,
    effective_at: datetime | None,
    if_match: str | None,
) -> WriteResult[ActionResource]:
    """Remove a live action from its plan: a new version with ``deleted: true`` (its history stays)."""
    current = _live(action_id, await uow.repo.get_action(action_id, for_update=True))
    check_if_match(if_match, current.version)
    for territory in territories_touched(current.body, None):
        principal.require_territory(territory)
    check_not_before(effective_at, current.updated_at)
    decision = decide_delete(current, at=effective_at or uow.now)
    event_id = await write_change(uow, decision, actor=principal.sub, comment=None)
    return _result(decision.entity, event_ids=(event_id,))


async def _authorize(
    repo: Repository,
    principal: Principal,
    current: Action | None,
    new: dict[str, Any],
    *,
    looked_up: tuple[str, bool] | None = None,
) -> None:
    """403 unless the token may write every territory the write touches; 422 when the action is
    (re-)created in, or moved to, a territory the replica does not know (``looked_up``: a territory and
    whether the replica knows it, read with the action)."""
    for territory in sorted(territories_touched(current.body if current else None, new)):
        principal.require_territory(territory)
    territory = str(new["territory_id"])
    if current is None or current.deleted or current.territory_id != territory:
        if looked_up is not None and looked_up[0] == territory:
            known = looked_up[1]
        else:
            known = bool(await repo.known_territories({territory}))
        if not known:
            raise field_problem(["body", "territory_id"], f"unknown territory '{territory}' (not in the territory registry)")


async def _write(
    uow: Uow[Repository],
    principal: Principal,
    decision: Decision,
    current: Action | None,
    *,
    comment: str | None,
    effective_at: datetime | None,
) -> WriteResult[ActionResource]:
    if not decision.changed:
        return _result(decision.entity, changed=False)
    check_not_before(effective_at, current.updated_at if current else None)
    event_id = await write_change(uow, decision, actor=principal.sub, comment=comment)
    return _result(decision.entity, created=decision.change is Change.CREATED, event_ids=(event_id,))


async def write_change(uow: Uow[Repository], decision: Decision, *, actor: str, comment: str | None) -> str:
    """Write a decided change: the action's row (its first version inserted, the others updated), its
    history row and its event, in the unit of work's transaction. Returns the event's id."""
    change, stored = decision.change, decision.entity
    if change is None:
        raise ValueError("nothing to write: the decision changes nothing")
    if stored.version == 1:
        await uow.repo.insert_action(stored)
    else:
        await uow.repo.update_action(stored, themes_changed="themes" in decision.changed_fields)
    await uow.repo.add_action_version(decision, actor=actor, comment=comment)
    spec = EVENT_OF_CHANGE[change]
    event = await uow.record(
        topic=spec.topic,
        type_=spec.type,
        subject=stored.action_id,
        version=stored.version,
        actor=actor,
        data=stored.resource(),
        time=stored.updated_at,
    )
    return event.id


# --- plan imports --------------------------------------------------------------------------------


async def import_plan(
    uow: Uow[Repository],
    principal: Principal,
    territory_id: str,
    upload: Upload,
    *,
    mode: ImportMode,
    delete_missing: bool,
    effective_at: datetime | None,
    dry_run: bool = False,
) -> WriteResult[PlanImportReport]:
    """A territory's plan from its file, in one transaction: every valid row written (``partial``), or
    all of them unless one is rejected (``atomic``: 422 with the report, nothing written); with
    ``delete_missing``, the territory's live actions absent from the file are deleted. ``dry_run``
    only marks the report (the route rolls back)."""
    principal.require_territory(territory_id)
    table = read_import(upload.data, upload.media_type, PLAN, max_rows=MAX_PLAN_ROWS)
    if not await uow.repo.known_territories({territory_id}):
        raise field_problem(["query", "territory_id"], f"unknown territory '{territory_id}'")
    rows = read_plan(table, territory_id)
    at = effective_at or uow.now

    ids = {r.action_id for r in rows if r.action_id}
    current = await uow.repo.get_actions(ids, for_update=True)
    in_plan = await uow.repo.list_actions(ActionFilter(territory_id=territory_id), for_update=True)
    decisions = _plan_decisions(principal, rows, current, mode=mode, at=at, effective_at=effective_at)
    missing = [a for a in in_plan if a.action_id not in ids]
    rejected = [r for r in rows if r.errors]
    if mode == "atomic" and rejected:
        report = plan_report(
            territory_id, mode, delete_missing, rows, decisions, missing, applied=False, warnings=table.warnings, dry_run=dry_run
        )
        problem = Problem(
            422,
            f"{report.summary.rejected} row(s) rejected: the atomic import changed nothing",
            title="Invalid content",
            kind="plan-import-rejected",
            errors=[{"loc": ["body", r.row, *e["loc"]], "msg": e["msg"]} for r in rejected for e in r.errors],
            extensions={"report": report.model_dump(mode="json")},
        )
        return WriteResult(report, changed=False, problem=problem)

    event_ids = [
        await write_change(uow, decision, actor=principal.sub, comment=None)
        for decision in decisions.values()
        if decision.changed
    ]
    deleted: dict[str, int] = {}
    if delete_missing:
        for gone in missing:
            check_not_before(effective_at, gone.updated_at)
            decision = decide_delete(gone, at=at)
            event_ids.append(await write_change(uow, decision, actor=principal.sub, comment="absent from the plan import"))
            deleted[gone.action_id] = decision.entity.version
    report = plan_report(
        territory_id, mode, delete_missing, rows, decisions, missing,
        applied=True, deleted=deleted, warnings=table.warnings, dry_run=dry_run,
    )
    return WriteResult(report, changed=bool(event_ids), event_ids=tuple(event_ids))


def _plan_decisions(
    principal: Principal,
    rows: list[PlanRow],
    current: dict[str, Action],
    *,
    mode: ImportMode,
    at: datetime,
    effective_at: datetime | None,
) -> dict[int, Decision]:
    """The decision of each valid row, by row number; a row the token may not write, or back-dated
    before its action's current version, gets its error (in atomic mode the latter is a 409)."""
    decisions: dict[int, Decision] = {}
    for row in rows:
        if not row.ok or row.action_id is None or row.body is None:
            continue
        before = current.get(row.action_id)
        decision = decide_write(before, row.body.canonical(), action_id=row.action_id, at=at)
        if before is not None and not principal.is_admin and before.territory_id not in principal.territories:
            row.errors.append(
                {"loc": ["action_id"], "msg": f"belongs to territory {before.territory_id}, which this token may not write"}
            )
        elif decision.changed and effective_at is not None and before is not None and effective_at < before.updated_at:
            if mode == "atomic":
                check_not_before(effective_at, before.updated_at)
            row.errors.append({"loc": ["TI-Effective-At"], "msg": "is earlier than this action's current version's time"})
        else:
            decisions[row.row] = decision
    return decisions


# --- helpers -------------------------------------------------------------------------------------


def _live(action_id: str, stored: Action | None) -> Action:
    """``stored`` if it is a live action, else the 404 (saying when it was deleted)."""
    if stored is None:
        raise Problem(404, f"No action '{action_id}'")
    if stored.deleted:
        raise Problem(
            404,
            f"Action '{action_id}' was deleted (version {stored.version}); its history is at /v1/actions/{action_id}/history",
        )
    return stored


def _resource(stored: Action) -> ActionResource:
    return ActionResource.model_validate(stored.resource())


def _result(
    stored: Action, *, created: bool = False, changed: bool = True, event_ids: tuple[str, ...] = ()
) -> WriteResult[ActionResource]:
    return WriteResult(_resource(stored), created=created, changed=changed, version=stored.version, event_ids=event_ids)
