"""French formats (CLDR, through Babel) of the API's values: counts, euros, hectares, shares, dates."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

LOCALE = "fr_FR"
TIMEZONE = ZoneInfo("Europe/Paris")
MISSING = "—"
#: units follow the value after a no-break space, so that « 63,0 M€ » never breaks

Kind = Literal["count", "money", "area", "share"]


def kind_of_unit(unit: str, key: str = "") -> Kind:
    """How a value is written, from its catalogue unit (or, inside ``grants.by_programme``, its key)."""
    leaf = key.rsplit(".", 1)[-1] if key else ""
    if unit == "EUR" or leaf.endswith("_eur"):
        return "money"
    if unit.startswith("part") or "_share" in key:
        return "share"
    if unit == "ha":
        return "area"
    return "count"


def number(value: Any) -> Decimal | None:
    """The API value as a number: decimal strings, integers and floats (shares); None for null."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def text(value: Any, kind: Kind) -> str:
    """The value as the page shows it in large: ``2 812``, ``63,0 M€``, ``2 942 ha``, ``32,0 %``."""
    n = number(value)
    if n is None:
        return MISSING
    if kind == "money":
        if abs(n) >= 1_000_000_000:
            return format_decimal(n / 1_000_000_000, "#,##0.0", locale=LOCALE) + "\u00a0Md€"
        if abs(n) >= 1_000_000:
            return format_decimal(n / 1_000_000, "#,##0.0", locale=LOCALE) + "\u00a0M€"
        return format_decimal(n, "#,##0", locale=LOCALE) + "\u00a0€"
    if kind == "share":
        return format_percent(n, "#,##0.0\u202f%", locale=LOCALE)
    if kind == "area":
        return format_decimal(n, "#,##0.##", locale=LOCALE) + "\u00a0ha"
    return format_decimal(n, "#,##0.##", locale=LOCALE)


def exact(value: Any, kind: Kind) -> str | None:
    """The exact value, when the large text rounds it (euros to the cent)."""
    n = number(value)
    if n is None or kind != "money" or abs(n) < 1_000_000:
        return None
    return full(n, kind)


def full(value: Any, kind: Kind) -> str:
    """The value written in full (euros to the cent, no « M€ »): what one entity contributes."""
    n = number(value)
    if n is None:
        return MISSING
    if kind == "money":
        return format_decimal(n, "#,##0.00", locale=LOCALE) + "\u00a0€"
    return text(value, kind)


def delta(value: Any, before: Any, kind: Kind) -> str | None:
    """The change from ``before`` to ``value``: ``+383``, ``−1,2 M€``, ``+2,1 pts``; None when either is null."""
    a, b = number(value), number(before)
    if a is None or b is None:
        return None
    d = a - b
    sign = "+" if d > 0 else "−" if d < 0 else "±"
    magnitude = abs(d)
    if kind == "share":
        return sign + format_decimal(magnitude * 100, "#,##0.0", locale=LOCALE) + "\u00a0pts"
    return sign + text(magnitude, kind)


def day(value: date) -> str:
    return format_date(value, "long", locale=LOCALE)


def instant(value: datetime) -> str:
    return format_datetime(value, "d MMMM y 'à' HH:mm", tzinfo=TIMEZONE, locale=LOCALE)


def when(value: str) -> str:
    """A date or instant of a query (``as_of``, ``compare``) in French: « 30 novembre 2023 »."""
    try:
        return day(date.fromisoformat(value)) if len(value) == 10 else instant(datetime.fromisoformat(value))
    except ValueError:
        return value


def data_date(as_of: str | None, generated_at: str) -> str:
    """« Données au 30 novembre 2024 » (as_of) or « Données à jour le 1 décembre 2026 à 10:00 » (live)."""
    if as_of:
        try:
            if len(as_of) == 10:
                return f"Données au {day(date.fromisoformat(as_of))} (fin de journée, heure de Paris)"
            return f"Données au {instant(datetime.fromisoformat(as_of))} (heure de Paris)"
        except ValueError:
            return f"Données au {as_of}"
    return f"Données à jour le {instant(datetime.fromisoformat(generated_at))} (heure de Paris)"
