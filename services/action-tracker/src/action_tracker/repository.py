"""Every query of the action-tracker: ``Repository`` over a unit of work's (or a read) session."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import ti_shared.service
from ti_shared.app import concurrent_write
from ti_shared.db import dialect_of, territory_replica
from ti_shared.replica import known_territories, locked_with_territory_known
from ti_shared.statements import Sql
from ti_shared.types import format_decimal

from action_tracker.domain import Action, ActionVersion, Change, Decision
from action_tracker.tables import action, action_theme, action_version

#: ids per ``IN (…)`` of a lookup
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class ActionFilter:
    """Which live actions a list selects (None: any)."""

    territory_id: str | None = None
    region_code: str | None = None
    axis: str | None = None
    theme: str | None = None
    status: str | None = None


_ROW_COLUMNS = [c.name for c in action.c]
# the write path's statements (prepared on PostgreSQL's driver; a PUT's writes go as one statement)
_GET = Sql(sa.select(action).where(action.c.action_id == sa.bindparam("action_id")))
_GET_FOR_UPDATE = Sql(sa.select(action).where(action.c.action_id == sa.bindparam("action_id")).with_for_update())
_GET_FOR_WRITE = locked_with_territory_known(action, "action_id")
_INSERT = Sql(action.insert(), column_keys=_ROW_COLUMNS)
_UPDATE = Sql(
    action.update().where(action.c.action_id == sa.bindparam("id"), action.c.version == sa.bindparam("replaced")),
    column_keys=[c for c in _ROW_COLUMNS if c != "action_id"],
)
_ADD_THEME = Sql(action_theme.insert(), column_keys=["action_id", "theme"])
_DROP_THEMES = Sql(action_theme.delete().where(action_theme.c.action_id == sa.bindparam("id")))
_ADD_VERSION = Sql(
    action_version.insert(),
    column_keys=["action_id", "version", "change", "recorded_at", "actor", "changed_fields", "comment", "state"],
)


def _body_of(row: Mapping[Any, Any]) -> dict[str, Any]:
    budget = row["budget_eur"]
    return {
        "territory_id": row["territory_id"],
        "title": row["title"],
        "description": row["description"],
        "axis": row["axis"],
        "themes": list(row["themes"] or []),
        "status": row["status"],
        "planned_start": row["planned_start"].isoformat() if row["planned_start"] else None,
        "planned_end": row["planned_end"].isoformat() if row["planned_end"] else None,
        "budget_eur": format_decimal(Decimal(str(budget))) if budget is not None else None,
        "partners": list(row["partners"] or []),
    }


def _action_of(row: Mapping[Any, Any]) -> Action:
    return Action(
        action_id=row["action_id"],
        body=_body_of(row),
        version=int(row["version"]),
        deleted=bool(row["deleted"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _columns_of(stored: Action) -> dict[str, Any]:
    body = stored.body
    return {
        "territory_id": body["territory_id"],
        "title": body["title"],
        "description": body["description"],
        "axis": body["axis"],
        "themes": list(body["themes"]),
        "status": body["status"],
        "planned_start": date.fromisoformat(body["planned_start"]) if body["planned_start"] else None,
        "planned_end": date.fromisoformat(body["planned_end"]) if body["planned_end"] else None,
        "budget_eur": Decimal(body["budget_eur"]) if body["budget_eur"] is not None else None,
        "partners": list(body["partners"]),
        "deleted": stored.deleted,
        "version": stored.version,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


class Repository(ti_shared.service.Repository):
    """The actions, their themes and their history; the territories of the local replica."""

    def _locked(self, query: sa.Select[Any], for_update: bool) -> sa.Select[Any]:
        """``FOR UPDATE`` on PostgreSQL when asked (SQLite locks the whole database on write)."""
        return query.with_for_update() if for_update and dialect_of(self.session) == "postgresql" else query

    async def get_action(self, action_id: str, *, for_update: bool = False) -> Action | None:
        """The action ``action_id``, deleted or not; None when it never existed."""
        row = await (_GET_FOR_UPDATE if for_update else _GET).fetchrow(self.session, action_id=action_id)
        return _action_of(row) if row is not None else None

    async def get_action_for_write(self, action_id: str, territory_id: str) -> tuple[Action | None, bool]:
        """The action ``action_id`` locked for a write (as ``get_action(for_update=True)``) and whether
        the replica knows ``territory_id``: one statement (a write's lookup was a round trip of its own)."""
        row = await _GET_FOR_WRITE.fetchrow(self.session, action_id=action_id, territory_id=territory_id)
        if row is None:  # the statement answers one row whatever the action
            raise RuntimeError("the locking read answered no row")
        return (_action_of(row) if row["action_id"] is not None else None), bool(row["territory_known"])

    async def get_actions(self, action_ids: Iterable[str], *, for_update: bool = False) -> dict[str, Action]:
        """The actions among ``action_ids`` that exist (deleted ones included), by id."""
        ids = sorted(set(action_ids))
        out: dict[str, Action] = {}
        for i in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[i : i + LOOKUP_CHUNK]
            query = sa.select(action).where(action.c.action_id.in_(chunk)).order_by(action.c.action_id)
            for row in await self.session.execute(self._locked(query, for_update)):
                out[row.action_id] = _action_of(row._mapping)
        return out

    async def list_actions(
        self, where: ActionFilter, *, after: str | None = None, limit: int | None = None, for_update: bool = False
    ) -> list[Action]:
        """The live actions matching ``where``, by id, after the id ``after``; at most ``limit`` (None: all)."""
        query = sa.select(action).where(action.c.deleted.is_(False))
        if where.territory_id is not None:
            query = query.where(action.c.territory_id == where.territory_id)
        if where.region_code is not None:
            in_region = sa.select(territory_replica.c.territory_id).where(
                territory_replica.c.region_code == where.region_code
            )
            query = query.where(action.c.territory_id.in_(in_region))
        if where.axis is not None:
            query = query.where(action.c.axis == where.axis)
        if where.status is not None:
            query = query.where(action.c.status == where.status)
        if where.theme is not None:
            with_theme = sa.select(action_theme.c.action_id).where(action_theme.c.theme == where.theme)
            query = query.where(action.c.action_id.in_(with_theme))
        if after is not None:
            query = query.where(action.c.action_id > after)
        query = query.order_by(action.c.action_id)
        if limit is not None:
            query = query.limit(limit)
        rows = await self.session.execute(self._locked(query, for_update))
        return [_action_of(r._mapping) for r in rows]

    async def insert_action(self, new: Action) -> None:
        """The first version's row and its theme rows (another writer creating it first: 409)."""
        await _INSERT.defer(self.session, expect=1, action_id=new.action_id, **_columns_of(new))
        await self._add_themes(new)

    async def update_action(self, changed: Action, *, themes_changed: bool = True) -> None:
        """The action's row (its next version: 409 when its version moved meanwhile) and, when its
        themes changed, its theme rows."""
        await _UPDATE.defer(
            self.session, expect=1, on_mismatch=concurrent_write, id=changed.action_id, replaced=changed.version - 1,
            **_columns_of(changed),
        )
        if themes_changed:
            await _DROP_THEMES.defer(self.session, id=changed.action_id)
            await self._add_themes(changed)

    async def _add_themes(self, stored: Action) -> None:
        for theme in stored.body["themes"]:
            await _ADD_THEME.defer(self.session, expect=1, action_id=stored.action_id, theme=theme)

    async def add_action_version(self, decision: Decision, *, actor: str, comment: str | None) -> None:
        """The history row of the decided version (its time is the version's ``updated_at``)."""
        stored, change = decision.entity, decision.change
        assert change is not None
        await _ADD_VERSION.defer(
            self.session,
            expect=1,
            action_id=stored.action_id,
            version=stored.version,
            change=change.value,
            recorded_at=stored.updated_at,
            actor=actor,
            changed_fields=list(decision.changed_fields),
            comment=comment,
            state=stored.resource(),
        )

    async def list_action_versions(self, action_id: str, *, after: int | None, limit: int) -> list[ActionVersion]:
        """The versions of ``action_id`` after the version ``after``, oldest first; at most ``limit``."""
        query = sa.select(action_version).where(action_version.c.action_id == action_id)
        if after is not None:
            query = query.where(action_version.c.version > after)
        rows = await self.session.execute(query.order_by(action_version.c.version).limit(limit))
        return [
            ActionVersion(
                version=int(r.version),
                change=Change(r.change),
                recorded_at=r.recorded_at,
                actor=r.actor,
                changed_fields=list(r.changed_fields or []),
                comment=r.comment,
                state=dict(r.state),
            )
            for r in rows
        ]

    async def known_territories(self, territory_ids: set[str]) -> set[str]:
        """Which of ``territory_ids`` the local replica of the territory registry knows."""
        return set(await known_territories(self.session, territory_ids))
