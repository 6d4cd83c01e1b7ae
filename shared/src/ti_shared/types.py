"""Value types of the contract: money and surfaces as two-decimal strings, codes, identifiers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from stdnum import luhn

from ti_shared.geo import DEPARTEMENTS, REGIONS, commune_code_problem

TWO = Decimal("0.01")
MAX_MONEY = Decimal("999999999999.99")  # NUMERIC(14,2)


#: at most 40 characters: the range check below needs no arithmetic on what it refuses
_DECIMAL_TEXT = re.compile(r"[0-9]{1,40}(\.[0-9]{1,40})?")
#: a JSON integer beyond this is refused before it becomes a Decimal
_MAX_INTEGER = 10**15


def _to_decimal(value: Any) -> Decimal:
    if type(value) is str:  # what JSON gives: the text's checks first
        return _text_decimal(value)
    if isinstance(value, bool):
        raise ValueError("must be a decimal string such as \"1500000.00\"")
    if isinstance(value, int):
        if not -_MAX_INTEGER < value < _MAX_INTEGER:
            raise ValueError(f"is too large (at most {MAX_MONEY})")
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise ValueError("must be a decimal string such as \"1500000.00\", not a JSON number with a fraction")
    if isinstance(value, str):
        return _text_decimal(value)
    raise ValueError("must be a decimal string such as \"1500000.00\"")


def _text_decimal(value: str) -> Decimal:
    text = value.strip()
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValueError("must be a decimal string such as \"1500000.00\" (digits, optional '.' and decimals)")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("is not a decimal number") from exc


def check_money(value: Decimal) -> Decimal:
    """``value`` with two decimals, refused (ValueError) when not finite, negative, beyond ``NUMERIC(14,2)`` or
    with more than two decimals; the magnitude is checked before any rounding."""
    # an amount as sent: finite, not negative, below 10¹² and above 10⁻⁴, exactly two decimals once
    # rounded — what the checks below accept, returned as they return it
    if value.is_finite() and not value.is_signed() and -3 <= value.adjusted() < 12:
        rounded = value.quantize(TWO, rounding=ROUND_HALF_EVEN)
        if rounded == value:
            return rounded
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value.is_signed() and not value.is_zero():
        raise ValueError("must not be negative")
    if value.is_zero():
        return value.quantize(TWO)
    if value.adjusted() >= 12 or abs(value) > MAX_MONEY:
        raise ValueError(f"is too large (at most {MAX_MONEY})")
    if value.adjusted() < -3 or value != value.quantize(TWO, rounding=ROUND_HALF_EVEN):
        raise ValueError("may have at most two decimals")
    return value.quantize(TWO)


def format_decimal(value: Decimal) -> str:
    """``value`` rounded to two decimals, written without exponent (``"1500000.00"``)."""
    text = str(value)
    # two decimals already, no exponent and few digits (what check_money leaves): the rounding, exact,
    # would write the same text
    if len(text) <= 18 and text[-3:-2] == "." and "E" not in text and "e" not in text:
        return text
    return f"{value.quantize(TWO, rounding=ROUND_HALF_EVEN):f}"


_DECIMAL_SCHEMA = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$", "examples": ["1500000.00"]}

#: a non-negative amount with at most two decimals, given and returned as a string
Decimal2 = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    AfterValidator(check_money),
    PlainSerializer(format_decimal, return_type=str, when_used="always"),
    WithJsonSchema(_DECIMAL_SCHEMA),
]


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


PositiveDecimal2 = Annotated[Decimal2, AfterValidator(_positive)]


@lru_cache(maxsize=65536)
def _commune_problem(code: str) -> str | None:
    return commune_code_problem(code)


def _commune(value: str) -> str:
    # a batch names the same communes again and again: their verdicts (of five characters only) kept
    problem = _commune_problem(value) if len(value) == 5 else commune_code_problem(value)
    if problem:
        raise ValueError(problem)
    return value


CommuneCode = Annotated[str, AfterValidator(_commune), WithJsonSchema({"type": "string", "examples": ["71076", "2A004", "97411"]})]


def _region(value: str) -> str:
    if value not in REGIONS:
        raise ValueError("is not an INSEE region code (" + ", ".join(REGIONS) + ")")
    return value


def _departement(value: str) -> str:
    if value not in DEPARTEMENTS:
        raise ValueError("is not an INSEE département code (01…95, 2A, 2B, 971…976)")
    return value


RegionCode = Annotated[str, AfterValidator(_region), WithJsonSchema({"type": "string", "examples": ["84"]})]
DepartementCode = Annotated[str, AfterValidator(_departement), WithJsonSchema({"type": "string", "examples": ["01", "2A", "974"]})]


#: a digit doubled by the Luhn rule, as the digit of its digit sum (2 × 7 = 14 → 1 + 4 = 5), in ASCII
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits is valid (same rule as ``stdnum.luhn``): from the
    right, every second digit doubled (its digit sum), the total a multiple of 10. Summed as bytes,
    each digit counting 48 (``"0"``) more than its value."""
    raw = digits.encode()
    return (sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_LUHN_DOUBLED)) - 48 * len(raw)) % 10 == 0


_NINE_DIGITS = re.compile(r"[0-9]{9}")
_FOURTEEN_DIGITS = re.compile(r"[0-9]{14}")


def siren_problem(value: str) -> str | None:
    """Why ``value`` is not a SIREN, else None; kept for nine characters only (as a SIRET's)."""
    if len(value) != 9:
        return "must be 9 digits"
    return _siren_verdict(value)


@lru_cache(maxsize=65536)
def _siren_verdict(value: str) -> str | None:
    if not _NINE_DIGITS.fullmatch(value):
        return "must be 9 digits"
    if not _luhn_ok(value):
        return "is not a valid SIREN (Luhn checksum)"
    return None


def siret_problem(value: str) -> str | None:
    """Why ``value`` is not a SIRET (the rules of ``stdnum.fr.siret``, La Poste's included), else None.

    The verdicts of fourteen characters are kept (a batch names the same establishments again and
    again); a value of any other length is refused without being kept (the cache's memory bounded)."""
    if len(value) != 14:
        return "must be 14 digits"
    return _siret_verdict(value)


@lru_cache(maxsize=65536)
def _siret_verdict(value: str) -> str | None:
    if not _FOURTEEN_DIGITS.fullmatch(value):
        return "must be 14 digits"
    if value.startswith("356000000") and value != "35600000000048":
        valid = sum(ord(ch) - 48 for ch in value) % 5 == 0
    else:
        valid = _luhn_ok(value)
    if not valid or not _luhn_ok(value[:9]):
        return "is not a valid SIRET (checksum)"
    return None


def _siren(value: str) -> str:
    problem = siren_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _siret(value: str) -> str:
    problem = siret_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Siren = Annotated[str, AfterValidator(_siren), WithJsonSchema({"type": "string", "pattern": "^[0-9]{9}$", "examples": ["200071751"]})]
Siret = Annotated[str, AfterValidator(_siret), WithJsonSchema({"type": "string", "pattern": "^[0-9]{14}$", "examples": ["73282932000074"]})]


def luhn_complete(prefix: str) -> str:
    """``prefix`` followed by its Luhn check digit (test and demo data)."""
    return prefix + luhn.calc_check_digit(prefix)


TERRITORY_ID_PATTERN = r"^ti-[0-9]{4}$"


# --- dates and instants ----------------------------------------------------------------------
# Every date and instant a client sends is parsed here, into a bounded range: arithmetic on the
# calendar's edges (the end of 9999-12-31, 0001-01-01T00:00:00+01:00 in UTC) cannot overflow.

MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2199, 12, 31)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
#: the form of an instant :func:`parse_instant` reads (the OpenAPI documents give it as a pattern)
RFC3339_INSTANT = _RFC3339


def check_date(day: date) -> date:
    """``day`` when within [:data:`MIN_DATE`, :data:`MAX_DATE`], else ValueError."""
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValueError(f"must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}")
    return day


def parse_date(text: str) -> date:
    """A calendar date written ``YYYY-MM-DD``, within the bounded range (ValueError otherwise)."""
    value = text.strip()
    if not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("is not a calendar date") from exc
    return check_date(day)


def parse_instant(text: str) -> datetime:
    """An RFC 3339 instant with its offset (``2024-11-30T10:00:00Z``), within the bounded range, in UTC."""
    value = text.strip()
    if not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 instant with offset (e.g. 2024-11-30T10:00:00Z or +01:00)")
    value = value[:10] + "T" + value[11:]
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    if "." in value:  # at most microseconds: further digits are dropped, not rounded
        head, _, rest = value.partition(".")
        digits, offset = rest[:-6], rest[-6:]
        value = f"{head}.{digits[:6].ljust(6, '0')}{offset}"
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("is not a valid instant") from exc
    check_date(instant.date())  # before the conversion to UTC, which could leave the calendar
    return instant.astimezone(UTC)


@lru_cache(maxsize=16384)
def date_verdict(text: str) -> date | str:
    """What :func:`parse_date` says of ``text``: the date, or the message of its ValueError."""
    try:
        return parse_date(text)
    except ValueError as exc:
        return str(exc)


def _iso_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("must be a date written YYYY-MM-DD, not an instant")
    if isinstance(value, date):
        return check_date(value)
    if isinstance(value, str):
        if len(value) != 10:
            return parse_date(value)
        # a batch gives the same days again and again: the verdicts of ten characters kept, as a commune's
        verdict = date_verdict(value)
        if isinstance(verdict, str):
            raise ValueError(verdict)
        return verdict
    raise ValueError("must be a date written YYYY-MM-DD")


#: a calendar date, given and returned as ``YYYY-MM-DD``, between 1900-01-01 and 2199-12-31
IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date"}),
]



def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        check_date(value.date())
        return value.astimezone(UTC)
    if isinstance(value, str):
        return parse_instant(value)
    raise ValueError("must be an RFC 3339 instant with offset")


#: an instant given as RFC 3339 with offset, bounded like :data:`IsoDate`, held in UTC
IsoInstant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2024-11-30T10:00:00Z"]}),
]
