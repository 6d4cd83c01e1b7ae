"""Pure rules of the editions (no I/O): what may be frozen, the content hash, who may sign, and
which figures a restatement lists."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from reporting.domain import AsOf, flatten

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

PARTS: tuple[Literal["indicators", "html", "pdf"], ...] = ("indicators", "html", "pdf")
MEDIA_TYPES = {"indicators": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


class EditionRefused(ValueError):
    """A request the rules refuse: ``status`` (403, 409, 422), ``loc`` for a field."""

    def __init__(self, status: int, message: str, loc: list[str | int] | None = None) -> None:
        super().__init__(message)
        self.status, self.loc = status, loc


def check_freezable(as_of: AsOf, now: datetime) -> None:
    """An edition is as of a past instant: later writes can then change its figures only when they
    are back-dated (and those are listed as restatements)."""
    if as_of.instant > now:
        raise EditionRefused(422, "must not be in the future (a date means the end of that day, Europe/Paris)", ["body", "as_of"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(parts: Mapping[str, bytes]) -> str:
    """SHA-256 of the parts' SHA-256 digests (hex), each followed by a newline, in :data:`PARTS` order:
    anyone holding the three parts recomputes it with ``sha256sum``."""
    return sha256("".join(sha256(parts[name]) + "\n" for name in PARTS).encode())


@dataclass(frozen=True)
class Signer:
    role: Literal["admin", "territory_lead"]
    territory_id: str | None


def signer_of(
    *, is_admin: bool, own_territories: Iterable[str], territory_id: str | None, covered: Iterable[str], final: bool
) -> Signer:
    """Who signs: an admin signs the edition as a whole (it becomes final); a project lead signs for
    one of its own territories (``ti_territories``) that the edition covers. A final edition takes no
    more sign-offs."""
    if final:
        raise EditionRefused(409, "The edition is final: an admin has signed it")
    if is_admin:
        if territory_id is not None:
            raise EditionRefused(422, "an admin signs the edition as a whole, without territory_id", ["body", "territory_id"])
        return Signer("admin", None)
    if territory_id is None:
        raise EditionRefused(422, "a project lead signs for one of its territories: territory_id is required", ["body", "territory_id"])
    if territory_id not in set(own_territories):
        raise EditionRefused(403, f"This token is not the project lead of territory '{territory_id}'")
    if territory_id not in set(covered):
        raise EditionRefused(422, f"the edition does not cover territory '{territory_id}'", ["body", "territory_id"])
    return Signer("territory_lead", territory_id)


def changed_figures(published: Mapping[str, Any], now: Mapping[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """``(code, key, published value, value now)`` of every leaf value that differs, in the order of
    the published document (then codes only the new one has)."""
    out: list[tuple[str, str, Any, Any]] = []
    for code in [*published, *(c for c in now if c not in published)]:
        old = dict(flatten(published[code])) if code in published else {}
        new = dict(flatten(now[code])) if code in now else {}
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new or key not in old or old[key] != new[key] or type(old[key]) is not type(new[key]):
                out.append((code, key, old.get(key), new.get(key)))
    return out


Figure = tuple[str, str]
"""(indicator code, breakdown key)"""
#: beyond this many changed entities, each restated figure lists them all (no attribution one by one)
ATTRIBUTION_LIMIT = 100


def _leaves(document: Mapping[str, Any]) -> dict[Figure, Any]:
    return {(code, key): value for code, v in document.items() for key, value in flatten(v)}


def _differing(a: Mapping[Figure, Any], b: Mapping[Figure, Any]) -> set[Figure]:
    return {f for f in a.keys() | b.keys() if f not in a or f not in b or a[f] != b[f] or type(a[f]) is not type(b[f])}


def responsible_entities(
    restated: Iterable[Figure],
    now: Mapping[K, R],
    published: Mapping[K, R | None],
    compute: Callable[[Iterable[R]], Mapping[str, Any]],
) -> dict[Figure, list[K]]:
    """Which changed entities each restated figure owes its new value to.

    ``now`` holds every entity's state counted now; ``published`` the state the edition counted of
    each entity that changed since (None: it was not there). An entity is responsible for a figure
    when putting it back as published moves the figure away from its value now, or when applying its
    change alone to the published states moves the figure: both by the engine (``compute``: the
    indicators of the scope over a set of states). A figure no single change explains (a distinct
    count two changes make together) lists every changed entity, and so does every figure when more
    than :data:`ATTRIBUTION_LIMIT` entities changed."""
    restated = list(restated)
    changed = list(published)
    everyone = {f: list(changed) for f in restated}
    if len(changed) > ATTRIBUTION_LIMIT:
        return everyone

    def states(overrides: Mapping[K, R | None]) -> list[R]:
        merged: dict[K, R | None] = {**now, **overrides}
        return [row for row in merged.values() if row is not None]

    removed: dict[K, R | None] = dict(published)
    base_now = _leaves(compute(now.values()))
    base_published = _leaves(compute(states(removed)))
    out: dict[Figure, list[K]] = {f: [] for f in restated}
    for key in changed:
        moved = _differing(base_now, _leaves(compute(states({key: published[key]}))))
        alone = {**removed, key: now.get(key)}
        moved |= _differing(base_published, _leaves(compute(states(alone))))
        for figure in restated:
            if figure in moved:
                out[figure].append(key)
    return {f: keys or everyone[f] for f, keys in out.items()}
