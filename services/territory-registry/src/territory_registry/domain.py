"""Pure rules of the registry: what a write changes, which event it gives, and the checks beyond types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import ti_shared.service

from territory_registry.schemas import Change, Territory, TerritoryFields

#: the body fields of a territory, in their contract order
FIELDS: tuple[str, ...] = tuple(TerritoryFields.model_fields)


def territory_state(fields: TerritoryFields) -> dict[str, Any]:
    """The JSON form of a territory's body fields (what is compared, stored and published)."""
    return fields.model_dump(mode="json")


def territory_problems(fields: TerritoryFields) -> list[dict[str, Any]]:
    """Rules spanning several values: each EPCI SIREN and each département listed once."""
    return state_problems({"epcis": [{"siren": e.siren} for e in fields.epcis], "departement_codes": fields.departement_codes})


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


class Decision(ti_shared.service.Decision[Change, Territory]):
    """What writing a territory does: nothing (``change`` None, ``entity`` the current territory) or one
    new version (``entity``), published as ``territory.<change>``."""


def decide_write(current: Territory | None, body: TerritoryFields, *, territory_id: str, at: datetime) -> Decision:
    """What writing ``body`` as the territory ``territory_id`` at instant ``at`` does.

    A body without ``communes`` keeps the current perimeter. Creation is ``registered`` (every field
    changed); a status becoming ``withdrawn`` is ``withdrawn``;
    anything else, re-activation included, is ``updated``; the same state changes nothing.
    """
    new = territory_state(body)
    if new.get("communes") is None:
        new["communes"] = list(current.communes) if current is not None else []
    if current is None:
        return Decision("registered", _territory(body, new["communes"], territory_id, 1, at), FIELDS)
    state = current.model_dump(mode="json", include=set(FIELDS))
    changed = tuple(f for f in FIELDS if state.get(f) != new.get(f))
    if not changed:
        return Decision(None, current)
    withdrawn = new.get("status") == "withdrawn" and state.get("status") != "withdrawn"
    version = current.version + 1
    return Decision("withdrawn" if withdrawn else "updated", _territory(body, new["communes"], territory_id, version, at), changed)


def _territory(body: TerritoryFields, communes: list[str], territory_id: str, version: int, at: datetime) -> Territory:
    """The territory of a validated body: its values as they are (validated once, in the body; the id is
    the path's, checked by its pattern; ``at`` an aware instant), not validated again from their JSON form."""
    values = {f: getattr(body, f) for f in FIELDS}
    values["communes"] = communes
    return Territory.model_construct(**values, id=territory_id, version=version, updated_at=at)
