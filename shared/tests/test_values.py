from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from ti_shared.events import EventSpec, event_json_schema, stale_event_schemas, write_event_schemas
from ti_shared.geo import departement_of_commune, region_of_commune
from ti_shared.http import cursor_after, decode_cursor, encode_cursor, page_of
from ti_shared.problems import Problem
from ti_shared.tabular import parse_french_decimal, read_table
from ti_shared.types import CommuneCode, PositiveDecimal2, Siren, Siret, luhn_complete


def test_money_is_a_two_decimal_string() -> None:
    money = TypeAdapter(PositiveDecimal2)
    assert money.dump_python(money.validate_python("1500000"), mode="json") == "1500000.00"
    assert money.validate_python("25.5") == Decimal("25.50")
    assert money.validate_python(12) == Decimal("12")
    for bad in ("0", "1.234", "-3", "1e3", "abc", 1.5, True, "1000000000000"):
        with pytest.raises(ValidationError):
            money.validate_python(bad)


def test_identifiers() -> None:
    siren = TypeAdapter(Siren)
    assert siren.validate_python("200071751") == "200071751"
    for bad in ("200071752", "20007175", "abcdefghi"):
        with pytest.raises(ValidationError):
            siren.validate_python(bad)
    siret = TypeAdapter(Siret)
    assert siret.validate_python("73282932000074")
    assert siret.validate_python("35600000000048")  # La Poste: sum of digits rule
    with pytest.raises(ValidationError):
        siret.validate_python("73282932000075")
    made = luhn_complete("12345678")
    assert siren.validate_python(made) == made


@pytest.mark.parametrize(
    ("code", "dep", "region"), [("71076", "71", "27"), ("2A004", "2A", "94"), ("97411", "974", "04"), ("01053", "01", "84")]
)
def test_communes(code: str, dep: str, region: str) -> None:
    assert departement_of_commune(code) == dep
    assert region_of_commune(code) == region
    assert TypeAdapter(CommuneCode).validate_python(code) == code


@pytest.mark.parametrize("code", ["20004", "1234", "975AB", "96001", "97500", "ABCDE", "71000"])
def test_bad_communes(code: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(CommuneCode).validate_python(code)


def test_csv_semicolon_latin1_leading_zeros() -> None:
    data = "id_ti;lib_ti;code_reg\nti-0101;Pôle de Basse-Terre;01\n\nti-8402;Bourg;84\n".encode("latin-1")
    rows = read_table(data, "text/csv")
    assert rows == [
        {"id_ti": "ti-0101", "lib_ti": "Pôle de Basse-Terre", "code_reg": "01"},
        {"id_ti": "ti-8402", "lib_ti": "Bourg", "code_reg": "84"},
    ]
    assert read_table(b"\xef\xbb\xbfa,b\n01,\"x, y\"\n") == [{"a": "01", "b": "x, y"}]


def test_csv_row_with_too_many_cells_is_refused_not_truncated() -> None:
    with pytest.raises(Problem) as exc:
        read_table(b"a;b\n1;2;3\n")
    assert exc.value.status == 422 and "Line 2" in exc.value.detail


def test_xlsx() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["action_id", "budget_eur", "code"])
    ws.append(["A-1", 1200.5, "01"])
    buf = io.BytesIO()
    wb.save(buf)
    assert read_table(buf.getvalue()) == [{"action_id": "A-1", "budget_eur": "1200.5", "code": "01"}]


def test_french_decimals() -> None:
    assert parse_french_decimal("1 234,56") == Decimal("1234.56")
    assert parse_french_decimal("1\u202f234,5") == Decimal("1234.5")
    assert parse_french_decimal("1.234,56") == Decimal("1234.56")
    assert parse_french_decimal("1234.56") == Decimal("1234.56")
    with pytest.raises(ValueError):
        parse_french_decimal("12 abc")


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(["ti-0101", 3])) == ["ti-0101", 3]
    with pytest.raises(Problem):
        decode_cursor("%%%not-a-cursor")


def test_a_keyset_page_and_the_cursor_of_the_next() -> None:
    items, cursor = page_of(["a", "b", "c"], 2, str.upper)
    assert items == ["a", "b"] and cursor is not None and cursor_after(cursor, str) == "B"
    assert page_of(["a", "b"], 2, str.upper) == (["a", "b"], None)
    assert page_of([], 2, str.upper) == ([], None)
    assert cursor_after(None, int) is None
    with pytest.raises(Problem):
        cursor_after(encode_cursor(["ti-0101"]), int)  # another key's type
    with pytest.raises(Problem):
        cursor_after(encode_cursor(["ti-0101", 3]), str)  # another shape
    _, two = page_of([("ADEME", "FV-1"), ("ADEME", "FV-2")], 1, lambda g: g)  # a key of two parts
    assert two is not None and cursor_after(two, str, str) == ("ADEME", "FV-1")
    with pytest.raises(Problem):
        cursor_after(two, str)


class _Data(BaseModel):
    id: str
    amount_eur: PositiveDecimal2


def test_event_schema_files_detect_drift(tmp_path: Path) -> None:
    spec = EventSpec("fr.anct.ti.probe.made.v1", "ti.probes", _Data, "A probe was made")
    schema = event_json_schema(spec)
    assert schema["properties"]["type"]["const"] == spec.type
    assert set(schema["required"]) >= {"id", "source", "type", "subject", "time", "entityversion", "tiactor", "data"}
    assert stale_event_schemas(tmp_path, [spec]) == [spec.type]
    write_event_schemas(tmp_path, [spec])
    assert stale_event_schemas(tmp_path, [spec]) == []
    path = tmp_path / f"{spec.type}.schema.json"
    path.write_text(path.read_text().replace("amount_eur", "amount"))
    assert stale_event_schemas(tmp_path, [spec]) == [spec.type]
