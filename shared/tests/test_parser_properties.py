"""Property tests of every parser and value type a client reaches: whatever the input, the answer is a
valid value or a refusal (ValueError / ValidationError / a 4xx problem) — never another exception."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from ti_shared import hostile
from ti_shared.http import MAX_JSON_DEPTH, _scan, _shallow, decode_cursor, encode_cursor, parse_json_body
from ti_shared.problems import Problem
from ti_shared.tabular import parse_french_decimal, read_table
from ti_shared.types import (
    MAX_DATE,
    MAX_MONEY,
    MIN_DATE,
    CommuneCode,
    Decimal2,
    DepartementCode,
    IsoDate,
    IsoInstant,
    PositiveDecimal2,
    RegionCode,
    Siren,
    Siret,
    date_verdict,
    parse_date,
    parse_instant,
)

FAST = settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

#: texts near the forms the platform reads: digits, separators, signs, exponents, whitespace, newlines
NUMBERISH = st.text(alphabet="0123456789.,-+eE \n\t\u202f\xa0€", max_size=60)
HUGE_INTEGERS = st.integers(min_value=10**12, max_value=10**60) | st.integers(max_value=-1, min_value=-(10**60))
MONEY_INPUTS = (
    NUMBERISH
    | st.integers()
    | HUGE_INTEGERS
    | HUGE_INTEGERS.map(str)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["1" * 27, "9" * 13, "999999999999.99", "999999999999.995", "1e5", "NaN", "-1", "0.001", "1500000.00\n"])
)


def _refused_or(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


@FAST
@given(MONEY_INPUTS)
def test_money_is_two_decimals_in_range_or_refused(value: Any) -> None:
    for adapter in (TypeAdapter(Decimal2), TypeAdapter(PositiveDecimal2)):
        got = _refused_or(adapter, value)
        if got is not None:
            assert isinstance(got, Decimal) and got.as_tuple().exponent == -2
            assert Decimal(0) <= got <= MAX_MONEY


@FAST
@given(NUMBERISH)
def test_french_decimals_parse_or_refuse(text: str) -> None:
    try:
        parse_french_decimal(text)
    except ValueError:
        pass


DATEISH = st.text(alphabet="0123456789-T:Z+.tz /", max_size=40)
EDGE_DATES = st.integers(min_value=0, max_value=10_000).map(lambda y: f"{y:04d}-12-31") | st.sampled_from(
    ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01", "2024-02-30", "2024-13-01"]
)
EDGE_INSTANTS = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.999999999Z",
        "2024-11-30T10:00:00+24:00",
        "2024-11-30T10:00:00",
        "2024-11-30T25:00:00Z",
    ]
) | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "+14:00")


@FAST
@given(DATEISH | EDGE_DATES | EDGE_INSTANTS)
def test_dates_and_instants_are_in_the_bounded_calendar_or_refused(text: str) -> None:
    for parse in (parse_date, parse_instant):
        try:
            value = parse(text)
        except ValueError:
            continue
        day = value.date() if isinstance(value, datetime) else value
        assert MIN_DATE <= day <= MAX_DATE
        if isinstance(value, datetime):
            assert value.tzinfo is UTC
    for adapter in (TypeAdapter(IsoDate), TypeAdapter(IsoInstant)):
        _refused_or(adapter, text)


@FAST
@given(st.dates(min_value=date(1, 1, 1)) | st.datetimes(timezones=st.timezones()))
def test_date_objects_are_bounded_too(value: date) -> None:
    _refused_or(TypeAdapter(IsoDate), value)
    if isinstance(value, datetime):
        _refused_or(TypeAdapter(IsoInstant), value)


CODES: dict[str, Any] = {
    "commune": (TypeAdapter(CommuneCode), r"(?:[0-9]{2}|2[AB])[0-9]{3}"),
    "region": (TypeAdapter(RegionCode), r"[0-9]{2}"),
    "departement": (TypeAdapter(DepartementCode), r"(?:[0-9]{2}|2[AB]|97[0-9])"),
    "siren": (TypeAdapter(Siren), r"[0-9]{9}"),
    "siret": (TypeAdapter(Siret), r"[0-9]{14}"),
}
CODEISH = st.text(alphabet="0123456789AB \n\r\t", max_size=16) | st.sampled_from(
    ["71076\n", "71076 ", "\n71076", "2A004\n", "84\n", "200071751\n", "73282932000074\n"]
)


@FAST
@given(CODEISH)
def test_codes_are_matched_whole(text: str) -> None:
    import re

    for adapter, form in CODES.values():
        got = _refused_or(adapter, text)
        if got is not None:
            assert re.fullmatch(form, got), (text, got)


@FAST
@given(
    st.text(max_size=80)
    | st.lists(st.integers() | st.text(max_size=300) | st.booleans() | st.none() | st.floats(), max_size=3).map(encode_cursor)
    | st.sampled_from([encode_cursor([10**30]), encode_cursor(["\ud800"]), encode_cursor([-1]), encode_cursor([]), "!!", "e30"])
)
def test_cursors_decode_to_storable_keys_or_a_422(cursor: str) -> None:
    try:
        keys = decode_cursor(cursor)
    except Problem as exc:
        assert exc.status == 422
        return
    assert keys
    for key in keys:
        assert (isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 2**63) or (
            isinstance(key, str) and "\x00" not in key and isinstance(key.encode("utf-8"), bytes)
        )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | HUGE_INTEGERS | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@FAST
@given(
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.integers(min_value=1, max_value=60_000).map(_nested)
    | st.sampled_from([b'"\\ud800"', b'{"a": "\\u0000"}', b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"NaN", b"[1e400]"])
)
def test_json_bodies_parse_or_are_a_422(body: bytes) -> None:
    try:
        doc = parse_json_body(body)
    except Problem as exc:
        assert exc.status == 422
        return
    depth, stack = 0, [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    assert depth <= MAX_JSON_DEPTH



def _depth(doc: Any) -> int:
    """The nesting of objects and arrays in ``doc``, walked value by value."""
    depth, stack = 0, [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return depth


def _strings(doc: Any) -> list[str]:
    """Every string of ``doc``, keys included."""
    if isinstance(doc, dict):
        return [*doc, *(text for value in doc.values() for text in _strings(value))]
    if isinstance(doc, list):
        return [text for value in doc for text in _strings(value)]
    return [doc] if isinstance(doc, str) else []


#: strings of what the depth's pre-scan reads: brackets, quotes, backslashes, digits, and other text
HOSTILE_TEXT = st.text(alphabet='[]{}"\\\\/0123456789 ,:aé\n\t\u2028', max_size=12)
HOSTILE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=20,
)


def _wrapped(doc: Any, levels: list[bool]) -> Any:
    """``doc`` inside one array (True) or object (False) per level, outermost first."""
    for in_list in reversed(levels):
        doc = [doc] if in_list else {"[k{": doc}
    return doc


@FAST
@given(
    HOSTILE_JSON,
    st.lists(st.booleans(), max_size=2 * MAX_JSON_DEPTH),
    st.sampled_from(["orjson", "ascii", "unicode", "spaced"]),
)
def test_the_depth_of_a_json_body_is_told_as_by_walking_every_value(doc: Any, levels: list[bool], style: str) -> None:
    """The pre-scan of the raw bytes proves a body shallow, else the parsed values are walked: the same
    verdict as a walk of every value, whatever brackets, quotes and escapes the strings hold."""
    value = _wrapped(doc, levels)
    body = {
        "orjson": lambda: orjson.dumps(value),
        "ascii": lambda: json.dumps(value).encode(),
        "unicode": lambda: json.dumps(value, ensure_ascii=False).encode(),
        "spaced": lambda: json.dumps(value, indent=1, ensure_ascii=False).encode(),
    }[style]()
    assume(b"\\u0000" not in body and "\x00" not in body.decode())
    depth = _depth(value)
    shallow = _shallow(_scan(body))
    assert not shallow or depth <= MAX_JSON_DEPTH
    if depth <= MAX_JSON_DEPTH and not any(set(text) & set("[]{}") for text in _strings(value)):
        assert shallow  # the walk is left for a string holding a bracket
    try:
        assert parse_json_body(body) == value
    except Problem as exc:
        assert exc.status == 422 and exc.detail == f"The body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels"
        assert depth > MAX_JSON_DEPTH
    else:
        assert depth <= MAX_JSON_DEPTH


@pytest.mark.parametrize(
    ("inner", "proved"),
    [
        (b"1", True),
        (b'"]]]]"', False),  # brackets in a string: walked
        (b'"\\\\"', True),  # an escaped backslash ends the string
        (b'"\\"]]]]"', False),  # an escaped quote does not
        (b'{"a": "\\\\\\"[[[[", "b": [[[["\\\\"]]]]}', False),
    ],
)
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_the_depth_at_the_limit_with_brackets_in_strings(inner: bytes, proved: bool, levels: int) -> None:
    body = b"[" * levels + inner + b"]" * levels
    depth = _depth(json.loads(body))
    assert _shallow(_scan(body)) is (proved and depth <= MAX_JSON_DEPTH)
    if depth <= MAX_JSON_DEPTH:
        assert parse_json_body(body) == json.loads(body)
    else:
        with pytest.raises(Problem) as refused:
            parse_json_body(body)
        assert refused.value.status == 422
    with pytest.raises(Problem) as deeper:
        parse_json_body(b"[" * (MAX_JSON_DEPTH + 1) + inner + b"]" * (MAX_JSON_DEPTH + 1))
    assert deeper.value.status == 422


@FAST
@given(
    st.text(alphabet="0123456789- T:Z", min_size=8, max_size=12)
    | st.dates().map(date.isoformat)
    | st.dates(min_value=date(1899, 12, 25), max_value=date(1900, 1, 5)).map(date.isoformat)
    | st.dates(min_value=date(2199, 12, 25), max_value=date(2200, 1, 5)).map(date.isoformat)
    | st.text(max_size=12)
)
def test_a_dates_verdict_kept_is_the_one_parse_date_gives(text: str) -> None:
    """IsoDate keeps the verdicts of ten-character texts: each is what the uncached parse gives, first
    asked or again."""
    try:
        expected: date | str = parse_date(text)
    except ValueError as exc:
        expected = str(exc)
    adapter = TypeAdapter(IsoDate)
    for _ in range(2):
        assert date_verdict(text) == expected
        try:
            assert adapter.validate_python(text) == expected
        except ValidationError as exc:
            assert isinstance(expected, str) and expected in exc.errors()[0]["msg"]

@FAST
@given(st.integers(min_value=-(10**40), max_value=10**40), st.text(alphabet="0123456789 x", max_size=30))
def test_json_integers_are_read_exactly_whatever_their_length(number: int, text: str) -> None:
    """orjson reads an integer beyond 64 bits as a float: the body is then read by the standard library."""
    body = json.dumps({"n": number, "s": text, "l": [number]}).encode()
    assert parse_json_body(body) == {"n": number, "s": text, "l": [number]}


CSV_TEXT = st.text(alphabet='ab01;,"\t\n\r \x00é€', max_size=300)


@FAST
@given(CSV_TEXT.map(lambda t: t.encode("utf-8")) | CSV_TEXT.map(lambda t: t.encode("latin-1", "replace")) | st.binary(max_size=300))
def test_csv_files_read_or_are_a_4xx(data: bytes) -> None:
    try:
        rows = read_table(data, "text/csv")
    except Problem as exc:
        assert exc.status in (413, 422)
        return
    assert all("\x00" not in v for row in rows for v in row.values())


BASE_XLSX = hostile.table_xlsx([["code", "nom", "montant"], ["01", "Ain", "1200,50"], ["2A", "Corse", "3"]])


@SLOW
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=len(BASE_XLSX) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_workbooks_read_or_are_a_4xx(flips: list[tuple[int, int]]) -> None:
    data = bytearray(BASE_XLSX)
    for offset, byte in flips:
        data[offset] = byte
    try:
        read_table(bytes(data))
    except Problem as exc:
        assert exc.status in (413, 422)


@SLOW
@given(st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=5), min_size=1, max_size=8))
def test_generated_workbooks_read_or_are_a_4xx(rows: list[list[str]]) -> None:
    clean = [[v for v in row if all(ch.isprintable() for ch in v)] or ["x"] for row in rows]
    try:
        read_table(hostile.table_xlsx(clean))
    except Problem as exc:
        assert exc.status in (413, 422)


@pytest.mark.parametrize("part", ["xl/workbook.xml", "xl/worksheets/sheet1.xml"])
def test_a_workbook_missing_a_part_is_a_422(part: str) -> None:
    source = zipfile.ZipFile(io.BytesIO(BASE_XLSX))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for info in source.infolist():
            if info.filename != part:
                out.writestr(info, source.read(info))
    with pytest.raises(Problem) as refused:
        read_table(buffer.getvalue())
    assert refused.value.status == 422
