"""Pure rules of the registry: what a PUT changes, which event it gives, and the checks beyond types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from territory_registry.schemas import Change, TerritoryFields

#: the body fields of a territory, in their contract order
FIELDS: tuple[str, ...] = tuple(TerritoryFields.model_fields)


def territory_state(fields: TerritoryFields) -> dict[str, Any]:
    """The JSON form of a territory's body fields (what is compared, stored and published)."""
    return fields.model_dump(mode="json")


def territory_problems(fields: TerritoryFields) -> list[dict[str, Any]]:
    """Rules spanning several values: each EPCI SIREN and each département listed once."""
    return state_problems(territory_state(fields))


def state_problems(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """:func:`territory_problems` over a raw state (also usable when some values are invalid)."""
    problems: list[dict[str, Any]] = []
    epcis = state.get("epcis")
    seen_sirens: dict[str, int] = {}
    for i, epci in enumerate(epcis if isinstance(epcis, list) else []):
        siren = epci.get("siren") if isinstance(epci, dict) else None
        if not isinstance(siren, str):
            continue
        if siren in seen_sirens:
            msg = f"SIREN {siren} is already listed at epcis[{seen_sirens[siren]}]"
            problems.append({"loc": ["epcis", i, "siren"], "msg": msg})
        else:
            seen_sirens[siren] = i
    codes = state.get("departement_codes")
    seen_deps: dict[str, int] = {}
    for i, code in enumerate(codes if isinstance(codes, list) else []):
        if not isinstance(code, str):
            continue
        if code in seen_deps:
            msg = f"département {code} is already listed at departement_codes[{seen_deps[code]}]"
            problems.append({"loc": ["departement_codes", i], "msg": msg})
        else:
            seen_deps[code] = i
    return problems


@dataclass(frozen=True)
class PlannedChange:
    """A real change of a territory: the event it gives, its new version and the fields it changes."""

    change: Change
    version: int
    changed_fields: list[str]


def plan_change(current: dict[str, Any] | None, current_version: int | None, new: dict[str, Any]) -> PlannedChange | None:
    """What writing ``new`` over ``current`` does; None when nothing changes (same version, no event).

    Creation is ``registered``; a status becoming ``withdrawn`` is ``withdrawn``; anything else,
    re-activation included, is ``updated``.
    """
    if current is None or current_version is None:
        return PlannedChange("registered", 1, list(FIELDS))
    changed = [f for f in FIELDS if current.get(f) != new.get(f)]
    if not changed:
        return None
    withdrawn = new.get("status") == "withdrawn" and current.get("status") != "withdrawn"
    return PlannedChange("withdrawn" if withdrawn else "updated", current_version + 1, changed)
