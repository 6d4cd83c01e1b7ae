"""In-memory stand-ins for the unit tests of service functions (no database, no bus).

The pattern (docs/conventions.md, « Tests »), the same in every write service::

    # tests/unit/fakes.py
    class FakeRepository(Repository):            # the service's repository.Repository
        def __init__(self, grants: dict[str, Grant] | None = None) -> None:
            super().__init__(NO_SESSION)
            self.grants = dict(grants or {})

        async def get_grant(self, operator: str, ref: str, *, for_update: bool = False) -> Grant | None:
            return self.grants.get(grant_id(operator, ref))

    # tests/unit/test_service.py
    uow = FakeUnitOfWork(FakeRepository())
    result = await service.put_grant(uow, ADMIN, "ADEME", "FV-1", body, effective_at=None, if_match=None)
    assert result.created and [e.type for e in uow.events] == [GRANT_COMMITTED]

The fake repository overrides, over dicts, every method the service functions call; one it does not
override reaches :data:`NO_SESSION` and fails naming itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Generic, NoReturn, TypeVar, cast

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.events import CloudEvent, NewEvent, new_event

R = TypeVar("R")

FAKE_NOW = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)


class _NoSession:
    """The session of a fake repository: a query that reaches it is a method the fake lacks."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(
            f"a fake repository used its session ({name}): override the repository method in tests/unit/fakes.py"
        )


NO_SESSION = cast(AsyncSession, _NoSession())


class FakeUnitOfWork(Generic[R]):
    """Satisfies ``ti_shared.service.Uow[R]`` in memory: ``repo`` is the test's fake repository,
    ``now`` a fixed instant, every recorded event lands in ``events`` (as the relay would publish it)."""

    def __init__(self, repo: R, *, now: datetime = FAKE_NOW, source: str = "/services/test") -> None:
        self.repo = repo
        self.now = now
        self.source = source
        self.events: list[CloudEvent] = []
        #: the topic each recorded event went to, by event id
        self.topic_of: dict[str, str] = {}

    async def record(
        self,
        *,
        topic: str,
        type_: str,
        subject: str,
        version: int,
        actor: str,
        data: dict[str, Any],
        time: datetime | None = None,
    ) -> CloudEvent:
        event = new_event(
            source=self.source, type_=type_, subject=subject, time=time or self.now, version=version, actor=actor, data=data
        )
        self.events.append(event)
        self.topic_of[event.id] = topic
        return event

    async def record_many(self, events: Sequence[NewEvent]) -> list[str]:
        recorded = [
            await self.record(
                topic=e.topic, type_=e.type, subject=e.subject, version=e.version, actor=e.actor,
                data=orjson.loads(e.data) if type(e.data) is bytes else cast(dict[str, Any], e.data), time=e.time,
            )
            for e in events
        ]
        return [e.id for e in recorded]

    def events_of(self, subject: str) -> list[CloudEvent]:
        return [e for e in self.events if e.subject == subject]
