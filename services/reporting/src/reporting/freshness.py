"""Freshness: what reporting has applied of each source, and reading one's own writes.

- The projection tallies, per source service (and per operator for the funding ledger's grants), the
  events it applies and the latest of them — by event time, then id (:class:`Tally`) — and writes the
  tallies in the transaction that applies the events (``reporting_source``): a replay or a rebuild of
  the same events gives the same tallies.
- :class:`Freshness`, one per service process (in its context, ``reads.freshness_of``), holds the
  live generation's tallies as last committed by the process's live consumer; it answers the
  ``sources`` summary of every indicator response and of ``GET /v1/indicators/freshness`` without a
  query, and wakes the requests waiting for an event (``after=<event-id>``) when the commit that
  applied it is done. A request that starts waiting checks the history first (the event may be
  applied already) — the requests that start while such a check is under way share the next one —; while requests wait, one task checks the history for all of their events every
  :data:`RECHECK_S` (what another process applied): one query a second, whatever the number waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from ti_shared.logging import get_logger

from reporting.domain import Entity, Stamp

log = get_logger(__name__)

#: the service that owns each entity's topic (CONTRACT §1)
SERVICE_OF_ENTITY: dict[Entity, str] = {
    "territory": "territory-registry", "action": "action-tracker", "grant": "funding-ledger", "site": "site-catalog",
}
SERVICES: tuple[str, ...] = tuple(SERVICE_OF_ENTITY.values())
#: the service whose events are also tallied per operator (a grant's subject is ``OPERATOR/operator_ref``)
BY_OPERATOR = "funding-ledger"

#: ``wait=`` of ``after=``: by default and at most, in seconds
DEFAULT_WAIT_S = 5.0
MAX_WAIT_S = 30.0
#: how often the history is checked again for the events requests are waiting for
RECHECK_S = 1.0
#: event ids a transaction notes for the waiters at most (beyond, every waiter checks the history)
NOTED_IDS = 10_000
#: requests of one process waiting for an event at most (each re-checks the history every RECHECK_S);
#: beyond, a request is answered at once with a 503 problem and ``Retry-After``
MAX_WAITERS = 1_000


class TooManyWaiting(Exception):
    """``MAX_WAITERS`` requests of this process are waiting already."""

SourceKey = tuple[str, str]
"""(service, operator): the operator of a grant, '' for the other entities"""


@dataclass(frozen=True, slots=True)
class Tally:
    """What a generation has applied of one source: how many events, and the latest (time, then id)."""

    events: int
    last_time: datetime
    last_event_id: str


def source_of(entity: Entity, subject: str) -> SourceKey:
    return SERVICE_OF_ENTITY[entity], subject.partition("/")[0] if entity == "grant" else ""


@dataclass
class Applied:
    """What one transaction applies, per source: the sources' new tallies, the event ids (up to
    :data:`NOTED_IDS`; None beyond)."""

    changed: dict[SourceKey, Tally] = field(default_factory=dict)
    ids: list[str] | None = field(default_factory=list)

    def add(self, before: Mapping[SourceKey, Tally], entity: Entity, subject: str, stamp: Stamp) -> None:
        key = source_of(entity, subject)
        was = self.changed.get(key) or before.get(key)
        if was is None:
            self.changed[key] = Tally(1, stamp.time, stamp.event_id)
        elif (stamp.time, stamp.event_id) > (was.last_time, was.last_event_id):
            self.changed[key] = Tally(was.events + 1, stamp.time, stamp.event_id)
        else:
            self.changed[key] = Tally(was.events + 1, was.last_time, was.last_event_id)
        if self.ids is not None:
            if len(self.ids) < NOTED_IDS:
                self.ids.append(stamp.event_id)
            else:
                self.ids = None


# --- the summary --------------------------------------------------------------------------------------


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(events: int, latest: tuple[datetime, str] | None, now: datetime | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "events_applied": events,
        "last_event_time": _instant(latest[0]) if latest is not None else None,
        "last_event_id": latest[1] if latest is not None else None,
    }
    if now is not None:
        out["lag_s"] = round(max(0.0, (now - latest[0]).total_seconds()), 3) if latest is not None else None
    return out


def summary(tallies: Mapping[SourceKey, Tally], now: datetime | None = None) -> dict[str, Any]:
    """``sources``: each source service (all four, in CONTRACT §1's order) with the events applied and
    the latest event (time and id) — with ``now``, also its lag (``now`` − its time) — and for the
    funding ledger the same per operator."""
    out: dict[str, Any] = {}
    for service in SERVICES:
        parts = sorted((operator, t) for (s, operator), t in tallies.items() if s == service)
        latest = max(((t.last_time, t.last_event_id) for _, t in parts), default=None)
        entry = _entry(sum(t.events for _, t in parts), latest, now)
        entry["operators"] = (
            {operator: _entry(t.events, (t.last_time, t.last_event_id), now) for operator, t in parts}
            if service == BY_OPERATOR else {}
        )
        out[service] = entry
    return out


# --- the process's view, and the waiters -----------------------------------------------------------------


class _Waiter:
    __slots__ = ("applied", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.applied = False


AppliedAmong = Callable[[Sequence[str]], Awaitable[Collection[str]]]
"""Of these event ids, those the live generation has applied (a query of the history)."""


class Freshness:
    """The live generation's tallies as this process last committed them, and the requests waiting
    for events (see the module's docstring)."""

    def __init__(self, generation: int, tallies: Mapping[SourceKey, Tally]) -> None:
        self.generation = generation
        self._tallies: Mapping[SourceKey, Tally] = tallies
        self._waiters: dict[str, list[_Waiter]] = {}
        self._count = 0
        self._encoded: bytes | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._applied_among: AppliedAmong | None = None
        #: the first checks: the ids asked for while one is under way, the answer they will share
        self._asked: set[str] = set()
        self._answer: asyncio.Future[Collection[str]] | None = None
        self._asking: asyncio.Task[None] | None = None

    @property
    def tallies(self) -> Mapping[SourceKey, Tally]:
        return self._tallies

    def committed(self, generation: int, tallies: Mapping[SourceKey, Tally], event_ids: Collection[str] | None) -> None:
        """A transaction of the live consumer committed: ``tallies`` are the generation's now, and the
        events ``event_ids`` are applied (None: not told; every waiter checks the history again)."""
        self.generation, self._tallies, self._encoded = generation, tallies, None
        if not self._waiters:
            return
        if event_ids is None:
            for waiters in self._waiters.values():
                for waiter in waiters:
                    waiter.woken.set()
            return
        if len(event_ids) > len(self._waiters):
            applied = set(event_ids)
            ids: Collection[str] = [i for i in self._waiters if i in applied]
        else:
            ids = event_ids
        for event_id in ids:
            for waiter in self._waiters.get(event_id, ()):
                waiter.applied = True
                waiter.woken.set()

    def freshness(self, now: datetime) -> dict[str, Any]:
        """The sources' summary with the lags at ``now`` (``GET /v1/indicators/freshness``)."""
        return summary(self._tallies, now)

    def splice(self, body: bytes) -> bytes:
        """An indicators response (a JSON object) with ``sources`` (no lags: the same bytes until the next
        commit) added as its last member."""
        if self._encoded is None:
            self._encoded = b',"sources":' + orjson.dumps(summary(self._tallies)) + b"}"
        return body[:-1] + self._encoded

    async def wait_applied(self, event_id: str, wait_s: float, applied_among: AppliedAmong) -> bool:
        """True once the live generation has applied ``event_id``; False when ``wait_s`` went by first."""
        if self.waiting >= MAX_WAITERS:
            raise TooManyWaiting
        waiter = _Waiter()
        self._count += 1
        self._waiters.setdefault(event_id, []).append(waiter)  # before the check: a commit meanwhile wakes it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        try:
            while True:
                waiter.woken.clear()  # a commit during the check below wakes the wait after it at once
                if waiter.applied or await self._applied_now(event_id, applied_among) or waiter.applied:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                self._rechecking(applied_among)
                try:
                    async with asyncio.timeout(remaining):
                        await waiter.woken.wait()
                except TimeoutError:
                    return waiter.applied
        finally:
            self._count -= 1
            waiters = self._waiters.get(event_id)
            if waiters is not None:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[event_id]

    async def _applied_now(self, event_id: str, applied_among: AppliedAmong) -> bool:
        """Whether the history has the event: one query at a time, for every id asked meanwhile."""
        if self._answer is None:
            self._answer = asyncio.get_running_loop().create_future()
        answer = self._answer
        self._asked.add(event_id)
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask(applied_among), name="freshness-checks")
        return event_id in await asyncio.shield(answer)  # a request that goes away leaves the others their answer

    async def _ask(self, applied_among: AppliedAmong) -> None:
        while self._asked:
            ids, answer = sorted(self._asked), self._answer
            assert answer is not None
            self._asked, self._answer = set(), None
            try:
                answer.set_result(await applied_among(ids))
            except Exception as exc:  # noqa: BLE001 - each request asking gets the failure
                answer.set_exception(exc)
                answer.exception()  # retrieved: nobody may be waiting any more

    def _rechecking(self, applied_among: AppliedAmong) -> None:
        """The task that checks the history for every awaited event, while there are some."""
        self._applied_among = applied_among
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._rechecks(), name="freshness-rechecks")

    async def _rechecks(self) -> None:
        """Every ``RECHECK_S`` while requests wait (it ends with the last of them)."""
        while self._waiters:
            await asyncio.sleep(RECHECK_S)
            ids = list(self._waiters)
            if not ids or self._applied_among is None:
                continue
            try:
                found = await self._applied_among(ids)
            except Exception as exc:  # noqa: BLE001 - the waiters' own deadline still holds; checked again next time
                log.warning("freshness: the history check failed, trying again", error=repr(exc))
                continue
            for event_id in found:
                for waiter in self._waiters.get(event_id, ()):
                    waiter.applied = True
                    waiter.woken.set()

    @property
    def waiting(self) -> int:
        """Requests waiting for an event now."""
        return self._count
