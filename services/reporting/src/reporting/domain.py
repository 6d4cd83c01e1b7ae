"""Pure rules of the reporting service (no I/O): the compact entity rows the indicators are computed
from, scopes, ``as_of`` bounds, and the rounding rules of CONTRACT §6."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from ti_shared.events import TOPIC_ACTIONS, TOPIC_GRANTS, TOPIC_SITES, TOPIC_TERRITORIES
from ti_shared.types import format_decimal, parse_date, parse_instant
from ti_shared.vocabulary import DEFAULT_PROGRAMMES as DEFAULT_PROGRAMME_OPERATORS

PARIS = ZoneInfo("Europe/Paris")
NATIONAL = "national"
DEFAULT_PROGRAMMES = tuple(DEFAULT_PROGRAMME_OPERATORS)
SHARE_STEP = Decimal("0.000001")
TWO = Decimal("0.01")

# --- the compact rows -------------------------------------------------------------------------
# One row per entity state: what the indicators need of it, nothing more (money and areas in cents).
# The same rows are the projection's current states, its history (with the event's time and id) and
# what ``as_of`` and explanations are computed over.


class TerritoryRow(NamedTuple):
    id: str
    version: int
    region_code: str
    status: str
    epci_sirens: tuple[str, ...]
    lead_in_post: bool
    lead_cofinanced: bool
    copil_held: bool


class ActionRow(NamedTuple):
    id: str
    version: int
    territory_id: str
    axis: str
    status: str
    themes: tuple[str, ...]
    deleted: bool
    #: the action carries a budget (``budget_eur`` not null): the data quality report counts those without
    has_budget: bool = True


class GrantRow(NamedTuple):
    id: str
    version: int
    programme: str
    status: str
    territory_id: str | None
    departement: str | None
    departement_region: str | None
    amount_cents: int
    investment_cents: int
    disbursed_cents: int
    jobs_forecast: int
    jobs_conditional: int
    contributions: tuple[str, ...]
    value_chain: str | None


class SiteRow(NamedTuple):
    id: str
    version: int
    territory_id: str | None
    region_code: str | None
    status: str
    area_cents: int
    land_recycling: bool
    roadmap_delivered: bool
    workshop_held: bool
    maturity: str


Row = TerritoryRow | ActionRow | GrantRow | SiteRow

Entity = Literal["territory", "action", "grant", "site"]
ENTITIES: tuple[Entity, ...] = ("territory", "action", "grant", "site")
ROW_TYPES: dict[Entity, type[Row]] = {"territory": TerritoryRow, "action": ActionRow, "grant": GrantRow, "site": SiteRow}
ENTITY_OF_ROW: dict[type[Row], Entity] = {cls: entity for entity, cls in ROW_TYPES.items()}
#: the topic each entity's events travel on (CONTRACT §5), and back
TOPIC_OF_ENTITY: dict[Entity, str] = {
    "territory": TOPIC_TERRITORIES, "action": TOPIC_ACTIONS, "grant": TOPIC_GRANTS, "site": TOPIC_SITES,
}
ENTITY_OF_TOPIC: dict[str, Entity] = {topic: entity for entity, topic in TOPIC_OF_ENTITY.items()}
#: the entities placed by their territory (their figures move when it arrives or changes region)
DEPENDENT_ENTITIES: tuple[Entity, ...] = ("action", "grant", "site")


def entity_of(row: Row) -> Entity:
    return ENTITY_OF_ROW[type(row)]


class Stamp(NamedTuple):
    """What set an entity's version: the event's ``time`` and ``id``."""

    time: datetime
    event_id: str


# --- rounding ---------------------------------------------------------------------------------


def share(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator`` rounded half-even to 6 decimals; None when the denominator is 0."""
    if denominator == 0:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(SHARE_STEP, rounding=ROUND_HALF_EVEN))


def from_cents(value: int) -> str:
    """Integer cents as the contract's two-decimal string."""
    return format_decimal((Decimal(value) / 100).quantize(TWO))


def quantized(value: Decimal) -> str:
    """A decimal rounded half-even to 2 decimals (means and medians)."""
    return format_decimal(value.quantize(TWO, rounding=ROUND_HALF_EVEN))


# --- scopes and as_of -------------------------------------------------------------------------

_SCOPE = re.compile(r"^(?:national|region:(?P<region>[0-9A-Za-z]{1,3})|territory:(?P<territory>ti-[0-9]{4}))$")


@dataclass(frozen=True)
class Scope:
    kind: Literal["national", "region", "territory"]
    code: str | None = None

    @property
    def key(self) -> str:
        return NATIONAL if self.kind == "national" else f"{self.kind}:{self.code}"


def parse_scope(text: str) -> Scope:
    """``national``, ``region:<INSEE code>`` or ``territory:<ti-NNNN>``; ValueError when malformed."""
    match = _SCOPE.fullmatch(text.strip())
    if not match:
        raise ValueError("must be 'national', 'region:<code>' (e.g. region:84) or 'territory:<id>' (e.g. territory:ti-8402)")
    if match.group("region"):
        return Scope("region", match.group("region"))
    if match.group("territory"):
        return Scope("territory", match.group("territory"))
    return Scope("national")


@dataclass(frozen=True)
class AsOf:
    """An ``as_of`` bound: states whose event time is ≤ ``instant`` (or < it, for the end of a day)."""

    instant: datetime
    inclusive: bool
    label: str

    def includes(self, at: datetime) -> bool:
        return at <= self.instant if self.inclusive else at < self.instant


def parse_as_of(text: str) -> AsOf:
    """A date ``YYYY-MM-DD`` (the end of that day, Europe/Paris) or an RFC 3339 instant with offset,
    both within the platform's bounded calendar (``ti_shared.types``)."""
    value = text.strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return AsOf(end_of_day_paris(parse_date(value)), inclusive=False, label=value)
    instant = parse_instant(value)
    return AsOf(instant, inclusive=True, label=instant.isoformat().replace("+00:00", "Z"))


def end_of_day_paris(day: date) -> datetime:
    """The first instant after ``day`` in Europe/Paris (exclusive bound), in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=PARIS).astimezone(UTC)


def flatten(value: object, prefix: str = "") -> list[tuple[str, object]]:
    """``{"a": {"b": 1}}`` → ``[("a.b", 1)]``; a scalar gives one pair with an empty key."""
    if isinstance(value, dict):
        out: list[tuple[str, object]] = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]
