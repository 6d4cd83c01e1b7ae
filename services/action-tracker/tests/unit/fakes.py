"""The in-memory repository of the service functions' unit tests (docs/conventions.md, « Tests »)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from action_tracker.domain import Action, ActionVersion, Decision
from action_tracker.repository import ActionFilter, Repository
from ti_shared.fakes import NO_SESSION

#: the territories the replica knows in the unit tests, with their region
TERRITORIES = {"ti-8402": "84", "ti-8403": "84", "ti-1101": "11"}


class FakeRepository(Repository):
    """The actions by id and their history over dicts; the replica's territories with their region."""

    def __init__(self, *actions: Action, territories: Mapping[str, str] = TERRITORIES) -> None:
        super().__init__(NO_SESSION)
        self.actions = {a.action_id: a for a in actions}
        self.versions: dict[str, list[ActionVersion]] = {}
        self.territories = dict(territories)

    async def get_action(self, action_id: str, *, for_update: bool = False) -> Action | None:
        return self.actions.get(action_id)

    async def get_action_for_write(self, action_id: str, territory_id: str) -> tuple[Action | None, bool]:
        return self.actions.get(action_id), territory_id in self.territories

    async def get_actions(self, action_ids: Iterable[str], *, for_update: bool = False) -> dict[str, Action]:
        return {i: self.actions[i] for i in sorted(set(action_ids)) if i in self.actions}

    async def list_actions(
        self, where: ActionFilter, *, after: str | None = None, limit: int | None = None, for_update: bool = False
    ) -> list[Action]:
        found = [
            a
            for _, a in sorted(self.actions.items())
            if not a.deleted
            and (after is None or a.action_id > after)
            and where.territory_id in (None, a.territory_id)
            and where.region_code in (None, self.territories.get(a.territory_id))
            and where.axis in (None, a.body["axis"])
            and where.status in (None, a.body["status"])
            and (where.theme is None or where.theme in a.body["themes"])
        ]
        return found if limit is None else found[:limit]

    async def insert_action(self, new: Action) -> None:
        assert new.action_id not in self.actions, "a duplicate key: the real table refuses it"
        self.actions[new.action_id] = new

    async def update_action(self, changed: Action, *, themes_changed: bool = True) -> None:
        assert changed.action_id in self.actions, "no row to update"
        assert themes_changed or changed.body["themes"] == self.actions[changed.action_id].body["themes"], "themes changed"
        self.actions[changed.action_id] = changed

    async def add_action_version(self, decision: Decision, *, actor: str, comment: str | None) -> None:
        stored, change = decision.entity, decision.change
        assert change is not None
        self.versions.setdefault(stored.action_id, []).append(
            ActionVersion(stored.version, change, stored.updated_at, actor, list(decision.changed_fields), comment, stored.resource())
        )

    async def list_action_versions(self, action_id: str, *, after: int | None, limit: int) -> list[ActionVersion]:
        return [v for v in self.versions.get(action_id, []) if after is None or v.version > after][:limit]

    async def known_territories(self, territory_ids: set[str]) -> set[str]:
        return territory_ids & set(self.territories)
