"""Event decoding: the ``data`` of an event → the compact row of its entity state (no I/O).

The events of CONTRACT §5 carry the whole resource; the indicators need a dozen fields of it. Most
events are exactly what the owning services publish, so the decoder first reads the fields directly
(exact JSON types, enum values checked against the vocabulary): a few microseconds. Anything else
— a missing optional field is fine, but a number given as a string, a date in another form… — goes
through the lenient pydantic models below, which decide as before what is coerced and what is
refused. Either way the row is then checked against what the tables can hold (lengths, ranges, no
NUL character), so that writing a decoded row can never fail: a refused event is dead-lettered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from ti_shared.geo import REGIONS, departement_of_commune, region_of_commune, region_of_departement
from ti_shared.vocabulary import (
    ACTION_STATUSES,
    AXES,
    MATURITIES,
    OBJECTIVES,
    THEMES,
    VALUE_CHAINS,
    ActionStatus,
    Axis,
    Maturity,
    Objective,
    Theme,
    ValueChain,
)

from reporting.domain import ActionRow, GrantRow, Row, SiteRow, TerritoryRow

#: the longest values the projection's columns hold
MAX_ID = 256
MAX_TERRITORY_ID = 16
MAX_PROGRAMME = 64
#: NUMERIC(14, 2) money, NUMERIC(12, 2) areas and int4 job counts of the contract's resources
MAX_MONEY_CENTS = 10**14 - 1
MAX_AREA_CENTS = 10**12 - 1
MAX_JOBS = 2**31 - 1


class InvalidEventData(ValueError):
    """The ``data`` of an event lacks what the indicators need, or holds what they cannot count."""


def entity_of_type(event_type: str) -> str:
    """``fr.anct.ti.grant.committed.v1`` → ``grant``."""
    parts = event_type.split(".")
    return parts[3] if len(parts) > 4 else ""


def decode(event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    """The compact row of an event's entity state; InvalidEventData when ``data`` is unusable."""
    entity = entity_of_type(event_type)
    direct = _DIRECT.get(entity)
    if direct is None:
        raise InvalidEventData(f"unknown entity in event type {event_type!r}")
    _check_text("subject", subject, MAX_ID)
    try:
        row = direct(event_type, subject, version, data)
    except _NotCanonical:
        row = _lenient(entity, event_type, subject, version, data)
    _check_row(row)
    return row


# --- the direct reading ---------------------------------------------------------------------------


class _NotCanonical(Exception):
    """Not the exact shape the services publish: the lenient models decide."""


_AXES = {a: a for a in AXES}
_STATUSES = {s: s for s in ACTION_STATUSES}
_THEMES = {t: t for t in THEMES}
_OBJECTIVES = {o: o for o in OBJECTIVES}
_CHAINS = {c: c for c in VALUE_CHAINS}
_MATURITIES = {m: m for m in MATURITIES}
_TERRITORY_STATUSES = {"active": "active", "withdrawn": "withdrawn"}
_GRANT_STATUSES = {"committed": "committed", "cancelled": "cancelled"}
_SITE_STATUSES = {"labelled": "labelled", "withdrawn": "withdrawn"}
_MONEY = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: the tuples of enum values seen, shared by every row carrying the same ones (memory)
_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
#: strings that many rows carry (territory ids, programmes, régions, départements), one object each
_SHARED: dict[str, str] = {}


def _shared(text: str) -> str:
    return _SHARED.setdefault(text, text) if len(_SHARED) < 100_000 else text


def _one_of(values: dict[str, str], value: object) -> str:
    if type(value) is not str:
        raise _NotCanonical
    found = values.get(value)
    if found is None:
        raise _NotCanonical
    return found


def _enum_tuple(values: dict[str, str], items: object) -> tuple[str, ...]:
    if items is None:
        raise _NotCanonical
    if type(items) is not list:
        raise _NotCanonical
    picked = tuple(dict.fromkeys(_one_of(values, v) for v in items))
    return _TUPLES.setdefault(picked, picked)


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if type(value) is not bool:
        raise _NotCanonical
    return value


def _known_flag(data: Mapping[str, Any], key: str) -> bool:
    """A flag that may be unknown (null: a site's ``land_recycling`` its inventory does not tell), counted as not set."""
    value = data.get(key)
    if value is None:
        return False
    if type(value) is not bool:
        raise _NotCanonical
    return value


def _text_or_none(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and type(value) is not str:
        raise _NotCanonical
    return value


def _cents(value: object) -> int:
    """Exact money: a decimal string with at most two decimals or an integer."""
    if type(value) is str and _MONEY.fullmatch(value):
        whole, _, frac = value.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return sign * (abs(int(whole)) * 100 + int((frac + "00")[:2]))
    if type(value) is int:
        return value * 100
    raise _NotCanonical


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None:
        return 0
    if type(value) is not int:
        raise _NotCanonical
    return value


def _territory(event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    region = data.get("region_code")
    if type(region) is not str or region not in REGIONS:
        raise _NotCanonical
    epcis = data.get("epcis", [])
    if type(epcis) is not list:
        raise _NotCanonical
    sirens = set()
    for epci in epcis:
        siren = epci.get("siren") if type(epci) is dict else None
        if type(siren) is not str:
            raise _NotCanonical
        sirens.add(siren)
    lead = data.get("project_lead")
    if lead is not None and type(lead) is not dict:
        raise _NotCanonical
    copil = data.get("launch_copil_held_on")
    if copil is not None and (type(copil) is not str or not _DATE.fullmatch(copil)):
        raise _NotCanonical
    if copil is not None:
        try:
            date.fromisoformat(copil)
        except ValueError as exc:
            raise _NotCanonical from exc
    return TerritoryRow(
        subject, version, _shared(region), _one_of(_TERRITORY_STATUSES, data.get("status")), tuple(sorted(sirens)),
        lead is not None and _flag(lead, "in_post"), lead is not None and _flag(lead, "cofinanced"), copil is not None,
    )


def _action(event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    territory = data.get("territory_id")
    if type(territory) is not str:
        raise _NotCanonical
    deleted = _flag(data, "deleted") or event_type.endswith(".deleted.v1")
    return ActionRow(
        subject, version, _shared(territory), _one_of(_AXES, data.get("axis")),
        _one_of(_STATUSES, data.get("status")), _enum_tuple(_THEMES, data.get("themes", [])), deleted,
        data.get("budget_eur") is not None,
    )


def _grant(event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    programme = data.get("programme")
    if type(programme) is not str:
        raise _NotCanonical
    territory = _text_or_none(data, "territory_id")
    commune = _text_or_none(data, "commune_insee")
    dep = departement_of_commune(commune) if commune else None
    investment, disbursed = data.get("investment_eur"), data.get("disbursed_eur")
    chain = data.get("value_chain")
    return GrantRow(
        subject, version, _shared(programme), _one_of(_GRANT_STATUSES, data.get("status")),
        None if territory is None else _shared(territory), dep, region_of_departement(dep) if dep else None,
        _cents(data.get("amount_eur")), 0 if investment is None else _cents(investment),
        0 if disbursed is None else _cents(disbursed), _count(data, "jobs_forecast"), _count(data, "jobs_conditional"),
        _enum_tuple(_OBJECTIVES, data.get("contributions", [])), None if chain is None else _one_of(_CHAINS, chain),
    )


def _site(event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    commune = data.get("commune_insee")
    if type(commune) is not str:
        raise _NotCanonical
    territory = _text_or_none(data, "territory_id")
    return SiteRow(
        subject, version, None if territory is None else _shared(territory), region_of_commune(commune),
        _one_of(_SITE_STATUSES, data.get("status")), _cents(data.get("area_ha")), _known_flag(data, "land_recycling"),
        _flag(data, "roadmap_delivered"), _flag(data, "workshop_held"), _one_of(_MATURITIES, data.get("maturity")),
    )


_DIRECT: dict[str, Callable[[str, str, int, Mapping[str, Any]], Row]] = {
    "territory": _territory, "action": _action, "grant": _grant, "site": _site,
}


# --- the lenient models (everything the direct reading does not take) -------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Epci(_Lenient):
    siren: str


class _Lead(_Lenient):
    in_post: bool = False
    cofinanced: bool = False


class TerritoryData(_Lenient):
    region_code: str
    status: Literal["active", "withdrawn"]
    epcis: list[_Epci] = []
    project_lead: _Lead | None = None
    launch_copil_held_on: date | None = None


class ActionData(_Lenient):
    territory_id: str
    axis: Axis
    status: ActionStatus
    themes: list[Theme] = []
    deleted: bool = False
    budget_eur: Any = None  # only whether it is there: a malformed budget is the action-tracker's to refuse


class GrantData(_Lenient):
    programme: str
    status: Literal["committed", "cancelled"]
    territory_id: str | None = None
    commune_insee: str | None = None
    amount_eur: Decimal
    investment_eur: Decimal | None = None
    disbursed_eur: Decimal | None = None
    jobs_forecast: int | None = None
    jobs_conditional: int | None = None
    contributions: list[Objective] = []
    value_chain: ValueChain | None = None


class SiteData(_Lenient):
    commune_insee: str
    territory_id: str | None = None
    area_ha: Decimal
    maturity: Maturity
    land_recycling: bool | None = False  # null: unknown, counted as not recycling
    workshop_held: bool = False
    roadmap_delivered: bool = False
    status: Literal["labelled", "withdrawn"]


def to_cents(value: Decimal) -> int:
    """An amount as integer cents, rounded half up (as a NUMERIC(…, 2) column rounds it)."""
    try:
        return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation as exc:
        raise InvalidEventData(f"{value} is not a finite amount") from exc


def _lenient(entity: str, event_type: str, subject: str, version: int, data: Mapping[str, Any]) -> Row:
    try:
        if entity == "territory":
            t = TerritoryData.model_validate(data)
            if t.region_code not in REGIONS:
                raise InvalidEventData(f"region_code {t.region_code!r} is not an INSEE region code")
            lead = t.project_lead
            return TerritoryRow(
                subject, version, t.region_code, t.status, tuple(sorted({e.siren for e in t.epcis})),
                bool(lead and lead.in_post), bool(lead and lead.cofinanced), t.launch_copil_held_on is not None,
            )
        if entity == "action":
            a = ActionData.model_validate(data)
            deleted = a.deleted or event_type.endswith(".deleted.v1")
            return ActionRow(
                subject, version, a.territory_id, a.axis, a.status, tuple(dict.fromkeys(a.themes)), deleted,
                a.budget_eur is not None,
            )
        if entity == "grant":
            g = GrantData.model_validate(data)
            dep = departement_of_commune(g.commune_insee) if g.commune_insee else None
            return GrantRow(
                subject, version, g.programme, g.status, g.territory_id, dep, region_of_departement(dep) if dep else None,
                to_cents(g.amount_eur), to_cents(g.investment_eur or Decimal(0)), to_cents(g.disbursed_eur or Decimal(0)),
                g.jobs_forecast or 0, g.jobs_conditional or 0, tuple(dict.fromkeys(g.contributions)), g.value_chain,
            )
        s = SiteData.model_validate(data)
        return SiteRow(
            subject, version, s.territory_id, region_of_commune(s.commune_insee), s.status, to_cents(s.area_ha),
            bool(s.land_recycling), s.roadmap_delivered, s.workshop_held, s.maturity,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InvalidEventData(f"data.{loc}: {first['msg']}") from exc


# --- what the tables can hold ---------------------------------------------------------------------


def _check_text(name: str, value: str | None, longest: int) -> None:
    if value is None:
        return
    if len(value) > longest:
        raise InvalidEventData(f"{name} is longer than {longest} characters")
    if "\x00" in value:
        raise InvalidEventData(f"{name} holds a NUL character")


def _check_range(name: str, value: int, largest: int) -> None:
    if not -largest <= value <= largest:
        raise InvalidEventData(f"data.{name} is out of range")


def _check_row(row: Row) -> None:
    if isinstance(row, TerritoryRow):
        for siren in row.epci_sirens:
            _check_text("data.epcis.siren", siren, MAX_ID)
    elif isinstance(row, ActionRow):
        _check_text("data.territory_id", row.territory_id, MAX_TERRITORY_ID)
    elif isinstance(row, GrantRow):
        _check_text("data.territory_id", row.territory_id, MAX_TERRITORY_ID)
        _check_text("data.programme", row.programme, MAX_PROGRAMME)
        for name, cents in (("amount_eur", row.amount_cents), ("investment_eur", row.investment_cents),
                            ("disbursed_eur", row.disbursed_cents)):
            _check_range(name, cents, MAX_MONEY_CENTS)
        _check_range("jobs_forecast", row.jobs_forecast, MAX_JOBS)
        _check_range("jobs_conditional", row.jobs_conditional, MAX_JOBS)
    else:
        _check_text("data.territory_id", row.territory_id, MAX_TERRITORY_ID)
        _check_range("area_ha", row.area_cents, MAX_AREA_CENTS)

