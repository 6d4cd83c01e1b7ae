from collections.abc import Callable
from decimal import Decimal

import pytest
from site_catalog.imports import parse_flag, parse_label_date, parse_rows, parse_surface
from ti_shared.problems import Problem
from ti_shared.tabular import read_table

HEADER = "site_id;site_nom;site_comm_insee;site_surf_brute;site_maturite;site_friche;site_date_label;site_atelier;site_feuille_route;site_proprietaire"


def rows_of(text: str, encoding: str = "utf-8") -> list[dict[str, str]]:
    return read_table(text.encode(encoding))


@pytest.mark.parametrize(("text", "expected"), [("oui", True), ("Non", False), ("TRUE", True), ("0", False), ("1", True), ("vrai", True)])
def test_flags(text: str, expected: bool) -> None:
    assert parse_flag(text) is expected


def test_flag_refuses_other_words() -> None:
    with pytest.raises(ValueError, match="yes/no"):
        parse_flag("peut-être")


@pytest.mark.parametrize(("text", "expected"), [("12,5", "12.50"), ("1 250,75", "1250.75"), ("37.2", "37.20"), ("8", "8.00")])
def test_surfaces_in_french(text: str, expected: str) -> None:
    assert parse_surface(text) == expected


@pytest.mark.parametrize("text", ["0", "-3,5", "12,345", "douze"])
def test_bad_surfaces(text: str) -> None:
    with pytest.raises(ValueError):
        parse_surface(text)


def test_label_dates() -> None:
    assert parse_label_date("15/04/2024") == "2024-04-15"
    assert parse_label_date("2024-04-15") == "2024-04-15"
    with pytest.raises(ValueError):
        parse_label_date("31/02/2024")


def test_a_latin1_file_becomes_site_bodies() -> None:
    text = (
        HEADER + ";site_statut;territory_id\n"
        "13004_SITE-ECO_00001;Port fluvial d'Arles;13004;25,5;court terme;oui;15/04/2024;Oui;non;collectivité;retiré;ti-9303\n"
        "2A004_SITE-ECO_00002;Zone de l'Étang;2A004;3;disponible;0;2023-11-09;1;1;EPCI;;\n"
    )
    first, second = parse_rows(rows_of(text, "latin-1"))
    assert first.errors == [] and first.body is not None and first.row == 2
    assert first.site_id == "13004_SITE-ECO_00001"
    assert first.body.area_ha == Decimal("25.50")
    assert (first.body.maturity, first.body.owner_kind, first.body.status) == ("short_term", "collectivite", "withdrawn")
    assert first.body.land_recycling and first.body.workshop_held and not first.body.roadmap_delivered
    assert second.body is not None and second.row == 3
    assert second.body.name == "Zone de l'Étang"
    assert (second.body.maturity, second.body.owner_kind, second.body.status, second.body.territory_id) == (
        "ready", "collectivite", "labelled", None,
    )


def test_cnig_columns_stand_in_for_missing_programme_columns() -> None:
    text = (
        "site_id,site_nom,site_comm_insee,site_surf_brute,site_evol_urba,site_moa_type,site_maturite,"
        "site_date_label,site_atelier,site_feuille_route\n"
        "80024_SITE-ECO_00001,ZAC Les Bornes du Temps,80024,37.2,renouvellement urbain,chambre de commerce et industrie,"
        "ready,2024-01-10,non,non\n"
        "80024_SITE-ECO_00002,ZAC 2,80024,4,mixte,privé,ready,2024-01-10,non,non\n"
    )
    first, second = parse_rows(rows_of(text))
    assert first.body is not None
    assert first.body.land_recycling is True and first.body.owner_kind == "etablissement_public"
    assert second.body is None
    assert [(e.column, e.field) for e in second.errors] == [("site_evol_urba", "land_recycling")]


def test_each_bad_cell_is_reported_with_its_column() -> None:
    text = (
        HEADER + "\n"
        "bad id!;;20004;-1;bientôt;peut-être;2024-13-01;oui;non;martien\n"
    )
    (row,) = parse_rows(rows_of(text))
    assert row.body is None
    assert {e.column for e in row.errors} == {
        "site_id", "site_nom", "site_surf_brute", "site_maturite", "site_friche", "site_proprietaire",
    }
    text = HEADER + "\nS-001;Nom;20004;1;ready;non;2024-13-01;oui;non;autre\n"
    (row,) = parse_rows(rows_of(text))
    assert {e.column for e in row.errors} == {"site_comm_insee", "site_date_label"}


def test_a_repeated_site_is_rejected_with_the_first_row() -> None:
    line = "S-001;Nom;13004;1;ready;non;2024-01-01;oui;non;autre\n"
    first, second = parse_rows(rows_of(HEADER + "\n" + line + line))
    assert first.body is not None
    assert second.body is None and "row 2" in second.errors[0].msg


def test_missing_columns_refuse_the_whole_file() -> None:
    with pytest.raises(Problem) as info:
        parse_rows(rows_of("site_id;site_nom\nS-001;Nom\n"))
    assert info.value.status == 422
    assert info.value.errors is not None and info.value.errors[0]["loc"] == ["body", "columns"]
    assert "site_comm_insee" in info.value.detail and "site_friche or site_evol_urba" in info.value.detail


def test_generated_file_has_the_expected_bad_rows(site_file: Callable[..., object]) -> None:
    generated = site_file()
    parsed = parse_rows(read_table(generated.content))  # type: ignore[attr-defined]
    assert len(parsed) == 55
    rejected = {p.row: {e.column for e in p.errors} for p in parsed if p.body is None}
    expected = {row: {col} for row, col in generated.bad_rows.items() if col != "territory_id"}  # type: ignore[attr-defined]
    assert rejected == expected
