"""SCDL « subventions » files in and out, without a database: files of every shape (generated here),
the key of a row, the beneficiary's kind, the defaults of the export and its round trip, and the
export checked with frictionless against the official schema."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from funding_ledger.scdl import (
    LAYOUT,
    SCDL_COLUMNS,
    Attributor,
    ScdlContext,
    ScdlRow,
    derived_ref,
    escape_cell,
    export_header,
    export_line,
    grant_identity,
    grant_item,
    infer_kind,
    read_payment_dates,
    read_rows,
    read_share,
    read_siret,
    row_identity,
    scdl_values,
)
from funding_ledger.schemas import Grant, GrantBody
from ti_shared.imports import read_import
from ti_shared.testing import official_schemas_dir, table_schema_errors

ADEME = Attributor("ADEME", "ADEME", "38529030900454")
PROGRAMMES = {"fonds_vert_ti_te": "Fonds vert « Territoires d'industrie en transition écologique »", "rebond_industriel": "Rebond industriel"}
#: AEROMETAL's kind cannot be told from its SIRET or name: the batch gives it (?beneficiary_kind=entreprise)
CTX = ScdlContext({"ADEME": ADEME}, PROGRAMMES, beneficiary_kind="entreprise")
SCHEMA = official_schemas_dir() / "scdl-subventions-2.1.1" / "schema.json"

GRANT: dict[str, Any] = {
    "programme": "fonds_vert_ti_te",
    "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
    "territory_id": "ti-2705",
    "commune_insee": "71076",
    "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1500000.00",
    "investment_eur": "4800000.00",
    "decision_date": "2024-06-12",
    "jobs_forecast": 12,
    "jobs_conditional": 6,
    "contributions": ["climate_mitigation", "circular_economy"],
    "value_chain": "economie_circulaire",
}


def grant(ref: str = "FV-1", **changes: Any) -> Grant:
    return Grant.model_validate(
        {
            **GRANT,
            **changes,
            "id": f"ADEME/{ref}",
            "operator": "ADEME",
            "operator_ref": ref,
            "version": 1,
            "updated_at": datetime(2024, 7, 1, tzinfo=UTC),
            "disbursed_eur": changes.get("disbursed_eur", "0"),
            "disbursements": changes.get("disbursements", []),
        }
    )


def table(text: str, encoding: str = "utf-8") -> list[ScdlRow]:
    return read_rows(read_import(text.encode(encoding), "text/csv", LAYOUT), "ADEME")


def keyed(row: ScdlRow, ref: str = "FV-1") -> ScdlRow:
    row.operator_ref = row.operator_ref or ref
    return row


def messages(row: ScdlRow) -> dict[str, list[str]]:
    return {k: [f"{m['loc'][0]}: {m['msg']}" for m in found] for k, found in (("errors", row.notes.errors), ("warnings", row.notes.warnings))}


# --- cells -----------------------------------------------------------------------------------------


def test_identifiers_shares_and_payment_dates() -> None:
    assert read_siret("732 829 320 00074").value == "73282932000074"
    assert read_siret("73282932000074.0").note == "'73282932000074.0' read as 73282932000074"
    with pytest.raises(ValueError, match="checksum"):
        read_siret("73282932000075")
    with pytest.raises(ValueError, match="14 digits"):
        read_siret("218601946")
    assert read_share("0.05").value == Decimal("0.05") and read_share("0.05").note is None
    assert read_share("0,45").note == "'0,45' read as 0.45"
    assert read_share("80").value == Decimal("0.8") and read_share("45 %").note == "'45 %' read as 0.45 (a percentage)"
    for bad in ("0", "150", "0.001", "-1"):
        with pytest.raises(ValueError, match="not a share"):
            read_share(bad)
    assert read_payment_dates("2017-03-30/2017-05-24").note is None
    assert read_payment_dates("2017-06-27_2018-06-27").value == "2017-06-27/2018-06-27"
    assert read_payment_dates("du 30/03/2017 au 24/05/2017").value == "2017-03-30/2017-05-24"
    assert read_payment_dates("2017-03-02/2017-30-05").note == "'2017-03-02/2017-30-05' holds a date that is not in the calendar: kept as written"
    assert read_payment_dates("2017-12-20/2017-03-09").note == "'2017-12-20/2017-03-09' ends before it starts: kept as written"
    with pytest.raises(ValueError, match="not a date or a period"):
        read_payment_dates("printemps 2017")


# --- files of every shape --------------------------------------------------------------------------

HEADER = ["nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire", "idBeneficiaire",
          "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement", "datesPeriodeVersement", "idRAE",
          "notificationUE", "pourcentageSubvention", "dispositifAide"]
PLAIN = ["ADEME", "38529030900454", "2024-06-12", "DEL-2024-12", "AEROMETAL", "73282932000074", "",
         "Recyclage de métaux stratégiques", "1500000.00", "aide en numéraire", "échelonné", "2024-09-01/2025-06-30", "",
         "non", "0.31", "fonds_vert_ti_te"]
MESSY = ["ADEME", "385 290 309 00454", "2024/06/12", "DEL-2024-12", "AEROMETAL", "73282932000074", "",
         "Recyclage de métaux stratégiques", "1 500 000,00 €", "Aide en numéraire", "Echelonné", "2024-09-01_2025-06-30", "",
         "Non", "31 %", "Fonds vert « Territoires d'industrie en transition écologique »"]


def csv_text(header: list[str], *rows: list[str], delimiter: str = ",") -> str:
    import csv as csv_module

    buffer = io.StringIO()
    writer = csv_module.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def test_a_plain_row_reads_without_a_warning() -> None:
    [row] = table(csv_text(HEADER, PLAIN))
    assert messages(row) == {"errors": [], "warnings": []}
    item = grant_item(keyed(row), None, CTX)
    assert item is not None
    body = GrantBody.model_validate({k: v for k, v in item.items() if k not in ("operator", "operator_ref")})
    assert body.amount_eur == Decimal("1500000.00") and body.decision_date == date(2024, 6, 12)
    assert body.beneficiary.kind == "entreprise" and body.programme == "fonds_vert_ti_te"
    assert body.scdl is not None and body.scdl.model_dump(mode="json", exclude_none=True) == {
        "referenceDecision": "DEL-2024-12",
        "nature": "aide en numéraire",
        "conditionsVersement": "échelonné",
        "datesPeriodeVersement": "2024-09-01/2025-06-30",
        "notificationUE": False,
        "pourcentageSubvention": "0.31",
    }  # the attributor is the operator, the dispositif its programme: not kept twice


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [",", ";"])
@pytest.mark.parametrize("spell", [str, str.lower, str.upper, lambda h: "".join("_" + c.lower() if c.isupper() else c for c in h)])
def test_every_shape_of_file_reads_the_same_grant(encoding: str, delimiter: str, spell: Any) -> None:
    """Encodings, separators, header case and separators, French money and dates, percentages,
    ``_``-joined periods, labels for codes: the same grant, each departure a warning."""
    text = csv_text([spell(h) for h in HEADER], MESSY, delimiter=delimiter)
    table_read = read_import(text.encode(encoding), "text/csv", LAYOUT)
    [row] = read_rows(table_read, "ADEME")
    plain_item = grant_item(keyed(table(csv_text(HEADER, PLAIN))[0]), None, CTX)
    assert grant_item(keyed(row), None, CTX) == plain_item
    assert row.notes.errors == []
    warned = {m["loc"][0] for m in row.notes.warnings}
    assert warned == {"idAttribuant", "dateConvention", "montant", "nature", "conditionsVersement", "datesPeriodeVersement",
                      "notificationUE", "pourcentageSubvention"}  # the programme by its exact label: no warning
    file_level = {m.msg for m in table_read.warnings}
    assert ("the file is not UTF-8: read as Windows-1252 (check its accented letters)" in file_level) == (encoding == "cp1252")
    assert any("separated by ';'" in m for m in file_level) == (delimiter == ";")
    assert any("read as nomAttribuant" in m for m in file_level) == (spell(HEADER[0]) != "nomAttribuant")


def test_unknown_and_missing_columns_are_reported() -> None:
    text = csv_text(["dateConvention", "nomBeneficiaire", "idBeneficiaire", "objet", "Montant", "commentaire"],
                    ["2024-06-12", "AEROMETAL", "73282932000074", "Objet", "10", "à voir"])
    read = read_import(text.encode(), "text/csv", LAYOUT)
    shown = [m.msg for m in read.warnings]
    assert "column 'commentaire' is not a column of SCDL « subventions » 2.1.1: its values are not imported" in shown
    assert "column 'Montant' read as montant" in shown
    assert "column nature of SCDL « subventions » 2.1.1 is absent" in shown


def test_errors_name_their_column() -> None:
    bad = list(PLAIN)
    bad[HEADER.index("montant")] = "mille euros"
    bad[HEADER.index("dateConvention")] = "31/02/2024"
    bad[HEADER.index("rnaBeneficiaire")] = "W3222"
    bad[HEADER.index("idAttribuant")] = "218601946"
    [row] = table(csv_text(HEADER, bad))
    assert [m["loc"] for m in row.notes.errors] == [["dateConvention"], ["rnaBeneficiaire"], ["montant"]]
    assert row.notes.warnings[0]["msg"] == "'218601946' is not a SIRET (14 digits): the operator's SIRET is written for it"


# --- the key ---------------------------------------------------------------------------------------


def test_the_derived_key_is_deterministic_and_follows_the_identity() -> None:
    [row] = table(csv_text(HEADER, PLAIN))
    found = row_identity(row, ADEME)
    assert found is not None and derived_ref(found) == derived_ref(found)
    assert derived_ref(found).startswith("scdl-") and len(derived_ref(found)) == 25
    same = grant(scdl={"referenceDecision": "DEL-2024-12"})
    assert grant_identity(same) == found  # a grant with these fields is this row's grant
    spaced = list(PLAIN)
    spaced[HEADER.index("objet")] = "Recyclage de metaux strategiques"
    assert row_identity(table(csv_text(HEADER, spaced))[0], ADEME) != found  # accents are not case
    spaced[HEADER.index("objet")] = "  recyclage de   métaux STRATÉGIQUES "
    assert row_identity(table(csv_text(HEADER, spaced))[0], ADEME) == found  # case and spaces are
    for column, value in (("referenceDecision", "DEL-2024-13"), ("idBeneficiaire", "35600000000048"), ("dateConvention", "2024-06-13")):
        other = list(PLAIN)
        other[HEADER.index(column)] = value
        assert row_identity(table(csv_text(HEADER, other))[0], ADEME) != found, column


# --- the beneficiary's kind ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("siret", "rna", "name", "kind"),
    [
        (None, "W333216789", "CEA DU PERSONNEL", "association"),
        ("21860194600000", None, "Ville de Poitiers", "collectivite"),
        ("13002603200016", None, "ANCT", "etablissement_public"),
        ("38033590100027", None, "ASSOCIATION SPORTIVE AUTOMOBILE", "association"),
        ("53136298600014", None, "CLUB DES JEUNES ANTIBES FOOTBALL", "association"),
        ("40230893600036", None, "SASP OAJLP COTE D'AZUR", "entreprise"),
        ("81223113200026", None, "Rodriguez SA", "entreprise"),
        ("49817205500000", None, "Communauté de communes du Lunévillois", "collectivite"),
        ("19860856400375", None, "Université de Poitiers", "etablissement_public"),
        ("48325831500025", None, "LABEL NOTE", None),
        ("47782033600000", None, "Club Rodriguez SAS", None),  # two kinds: asked for
    ],
)
def test_the_kind_is_inferred_where_possible(siret: str | None, rna: str | None, name: str, kind: str | None) -> None:
    found = infer_kind(siret, rna, name)
    assert (found[0] if found else None) == kind


def test_a_kind_that_cannot_be_told_is_asked_for_or_taken_from_the_batch() -> None:
    row_values = list(PLAIN)
    row_values[HEADER.index("nomBeneficiaire")] = "LABEL NOTE"
    row_values[HEADER.index("idBeneficiaire")] = "48325831500025"
    [row] = table(csv_text(HEADER, row_values))
    assert grant_item(keyed(row), None, ScdlContext(CTX.attributors, PROGRAMMES)) is None
    assert row.notes.errors[0]["loc"] == ["beneficiary_kind"] and "cannot be told" in row.notes.errors[0]["msg"]
    [row] = table(csv_text(HEADER, row_values))
    ctx = ScdlContext(CTX.attributors, PROGRAMMES, beneficiary_kind="association")
    item = grant_item(keyed(row), None, ctx)
    assert item is not None and item["beneficiary"]["kind"] == "association" and row.notes.ok
    [row] = table(csv_text(HEADER, PLAIN))
    assert grant_item(keyed(row), grant(beneficiary={**GRANT["beneficiary"], "kind": "collectivite"}), CTX) is not None
    assert row.notes.warnings == []  # an existing grant keeps its kind: nothing to infer


def test_the_programme_comes_from_the_column_the_dispositif_the_grant_or_the_batch() -> None:
    no_programme = list(PLAIN)
    no_programme[HEADER.index("dispositifAide")] = "65d5b6c7-102c-4440-ac3b-768f708edc0a"
    [row] = table(csv_text(HEADER, no_programme))
    assert grant_item(keyed(row), None, CTX) is None and row.notes.errors[0]["loc"] == ["programme"]
    [row] = table(csv_text(HEADER, no_programme))
    item = grant_item(keyed(row), None, ScdlContext(CTX.attributors, PROGRAMMES, programme="rebond_industriel", beneficiary_kind="entreprise"))
    assert item is not None and item["programme"] == "rebond_industriel"
    assert item["scdl"]["dispositifAide"] == "65d5b6c7-102c-4440-ac3b-768f708edc0a"  # names no programme: kept
    [row] = table(csv_text(HEADER, no_programme))
    item = grant_item(keyed(row), grant(programme="rebond_industriel"), CTX)
    assert item is not None and item["programme"] == "rebond_industriel"


# --- out, and back -----------------------------------------------------------------------------------


def test_the_export_writes_the_kept_fields_and_documented_defaults() -> None:
    pushed = grant()  # pushed as JSON: no SCDL field
    values = scdl_values(pushed, ADEME)
    assert list(values) == list(SCDL_COLUMNS)
    assert values["nomAttribuant"] == "ADEME" and values["idAttribuant"] == "38529030900454"
    assert (values["nature"], values["conditionsVersement"], values["datesPeriodeVersement"]) == ("aide en numéraire", "unique", "2024-06-12")
    assert (values["notificationUE"], values["pourcentageSubvention"], values["dispositifAide"]) == ("non", "1.00", "fonds_vert_ti_te")
    paid = grant(disbursed_eur="300", disbursements=[{"ref": "D1", "amount_eur": "100", "paid_on": "2024-09-01"},
                                                    {"ref": "D2", "amount_eur": "200", "paid_on": "2025-01-15"}])
    assert scdl_values(paid, ADEME)["datesPeriodeVersement"] == "2024-09-01/2025-01-15"
    assert scdl_values(paid, ADEME)["conditionsVersement"] == "échelonné"
    kept = grant(scdl={"notificationUE": True, "pourcentageSubvention": "0.05", "idRAE": "12345", "nomAttribuant": "Agence de la transition écologique"})
    values = scdl_values(kept, ADEME)
    assert (values["notificationUE"], values["pourcentageSubvention"], values["idRAE"]) == ("oui", "0.05", "12345")
    assert values["nomAttribuant"] == "Agence de la transition écologique"


SHAPES = [
    grant("FV-1"),
    grant("FV-2", scdl={"referenceDecision": "DEL 12", "notificationUE": True, "pourcentageSubvention": "0.05",
                        "nature": "aide en numéraire;aide en nature", "idRAE": "12345", "conditionsVersement": "au fil des factures",
                        "dispositifAide": "65d5b6c7-102c-4440-ac3b-768f708edc0a", "datesPeriodeVersement": "2024-09-01/2025-06-30"}),
    grant("FV-3", beneficiary={"name": "=Forêt, durable", "siret": None, "rna": "W123456789", "kind": "association"},
          object="-Filière bois; local", disbursed_eur="300",
          disbursements=[{"ref": "D1", "amount_eur": "100", "paid_on": "2024-09-01"}, {"ref": "D2", "amount_eur": "200", "paid_on": "2025-01-15"}]),
    grant("FV-4", status="cancelled", investment_eur=None, jobs_forecast=None, contributions=[]),
]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_the_scdl_export_validates_against_the_official_schema(delimiter: str) -> None:
    text = export_header("scdl", delimiter) + "".join(export_line(g, ADEME, "scdl", delimiter) for g in SHAPES)
    assert text.splitlines()[0].split(delimiter) == list(SCDL_COLUMNS)
    assert table_schema_errors(text.encode(), SCHEMA, delimiter=delimiter) == []


@pytest.mark.parametrize("profile", ["scdl", "full"])
def test_export_then_import_changes_nothing(profile: Any) -> None:
    delimiter = "," if profile == "scdl" else ";"
    text = export_header(profile, delimiter) + "".join(export_line(g, ADEME, profile, delimiter) for g in SHAPES)
    read = read_import(text.encode(), "text/csv", LAYOUT)
    assert [m.msg for m in read.warnings] == ([] if profile == "scdl" else ["the columns are separated by ';'; SCDL « subventions » 2.1.1 separates them by ','"])
    rows = read_rows(read, "ADEME")
    for row, current in zip(rows, SHAPES, strict=True):
        if profile == "scdl":
            assert row.operator_ref is None and row_identity(row, ADEME) == grant_identity(current)
        item = grant_item(keyed(row, current.operator_ref), current, CTX)
        assert row.notes.errors == [] and row.notes.warnings == [], messages(row)
        assert item is not None and item["operator_ref"] == current.operator_ref
        body = GrantBody.model_validate({k: v for k, v in item.items() if k not in ("operator", "operator_ref")})
        assert body == GrantBody.model_validate(current.model_dump(include=set(GrantBody.model_fields)))


def test_formula_cells_are_escaped() -> None:
    assert escape_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert escape_cell("-12") == "'-12"
    assert escape_cell("@SUM") == "'@SUM"
    assert escape_cell("\tx") == "'\tx"
    assert escape_cell("Société") == "Société"
