"""Reading the values of real files' cells: French money and decimals, dates in every form people
write them, yes/no words, codes by their label, multi-choice cells.

Every reader takes the cell's text (stripped, not empty: an empty cell is the caller's business) and
returns a :class:`Cell`: the normalised value, and a ``note`` when the text departs from the plain
form (``137 825,00`` is read as ``137825.00`` *and* says so), so that an import reports every
departure as a warning naming the value it read. Text that cannot be read raises ``ValueError``
with a message for the report; nothing is guessed silently.

The plain forms: numbers ``-?[0-9]+(.[0-9]+)?``; dates ``YYYY-MM-DD``; flags and choices as the
caller declares them (a :class:`Vocabulary`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Generic, TypeVar

from ti_shared.types import check_date, check_money, format_decimal

T = TypeVar("T")

#: what a quoted text may show of a cell in a message
SHOWN = 60


@dataclass(frozen=True)
class Cell(Generic[T]):
    """A value read from a cell, and why its text departs from the plain form (None: it does not)."""

    value: T
    note: str | None = None


def shown(text: str) -> str:
    """The cell's text as a message quotes it (cut, so that a message stays short)."""
    return "'" + (text if len(text) <= SHOWN else text[:SHOWN] + "…") + "'"


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """Lower case, no accents, words joined by ``_``: ``"À initier (amont)"`` → ``"a_initier_amont"``
    (cached: the cells of a file repeat the same few words)."""
    plain = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae"))
    plain = plain.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


# --- numbers ---------------------------------------------------------------------------------

#: spaces that group thousands: space, no-break space, narrow no-break space, thin space
_GROUP_SPACES = re.compile("[ \u00a0\u202f\u2009]")
_CURRENCY = re.compile(r"^(?:€|eur|euros?)\s*|\s*(?:€|eur|euros?)$", re.IGNORECASE)
_PLAIN_NUMBER = re.compile(r"-?[0-9]{1,40}(\.[0-9]{1,40})?")
_DIGITS = re.compile(r"[0-9]{1,40}")
_GROUPED = re.compile(r"[0-9]{1,3}(?:[ .,][0-9]{3})+")


def _integer_part(text: str, grouping: str) -> str:
    """The digits of an integer part whose thousands may be grouped by ``grouping`` (spaces always)."""
    if _DIGITS.fullmatch(text):
        return text
    if _GROUPED.fullmatch(text):
        digits = text.replace(" ", "").replace(grouping, "") if grouping else text.replace(" ", "")
        if digits.isdigit():
            return digits
    raise ValueError


def read_number(text: str) -> Cell[Decimal]:
    """A decimal number as people write it: ``1234.56``, ``1234,56``, ``137 825,00`` (spaces, no-break
    spaces), ``1.234,56``, ``1,234.56``, ``120 000,00 €``. A single ``,`` or ``.`` is the decimal
    mark; when both appear, the last one is, and the other groups thousands."""
    raw = text.strip()
    if _PLAIN_NUMBER.fullmatch(raw):
        return Cell(Decimal(raw))
    cleaned = _CURRENCY.sub("", raw).strip()
    cleaned = _GROUP_SPACES.sub(" ", cleaned)
    sign = ""
    if cleaned[:1] in ("-", "+", "\u2212"):
        sign, cleaned = ("-" if cleaned[0] != "+" else ""), cleaned[1:].strip()
    try:
        if not cleaned or len(cleaned) > 60:
            raise ValueError
        last_comma, last_dot = cleaned.rfind(","), cleaned.rfind(".")
        if last_comma >= 0 and last_dot >= 0:
            mark = max(last_comma, last_dot)
            grouping = "." if mark == last_comma else ","
            whole, decimals = cleaned[:mark], cleaned[mark + 1 :]
        elif cleaned.count(",") == 1 or cleaned.count(".") == 1:
            mark = max(last_comma, last_dot)
            grouping = ""
            whole, decimals = cleaned[:mark], cleaned[mark + 1 :]
        else:  # no mark, or one mark repeated: it groups thousands (1.234.567)
            grouping = "," if "," in cleaned else "."
            whole, decimals = cleaned, None
        digits = _integer_part(whole.strip(), grouping)
        if decimals is not None and not _DIGITS.fullmatch(decimals):
            raise ValueError
        number = Decimal(sign + digits + ("." + decimals if decimals else ""))
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{shown(text)} is not a number") from exc
    return Cell(number, f"{shown(text)} read as {number:f}")


def read_money(text: str) -> Cell[Decimal]:
    """An amount in euros (:func:`read_number`), with at most two decimals and not negative; the value
    has two decimals (``Decimal('137825.00')``)."""
    number = read_number(text)
    try:
        value = check_money(number.value)
    except ValueError as exc:
        raise ValueError(f"{shown(text)} {exc}") from exc
    note = f"{shown(text)} read as {format_decimal(value)}" if number.note else None
    return Cell(value, note)


def read_integer(text: str) -> Cell[int]:
    """A whole number: ``1200``, ``1 200``, ``12.0`` / ``12,00`` (a spreadsheet's float)."""
    number = read_number(text)
    value = number.value
    if value != value.to_integral_value() or abs(value) >= 10**15:
        raise ValueError(f"{shown(text)} is not a whole number")
    return Cell(int(value), f"{shown(text)} read as {int(value)}" if number.note else None)


# --- dates -----------------------------------------------------------------------------------

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("janvier", "janv", "jan"),
        ("fevrier", "fevr", "fev", "feb"),
        ("mars", "mar"),
        ("avril", "avr", "apr"),
        ("mai", "may"),
        ("juin", "jun"),
        ("juillet", "juil", "jul"),
        ("aout", "aou", "aug"),
        ("septembre", "sept", "sep"),
        ("octobre", "oct"),
        ("novembre", "nov"),
        ("decembre", "dec"),
    ),
    1,
):
    for _name in _names:
        _MONTHS[_name] = _number

_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
#: ISO with a time of day (a spreadsheet's date-time, a database export)
_ISO_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?")
_YEAR_FIRST = re.compile(r"([0-9]{4})[/.]([0-9]{1,2})[/.]([0-9]{1,2})")
_DAY_FIRST = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})")
_WORDS = re.compile(r"([0-9]{1,2})(?:er)?[ -]+([a-z]+)\.?[ -]+([0-9]{4})")


def _calendar(text: str, year: int, month: int, day: int) -> date:
    try:
        return check_date(date(year, month, day))
    except ValueError as exc:
        raise ValueError(f"{shown(text)} is not a date of the calendar (1900–2199)") from exc


def read_date(text: str) -> Cell[date]:
    """A calendar date: ``2018-01-30`` (plain), ``2018/01/30``, ``30/01/2018`` (day first, as in
    France), ``30-01-2018``, ``30.01.2018``, ``30 janvier 2018``, ``1er févr. 2018``, ``mardi 30 janvier
    2018``, ``2018-01-30T00:00:00`` — between 1900-01-01 and 2199-12-31."""
    raw = text.strip()
    match = _ISO.fullmatch(raw)
    if match:
        return Cell(_calendar(text, *(int(g) for g in match.groups())))
    day: date | None = None
    if match := _ISO_TIME.fullmatch(raw):
        day = _calendar(text, int(match.group(1)), int(match.group(2)), int(match.group(3)))
    elif match := _YEAR_FIRST.fullmatch(raw):
        day = _calendar(text, int(match.group(1)), int(match.group(2)), int(match.group(3)))
    elif match := _DAY_FIRST.fullmatch(raw):
        day = _calendar(text, int(match.group(3)), int(match.group(2)), int(match.group(1)))
    else:
        words = fold(raw).replace("_", " ")
        for weekday in _WEEKDAYS:
            words = words.removeprefix(weekday + " ")
        match = _WORDS.fullmatch(words)
        month = _MONTHS.get(match.group(2)) if match else None
        if match and month:
            day = _calendar(text, int(match.group(3)), month, int(match.group(1)))
    if day is None:
        raise ValueError(f"{shown(text)} is not a date (write it YYYY-MM-DD, or DD/MM/YYYY)")
    return Cell(day, f"{shown(text)} read as {day.isoformat()}")


# --- words: flags and vocabularies -------------------------------------------------------------


class Vocabulary:
    """The values a cell may take: each code, and the other spellings that mean it (French labels,
    older names). A cell written as one of the declared spellings is read without a note; one that
    matches only once folded (case, accents, punctuation: ``Echelonne`` for ``échelonné``) is read
    with a note naming the value; anything else is refused, listing the codes."""

    def __init__(self, what: str, spellings: Mapping[str, str]) -> None:
        self.what = what
        self.exact = dict(spellings)
        self.folded: dict[str, str] = {}
        for spelling, code in spellings.items():
            self.folded.setdefault(fold(spelling), code)
        self.codes = tuple(dict.fromkeys(spellings.values()))

    @classmethod
    def of(
        cls,
        what: str,
        codes: Iterable[str],
        labels: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> Vocabulary:
        """Codes (each its own spelling), their ``labels`` (code → label) and other ``aliases`` (spelling → code)."""
        spellings = {code: code for code in codes}
        spellings.update({label: code for code, label in (labels or {}).items()})
        spellings.update(aliases or {})
        return cls(what, spellings)

    def lookup(self, text: str) -> str | None:
        """The code ``text`` names, exactly or once folded; None when it names none."""
        value = text.strip()
        return self.exact.get(value) or self.folded.get(fold(value))

    def read(self, text: str) -> Cell[str]:
        value = text.strip()
        if value in self.exact:
            return Cell(self.exact[value])
        code = self.folded.get(fold(value))
        if code is None:
            raise ValueError(f"{shown(text)} is not a known {self.what} ({', '.join(self.codes)})")
        return Cell(code, f"{shown(text)} read as {code}")


#: yes/no words; ``Vocabulary`` of ``"true"``/``"false"``
FLAGS = Vocabulary(
    "yes/no value",
    {
        **{w: "true" for w in ("oui", "true", "vrai", "yes", "o", "y", "1", "x")},
        **{w: "false" for w in ("non", "false", "faux", "no", "n", "0")},
    },
)


def read_flag(text: str, *, plain: tuple[str, str] = ("oui", "non")) -> Cell[bool]:
    """A yes/no cell: ``plain`` (the format's own words, read without a note) or any other yes/no word."""
    value = text.strip()
    if value in plain:
        return Cell(value == plain[0])
    code = FLAGS.lookup(value)
    if code is None:
        raise ValueError(f"{shown(text)} is not a yes/no value ({plain[0]} or {plain[1]})")
    flag = code == "true"
    return Cell(flag, f"{shown(text)} read as {plain[0] if flag else plain[1]}")


#: what separates the values of a multi-choice cell: GRIST writes ``a, b`` in CSV and ``a; b`` in XLSX
CHOICE_SEPARATORS = ",;|\n"
_SEPARATOR = re.compile(r"[,;|\n]")


def _spans(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The (start, end) of each value between separators, and the separators."""
    spans, separators, start = [], [], 0
    for match in _SEPARATOR.finditer(text):
        spans.append((start, match.start()))
        separators.append(match.group())
        start = match.end()
    spans.append((start, len(text)))
    return spans, separators


def read_choices(text: str, vocabulary: Vocabulary | None = None, *, separator: str | None = None) -> Cell[list[str]]:
    """The values of a multi-choice cell, separated by ``,`` ``;`` ``|`` or line breaks.

    A value that itself holds a separator (``entrepôts, logistique``) is kept whole when the
    ``vocabulary`` knows it. With a ``vocabulary`` each value is read as its code (unknown ones are
    refused together); a value repeated is kept once. ``separator`` is the format's own: another one
    is read with a note, as are values matched only once folded and repeats.
    """
    raw = text.strip()
    spans, separators = _spans(raw)
    notes: list[str] = []
    folded = False
    found: list[str] = []
    unknown: list[str] = []
    used: set[str] = set()
    index = 0
    while index < len(spans):
        end = _longest_known(raw, spans, index, vocabulary)
        piece = raw[spans[index][0] : spans[end - 1][1]].strip()
        if index > 0:
            used.add(separators[index - 1])
        index = end
        if not piece:
            continue
        if vocabulary is None:
            found.append(piece)
            continue
        try:
            cell = vocabulary.read(piece)
        except ValueError:
            unknown.append(shown(piece))
            continue
        found.append(cell.value)
        folded = folded or cell.note is not None
    if unknown:
        what = vocabulary.what if vocabulary is not None else "value"
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}")
    between = sorted(s for s in used if s != separator)
    if separator is not None and between:
        notes.append(f"values separated by {' and '.join(repr(s) for s in between)}, not {separator!r}")
    unique = list(dict.fromkeys(found))
    if len(unique) != len(found):
        notes.append("a repeated value kept once")
    note = None
    if notes or folded:
        note = f"{shown(text)} read as [{', '.join(map(shown, unique))}]" + "".join(f" ({n})" for n in notes)
    return Cell(unique, note)


#: at most this many pieces make one known value (``aéroportuaire, aéronautique``: two): a cell of
#: thousands of separators costs a few lookups per piece, not one per pair of pieces
MAX_PIECES = 3


def _longest_known(text: str, spans: list[tuple[int, int]], start: int, vocabulary: Vocabulary | None) -> int:
    """The end (exclusive) of the longest run of values from ``start`` that the vocabulary knows as one
    value (``entrepôts, logistique``); ``start + 1`` when there is none."""
    if vocabulary is not None:
        for end in range(min(len(spans), start + MAX_PIECES), start + 1, -1):
            if vocabulary.lookup(text[spans[start][0] : spans[end - 1][1]]) is not None:
                return end
    return start + 1
