"""The write vocabulary every write service shares (docs/conventions.md): decisions, results, the unit
of work as service functions see it, and the repository base.

No I/O here and nothing of HTTP: a service's ``domain.py`` may use :class:`Decision`, its
``service.py`` the rest. Routes translate a :class:`WriteResult` to a response with
:func:`ti_shared.http.write_response`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ti_shared.events import CloudEvent, NewEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from ti_shared.problems import Problem

C = TypeVar("C")
E = TypeVar("E")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class Decision(Generic[C, E]):
    """What writing one entity does, as the domain decides it (``decide_write``, ``decide_<verb>``).

    ``change`` is the kind of change (the event's past-tense verb: ``registered``, ``amended``…) or None
    when nothing changes (same version, no event); ``entity`` is the entity after the write (the
    current one when nothing changes); ``changed_fields`` the body fields that differ. A service whose
    decisions carry more (a grant's ledger entries) subclasses it.
    """

    change: C | None
    entity: E
    changed_fields: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.change is not None


@dataclass(frozen=True)
class WriteResult(Generic[T]):
    """What a service function returns to its route; :func:`ti_shared.http.write_response` makes the
    HTTP response of it (status, ``ETag``, ``Location``, a problem document).

    ``entity`` is the resource (a pydantic model or its JSON form) or the report of an import/batch.
    ``created`` → 201, else 200; ``problem`` (a refused atomic import, whose report is recorded) → its
    status and problem document. ``version`` → ``ETag: W/"<version>"``. ``changed`` is False when
    nothing was written (no event); ``event_ids`` are the events the write recorded.
    """

    entity: T
    created: bool = False
    changed: bool = True
    version: int | None = None
    location: str | None = None
    event_ids: tuple[str, ...] = ()
    problem: Problem | None = None

    @property
    def status(self) -> int:
        if self.problem is not None:
            return self.problem.status
        return 201 if self.created else 200


class Uow(Protocol[R_co]):
    """The unit of work as a service function sees it: the service's repository (``repo``), the
    clock (``now``) and the outbox (``record``, ``record_many``). No ``commit``: the route commits
    (``uow.commit()`` or ``idem.commit(response)``), so a use case is one transaction whatever it calls.

    ``ti_shared.app.UnitOfWork`` is the real one; ``ti_shared.fakes.FakeUnitOfWork`` the in-memory one
    of unit tests.
    """

    @property
    def repo(self) -> R_co: ...

    @property
    def now(self) -> datetime: ...

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
    ) -> CloudEvent: ...

    async def record_many(self, events: Sequence[NewEvent]) -> list[str]: ...


class Repository:
    """Base of every service's ``repository.Repository``: its queries are methods over ``session``.

    A service's unit tests use a ``FakeRepository(Repository)`` (``tests/unit/fakes.py``) that
    overrides, over dicts, every method the service functions call; built with
    ``ti_shared.fakes.NO_SESSION``, a method it does not override fails naming itself.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
