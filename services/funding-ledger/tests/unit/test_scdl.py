from datetime import UTC, datetime
from decimal import Decimal

from funding_ledger.scdl import EXPORT_COLUMNS, escape_cell, export_header, export_line, item_from_csv_row
from funding_ledger.schemas import Grant, GrantBody
from ti_shared.tabular import read_csv

HEADER = (
    "nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;objet;montant;nature;"
    "conditionsVersement;datesPeriodeVersement;idRAE;notificationUE;pourcentageSubvention;dispositifAide;"
    "programme;commune_insee;investment_eur;jobs_forecast;jobs_conditional;contributions;beneficiary_kind"
)


def rows(*lines: str) -> list[dict[str, str]]:
    return read_csv(("\n".join([HEADER, *lines]) + "\n").encode("latin-1"))


def test_latin1_french_decimals_and_scdl_columns_become_an_item():
    [cells] = rows(
        "ADEME;;12/06/2024;FV-42;Société Métallurgie;73282932000074;Fonderie éco;1 500 000,50;aide en numéraire;"
        "unique;;;non;0,31;Fonds vert;fonds_vert_ti_te;71076;4 800 000;12;6;climate_mitigation|water;entreprise"
    )
    parsed = item_from_csv_row(1, cells, "ADEME")
    assert parsed.errors == [] and parsed.item is not None
    item = parsed.item
    assert (item["operator"], item["operator_ref"], item["decision_date"]) == ("ADEME", "FV-42", "2024-06-12")
    assert item["amount_eur"] == "1500000.50" and item["investment_eur"] == "4800000"
    assert item["beneficiary"]["name"] == "Société Métallurgie"
    assert item["contributions"] == ["climate_mitigation", "water"]
    GrantBody.model_validate({k: v for k, v in item.items() if k not in ("operator", "operator_ref")})


def test_inconsistent_share_is_a_warning_and_bad_number_an_error():
    [good, bad] = rows(
        "ADEME;;2024-06-12;FV-1;A;73282932000074;O;1000;;;;;peut-être;0,9;;fonds_vert_ti_te;71076;4000;;;;entreprise",
        "ADEME;;2024-06-12;FV-2;A;73282932000074;O;mille;;;;;non;;;fonds_vert_ti_te;71076;;x;;;entreprise",
    )
    warned = item_from_csv_row(1, good, "ADEME")
    assert warned.item is not None
    assert {w["loc"][0] for w in warned.warnings} == {"pourcentageSubvention", "notificationUE"}
    failed = item_from_csv_row(2, bad, "ADEME")
    assert failed.item is None
    assert [e["loc"] for e in failed.errors] == [["montant"], ["jobs_forecast"]]


def test_missing_kind_is_inferred_with_a_warning():
    cells = {"referenceDecision": "R-1", "rnaBeneficiaire": "W123456789", "montant": "10"}
    parsed = item_from_csv_row(1, cells, "ANCT")
    assert parsed.item is not None and parsed.item["beneficiary"]["kind"] == "association"
    assert parsed.warnings[0]["loc"] == ["beneficiary_kind"]


def test_formula_cells_are_escaped():
    assert escape_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert escape_cell("-12") == "'-12"
    assert escape_cell("@SUM") == "'@SUM"
    assert escape_cell("\tx") == "'\tx"
    assert escape_cell("Société") == "Société"


def test_export_line_has_every_column_and_escapes():
    g = Grant.model_validate(
        {
            "programme": "fonds_vert_ti_te",
            "beneficiary": {"name": "=cmd|' /C calc'!A0", "siret": "73282932000074", "kind": "entreprise"},
            "object": "+Objet",
            "amount_eur": "1000",
            "investment_eur": "4000",
            "decision_date": "2024-06-12",
            "id": "ADEME/FV-1",
            "operator": "ADEME",
            "operator_ref": "FV-1",
            "version": 2,
            "updated_at": datetime(2024, 7, 1, tzinfo=UTC),
            "disbursed_eur": "100",
            "disbursements": [{"ref": "DP-1", "amount_eur": "100", "paid_on": "2024-09-01"}],
        }
    )
    [parsed] = read_csv((export_header() + export_line(g, {"ADEME": ("ADEME", None)}, {})).encode())
    assert list(parsed) == list(EXPORT_COLUMNS)
    assert parsed["nomBeneficiaire"].startswith("'=") and parsed["objet"] == "'+Objet"
    assert parsed["montant"] == "1000.00" and Decimal(parsed["pourcentageSubvention"]) == Decimal("0.25")
    assert parsed["datesPeriodeVersement"] == "2024-09-01" and parsed["disbursed_eur"] == "100.00"
