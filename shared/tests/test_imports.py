"""The pieces every import shares: the header normaliser, the value readers, the row notes, the table
read with its row numbers (files of every shape, generated here), and the official-schema check."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_shared.cells import Vocabulary, read_choices, read_date, read_flag, read_integer, read_money, read_number
from ti_shared.imports import (
    ImportCounts,
    Layout,
    RowNotes,
    fold_header,
    import_table,
    match_header,
    read_import,
    repeated,
)
from ti_shared.problems import Problem
from ti_shared.tabular import read_sheet
from ti_shared.testing import official_schemas_dir, table_schema_errors

PLAN = Layout(
    "a GRIST plan",
    {
        "action_id": ("id",),
        "title": ("titre", "Intitulé"),
        "planned_start": ("date_debut", "Date de début"),
        "budget_eur": ("budget",),
    },
    required=("action_id", "title"),
)
PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)
SCDL_LIKE = Layout(
    "SCDL",
    {"nomAttribuant": (), "montant": (), "objet": ()},
    required=("montant",),
    standard=("nomAttribuant", "objet", "montant"),
    ordered=True,
    delimiter=",",
)


# --- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("NomAttribuant", "nomattribuant"),
        ("nom_attribuant", "nomattribuant"),
        ("Nom attribuant", "nomattribuant"),
        ("\ufeffnomAttribuant", "nomattribuant"),
        ("Date de début", "datededebut"),
        ("DATE DE DEBUT", "datededebut"),
        ("date-de-début ", "datededebut"),
        ("Échelonné", "echelonne"),
        ("cœur", "coeur"),
    ],
)
def test_headers_are_compared_without_case_accents_or_separators(written: str, folded: str) -> None:
    assert fold_header(written) == folded


def test_declared_spellings_are_read_silently_others_with_a_warning() -> None:
    match = match_header(["ID", "Intitulé", "Date de debut", "budget", "Commentaire"], PLAN)
    assert match.columns == {"action_id": "ID", "title": "Intitulé", "planned_start": "Date de debut", "budget_eur": "budget"}
    assert match.unknown == ["Commentaire"] and match.errors == []
    warned = {tuple(w.loc): w.msg for w in match.warnings}
    assert warned == {
        ("header", "ID"): "column 'ID' read as action_id",
        ("header", "Date de debut"): "column 'Date de debut' read as planned_start",
        ("header", "Commentaire"): "column 'Commentaire' is not a column of a GRIST plan: its values are not imported",
    }


def test_a_missing_required_column_and_two_headers_for_one_column_are_errors() -> None:
    match = match_header(["titre", "Intitulé"], PLAN)
    assert [(e.loc, e.msg) for e in match.errors] == [
        (["header", "Intitulé"], "'titre' and 'Intitulé' are both the column title: keep one"),
        (["header", "action_id"], "column action_id is missing (also read as: id)"),
    ]


def test_the_format_s_columns_order_and_separator_are_checked() -> None:
    match = match_header(["Montant", "nomAttribuant"], SCDL_LIKE)
    assert [w.msg for w in match.warnings] == [
        "column 'Montant' read as montant",
        "column objet of SCDL is absent",
        "the columns are not in the order of SCDL: nomAttribuant, objet, montant",
    ]
    table = read_import(b"nomAttribuant;objet;montant\nX;Y;1\n", "text/csv", SCDL_LIKE)
    assert [w.msg for w in table.warnings] == ["the columns are separated by ';'; SCDL separates them by ','"]


def test_ignored_columns_give_no_warning() -> None:
    layout = Layout("CNIG", {"site_id": ()}, ignored=("pole_id",))
    match = match_header(["site_id", "POLE_ID"], layout)
    assert match.columns == {"site_id": "site_id"} and match.warnings == [] and match.unknown == []


def test_an_import_reads_rows_by_column_with_their_line_numbers() -> None:
    data = 'Intitulé;ID;Autre\n"Titre\nsur deux lignes";A-1;x\n\n;A-2;\n'.encode("cp1252")
    table = read_import(data, "text/csv", PLAN)
    assert [(r.line, r.cells, r.extra) for r in table.rows] == [
        (2, {"title": "Titre\nsur deux lignes", "action_id": "A-1"}, {"Autre": "x"}),
        (5, {"title": "", "action_id": "A-2"}, {}),
    ]
    assert table.written("title") == "Intitulé" and table.written("budget_eur") == "budget_eur" and not table.has("budget_eur")
    assert table.warnings[0].msg == "the file is not UTF-8: read as Windows-1252 (check its accented letters)"
    with pytest.raises(Problem) as refused:
        read_import(b"titre;budget\nX;1\n", "text/csv", PLAN)
    assert refused.value.status == 422 and refused.value.errors == [{"loc": ["header", "action_id"], "msg": "column action_id is missing (also read as: id)"}]
    with pytest.raises(Problem, match="no data row"):
        read_import(b"id;titre\n", "text/csv", PLAN)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_csv_in_every_encoding_and_separator(encoding: str, delimiter: str) -> None:
    text = delimiter.join(["id", "Intitulé", "Date de début"]) + "\r\n" + delimiter.join(["A-1", "Réseau", "30/01/2018"]) + "\r\n"
    table = read_import(text.encode(encoding), "text/csv", PLAN)
    assert table.rows[0].cells == {"action_id": "A-1", "title": "Réseau", "planned_start": "30/01/2018"}
    assert table.table.delimiter == delimiter
    assert table.table.encoding == {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp1252": "windows-1252"}[encoding]


def test_unnamed_columns_are_dropped_when_empty_and_reported_when_not() -> None:
    sheet = read_sheet(b"id;titre;;\nA-1;X;;\nA-2;Y;;\n")
    assert sheet.header == ["id", "titre"] and sheet.rows[1] == {"id": "A-2", "titre": "Y"}
    table = import_table(read_sheet(b"id;titre;;\nA-1;X;;oops\n"), PLAN)
    assert table.rows[0].extra == {"(column 4)": "oops"}
    assert table.warnings[-1].msg == "a column without a header column 4 holds values: they are not imported"
    with pytest.raises(Problem, match="repeats a column name: id"):
        read_sheet(b"id;id\n1;2\n")


def test_xlsx_rows_are_numbered_as_the_sheet_numbers_them() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["B3"], ws["C3"] = "id", "Intitulé"
    ws["B4"], ws["C4"] = "A-1", "Un"
    ws["B6"], ws["C6"] = "A-2", "Deux"
    buffer = io.BytesIO()
    wb.save(buffer)
    table = read_import(buffer.getvalue(), "", PLAN)
    assert [(r.line, r.get("action_id")) for r in table.rows] == [(4, "A-1"), (6, "A-2")]
    assert table.table.encoding == "xlsx" and table.warnings == []
    ws["D3"] = "id"
    buffer = io.BytesIO()
    wb.save(buffer)
    with pytest.raises(Problem, match="repeats a column name"):  # was: the second column silently dropped
        read_sheet(buffer.getvalue())


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "noted"),
    [
        ("1500000.00", "1500000.00", False),
        ("1500000", "1500000", False),
        ("137 825,00", "137825.00", True),
        ("137\u00a0825,00", "137825.00", True),
        ("1\u202f234,5", "1234.5", True),
        ("120 000,00 €", "120000.00", True),
        ("€ 12", "12", True),
        ("12 EUR", "12", True),
        ("1.234,56", "1234.56", True),
        ("1,234.56", "1234.56", True),
        ("1.234.567", "1234567", True),
        ("0,05", "0.05", True),
        ("-3", "-3", False),
    ],
)
def test_numbers_as_people_write_them(text: str, value: str, noted: bool) -> None:
    cell = read_number(text)
    assert cell.value == Decimal(value)
    assert (cell.note is not None) is noted
    if noted:
        assert cell.note == f"'{text}' read as {Decimal(value)}"


@pytest.mark.parametrize("text", ["12 abc", "1 2345", "1e3", "1,2,3.4.5", "", "€", ",5", "1..2", "--1"])
def test_what_is_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        read_number(text)


def test_money_has_two_decimals_and_is_never_negative_nor_rounded() -> None:
    assert read_money("120 000,00 €").value == Decimal("120000.00")
    assert read_money("100000,1").note == "'100000,1' read as 100000.10"
    assert read_money("42").note is None and str(read_money("42").value) == "42.00"
    for bad, why in (("1234.567", "at most two decimals"), ("1,234", "at most two decimals"), ("-5", "negative")):
        with pytest.raises(ValueError, match=why):
            read_money(bad)


def test_integers() -> None:
    assert read_integer("1 200").value == 1200 and read_integer("1 200").note == "'1 200' read as 1200"
    assert read_integer("12").note is None and read_integer("12,0").value == 12
    with pytest.raises(ValueError, match="whole number"):
        read_integer("1,5")


@PROPERTIES
@given(st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2))
def test_every_french_spelling_of_an_amount_reads_back(amount: Decimal) -> None:
    whole, _, cents = f"{amount:f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    assert read_money(f"{grouped},{cents} €").value == amount
    assert read_money(f"{amount:f}").note is None


@PROPERTIES
@given(st.text(max_size=40))
def test_a_number_reader_never_fails_otherwise(text: str) -> None:
    try:
        read_number(text)
    except ValueError:
        pass


@pytest.mark.parametrize(
    ("text", "noted"),
    [
        ("2018-01-30", False),
        ("2018/01/30", True),
        ("30/01/2018", True),
        ("30/1/2018", True),
        ("30-01-2018", True),
        ("30.01.2018", True),
        ("30 janvier 2018", True),
        ("30 Janvier 2018", True),
        ("30 janv. 2018", True),
        ("mardi 30 janvier 2018", True),
        ("2018-01-30T00:00:00", True),
        ("2018-01-30 00:00:00", True),
    ],
)
def test_dates_as_people_write_them(text: str, noted: bool) -> None:
    cell = read_date(text)
    assert cell.value == date(2018, 1, 30)
    assert cell.note == (f"'{text}' read as 2018-01-30" if noted else None)


def test_french_month_names_with_accents_and_first_of_the_month() -> None:
    assert read_date("1er février 2024").value == date(2024, 2, 1)
    assert read_date("15 août 2023").value == date(2023, 8, 15)
    assert read_date("9 déc. 2023").value == date(2023, 12, 9)


@pytest.mark.parametrize("text", ["31/02/2018", "2018-13-01", "2300-01-01", "janvier 2018", "30/01/18", "01/30/2018", "hier"])
def test_what_is_not_a_date_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        read_date(text)


def test_flags() -> None:
    assert read_flag("oui").note is None and read_flag("oui").value is True
    assert read_flag("Non").value is False and read_flag("Non").note == "'Non' read as non"
    assert read_flag("1").value is True and read_flag("x").value is True
    assert read_flag("true", plain=("true", "false")).note is None
    with pytest.raises(ValueError, match="not a yes/no value"):
        read_flag("peut-être")


def test_a_vocabulary_reads_codes_labels_and_folded_spellings() -> None:
    payment = Vocabulary.of("payment condition", ["unique", "échelonné", "autre"])
    assert payment.read("échelonné").note is None
    assert payment.read("Echelonné").value == "échelonné" and payment.read("Echelonné").note == "'Echelonné' read as échelonné"
    with pytest.raises(ValueError, match="is not a known payment condition"):
        payment.read("mensuel")


THEMES = Vocabulary.of("theme", ["tiers_lieux", "gestion_eau"], labels={"tiers_lieux": "Tiers-lieux", "gestion_eau": "Gestion de l'eau"})
VOCATIONS = Vocabulary.of("vocation", ["industrielle", "entrepôts, logistique", "mixte"])


def test_multi_choice_cells_with_either_separator() -> None:
    assert read_choices("Tiers-lieux, Gestion de l'eau", THEMES).value == ["tiers_lieux", "gestion_eau"]
    assert read_choices("Tiers-lieux; Gestion de l'eau", THEMES).value == ["tiers_lieux", "gestion_eau"]
    assert read_choices("Tiers-lieux|gestion_eau", THEMES).note is None
    noted = read_choices("Tiers-lieux; Gestion de l'eau", THEMES, separator=",")
    assert noted.note == "'Tiers-lieux; Gestion de l'eau' read as ['tiers_lieux', 'gestion_eau'] (values separated by ';', not ',')"
    repeated_value = read_choices("tiers_lieux, Tiers-lieux", THEMES)
    assert repeated_value.value == ["tiers_lieux"] and repeated_value.note is not None and "kept once" in repeated_value.note
    with pytest.raises(ValueError, match="unknown theme\\(s\\): 'Friches', 'Eau'"):
        read_choices("Friches, Tiers-lieux, Eau", THEMES)
    assert read_choices("a, b; c").value == ["a", "b", "c"]


class CountingVocabulary(Vocabulary):
    lookups = 0

    def lookup(self, text: str) -> str | None:
        self.lookups += 1
        return super().lookup(text)


def test_a_cell_of_many_separators_costs_a_few_lookups_per_value() -> None:
    counting = CountingVocabulary("vocation", dict(VOCATIONS.exact))
    with pytest.raises(ValueError, match="unknown vocation"):
        read_choices("x, " * 20_000, counting)
    assert counting.lookups <= 3 * 20_001
    assert read_choices("mixte; " * 20_000, counting).value == ["mixte"]


def test_a_value_holding_a_separator_is_kept_whole() -> None:
    assert read_choices("entrepôts, logistique", VOCATIONS).value == ["entrepôts, logistique"]
    assert read_choices("entrepôts, logistique, mixte", VOCATIONS).value == ["entrepôts, logistique", "mixte"]
    assert read_choices("entrepôts;logistique", VOCATIONS).value == ["entrepôts, logistique"]


# --- the report's pieces ----------------------------------------------------------------------


def test_row_notes_turn_readers_into_errors_and_warnings() -> None:
    notes = RowNotes(("row", 3))
    assert notes.read("montant", "137 825,00", read_money) == Decimal("137825.00")
    assert notes.read("date", "", read_date) is None
    assert notes.read("date", "hier", read_date) is None
    assert [m.model_dump() for m in notes.warnings] == [{"loc": ["row", 3, "montant"], "msg": "'137 825,00' read as 137825.00"}]
    assert [m.loc for m in notes.errors] == [["row", 3, "date"]] and not notes.ok
    counts = ImportCounts()
    counts.add("created")
    counts.add("rejected")
    assert counts.model_dump() == {"created": 1, "updated": 0, "unchanged": 0, "rejected": 1}


def test_repeated_keys_name_each_other() -> None:
    assert repeated(["a", "b", None, "a", None, "a"]) == {0: [3, 5], 3: [0, 5], 5: [0, 3]}
    assert repeated(["a", "b"]) == {}


# --- the official schemas -------------------------------------------------------------------


def test_frictionless_checks_a_csv_against_an_official_schema() -> None:
    folder = official_schemas_dir() / "scdl-subventions-2.1.1"
    schema = folder / "schema.json"
    assert table_schema_errors((folder / "exemple_valide.csv").read_bytes(), schema) == []
    errors = table_schema_errors((folder / "exemple_invalide_erreurs_cellules.csv").read_bytes(), schema)
    assert ("type-error", 5, "dateConvention") in {(e.type, e.row, e.field) for e in errors}
    semicolons = (folder / "exemple_valide.csv").read_text(encoding="utf-8").replace(",", ";")
    assert table_schema_errors(semicolons.encode(), schema) != []
