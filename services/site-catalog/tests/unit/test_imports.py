from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from site_catalog.imports import LAYOUT, _hectares, parse_rows, perimeter_warning
from site_catalog.schemas import CNIG_KEPT, SiteBody, SiteDefaults
from ti_shared.imports import ImportTable, read_import
from ti_shared.problems import Problem
from ti_shared.testing import official_schemas_dir

HEADER = "site_id;site_nom;site_comm_insee;site_surf_brute;site_maturite;site_friche;site_date_label;site_atelier;site_feuille_route;site_proprietaire"
CNIG = official_schemas_dir() / "cnig-site-eco-1.0.1"


def rows_of(text: str | bytes, encoding: str = "utf-8") -> ImportTable:
    return read_import(text.encode(encoding) if isinstance(text, str) else text, "text/csv", LAYOUT)


def warnings_of(parsed: Any) -> list[tuple[str | None, str]]:
    return [(w.column, w.msg) for w in parsed.warnings]


@pytest.mark.parametrize(("text", "expected"), [("12,5", "12.50"), ("1 250,75", "1250.75"), ("37.2", "37.20"), ("8", "8.00")])
def test_surfaces_in_french(text: str, expected: str) -> None:
    assert _hectares(text).value == expected


def test_surfaces_with_more_decimals_are_rounded_with_a_note() -> None:
    assert _hectares("12,345") .value == "12.35" and _hectares("12,345").note == "'12,345' read as 12.35 (hectares, two decimals)"


@pytest.mark.parametrize("text", ["0", "-3,5", "douze", "1e3"])
def test_bad_surfaces(text: str) -> None:
    with pytest.raises(ValueError):
        _hectares(text)


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
    assert first.body is not None and first.warnings == []
    assert first.body.land_recycling is True and first.body.owner_kind == "etablissement_public"
    assert second.body is not None and second.body.land_recycling is None
    assert second.body.cnig == {"site_evol_urba": "mixte", "site_moa_type": "privé"}
    assert warnings_of(second) == [
        ("site_evol_urba", "'mixte' does not say whether the site recycles land: stored as unknown (null; give site_friche or ?land_recycling= to say)")
    ]


@pytest.mark.parametrize(
    ("moa_type", "owner_kind"),
    [("commune", "collectivite"), ("epci", "collectivite"), ("EPCI", "collectivite"), ("société d'économie mixte", "entreprise"),
     ("chambre de commerce et industrie", "etablissement_public"), ("Etat", "autre"), ("privé", "entreprise"), ("autre", "autre")],
)
def test_every_site_moa_type_of_the_standard_is_mapped(moa_type: str, owner_kind: str) -> None:
    text = f"site_id;site_nom;site_comm_insee;site_surf_brute;site_moa_type;site_friche\nS-001;Nom;13004;1;{moa_type};non\n"
    (row,) = parse_rows(rows_of(text), SiteDefaults(maturity="ready", labelled_on="2024-01-01", workshop_held=False, roadmap_delivered=False))
    assert row.body is not None and row.body.owner_kind == owner_kind and row.warnings == []


def test_values_that_say_nothing_are_stored_with_a_warning_never_refused() -> None:
    defaults = SiteDefaults(maturity="ready", labelled_on="2024-01-01", workshop_held=False, roadmap_delivered=False)
    text = (
        "site_id;site_nom;site_comm_insee;site_surf_brute;site_moa_type;site_evol_urba;site_type;site_etat\n"
        "S-001;Nom;13004;1;inconnu;sans objet;inconnu;sans objet\n"
        "S-002;Nom;13004;1;syndicat mixte;autre;zone artisanale;en service\n"
    )
    first, second = parse_rows(rows_of(text), defaults)
    assert first.body is not None and (first.body.owner_kind, first.body.land_recycling) == (None, None)
    # what the values say is kept as written
    assert first.body.cnig == {"site_type": "inconnu", "site_etat": "sans objet", "site_evol_urba": "sans objet", "site_moa_type": "inconnu"}
    assert warnings_of(first) == [
        ("site_evol_urba", "'sans objet' does not say whether the site recycles land: stored as unknown (null; give site_friche or ?land_recycling= to say)"),
        ("site_moa_type", "'inconnu' does not name the owner: stored as unknown (null; give site_proprietaire or ?owner_kind= to say)"),
    ]
    assert second.body is not None and [m for _, m in warnings_of(second)] == [
        "'zone artisanale' is not a value of site_type in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
        "'en service' is not a value of site_etat in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
        "'autre' does not say whether the site recycles land: stored as unknown (null; give site_friche or ?land_recycling= to say)",
        "'syndicat mixte' is not a value of site_moa_type in CNIG 1.0.1: stored as unknown (null; give site_proprietaire or ?owner_kind= to say)",
    ]
    # the query's defaults stand in for what the values do not say
    (given,) = parse_rows(rows_of(text.splitlines()[0] + "\n" + text.splitlines()[1] + "\n"), defaults.model_copy(update={"owner_kind": "collectivite", "land_recycling": True}))
    assert given.body is not None and (given.body.owner_kind, given.body.land_recycling) == ("collectivite", True)


def test_the_official_example_imports_with_the_programme_s_defaults() -> None:
    data = (CNIG / "exemple-valide.csv").read_bytes()
    with pytest.raises(Problem) as info:
        parse_rows(rows_of(data))
    assert info.value.status == 422 and [e["msg"] for e in info.value.errors or []] == [
        "column site_maturite is missing: add it or give ?maturity=",
        "column site_date_label is missing: add it or give ?labelled_on=",
        "column site_atelier is missing: add it or give ?workshop_held=",
        "column site_feuille_route is missing: add it or give ?roadmap_delivered=",
    ]
    defaults = SiteDefaults(maturity="short_term", labelled_on="2024-04-15", workshop_held=True, roadmap_delivered=False, territory_id="ti-3205")
    table = rows_of(data)
    assert table.warnings == []  # every column is one of the standard's
    (row,) = parse_rows(table, defaults)
    assert row.body is not None and row.site_id == "80024_SITE-ECO_00001"
    body = row.body.model_dump(mode="json")
    cnig = body.pop("cnig")
    assert body == {
        "name": "ZAC Les Bornes du Temps", "commune_insee": "80024", "territory_id": "ti-3205", "area_ha": "37.20",
        "maturity": "short_term", "land_recycling": False, "labelled_on": "2024-04-15", "workshop_held": True,
        "roadmap_delivered": False, "owner_kind": "collectivite", "status": "labelled",
    }
    # every other value of the row is kept as the file writes it, under its CNIG column
    assert cnig == {c: v for c in CNIG_KEPT if (v := table.rows[0].cells[c].strip())}
    assert (cnig["pole_id"], cnig["site_moa_type"], cnig["site_evol_urba"]) == ("80024_POLE-ECO_00162", "EPCI", "extension")
    assert set(cnig) >= {"site_geomsurf", "site_identif_date", "site_epci_siren"} and "site_nom" not in cnig
    # the published example's unquoted 'entrepôts;logistique' shifts its columns: said, not hidden
    assert [m for _, m in warnings_of(row)] == [
        "'entrepôts' is not a value of site_vocadomi in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
        "'logistique' is not a value of site_etat in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
        "'extension' read as extension urbaine",
    ]


def test_headers_in_another_case_and_a_commune_that_lost_its_zero() -> None:
    text = (
        "SITE_ID;Site Nom;SITE_COMM_INSEE;site_surf_brute;Site_Maturite;site_friche;site_date_label;site_atelier;"
        "site_feuille_route;site_proprietaire;commentaire\n"
        "01053_SITE-ECO_00001;Parc d'activités;1053;1 250,5;Court terme;oui;15 avril 2024;x;non;collectivité;à revoir\n"
    )
    table = rows_of(text, "cp1252")
    assert [w.msg for w in table.warnings] == [
        "the file is not UTF-8: read as Windows-1252 (check its accented letters)",
        "column 'SITE_ID' read as site_id", "column 'Site Nom' read as site_nom", "column 'SITE_COMM_INSEE' read as site_comm_insee",
        "column 'Site_Maturite' read as site_maturite",
        "column 'commentaire' is not a column of CNIG sites économiques 1.0.1: its values are not imported",
    ]
    (row,) = parse_rows(table)
    assert row.body is not None and row.body.commune_insee == "01053" and row.body.area_ha == Decimal("1250.50")
    assert warnings_of(row) == [
        ("SITE_COMM_INSEE", "'1053' read as 01053 (a leading zero lost by a spreadsheet?)"),
        ("site_surf_brute", "'1 250,5' read as 1250.5"),
        ("Site_Maturite", "'Court terme' read as short_term"),
        ("site_date_label", "'15 avril 2024' read as 2024-04-15"),
        ("site_atelier", "'x' read as oui"),
    ]


def test_a_site_outside_its_territory_is_a_warning() -> None:
    body = SiteBody.model_validate({
        "name": "ZAC", "commune_insee": "80024", "territory_id": "ti-4401", "area_ha": "1.00", "maturity": "ready",
        "land_recycling": False, "labelled_on": "2024-01-01", "workshop_held": False, "roadmap_delivered": False,
        "owner_kind": "autre", "status": "labelled",
    })
    assert perimeter_warning(body, {"departement_codes": ["08", "51"], "communes": []}) == (
        "commune 80024 (Somme, region 32) is outside the départements of ti-4401 (08, 51)"
    )
    assert perimeter_warning(body, {"departement_codes": ["80"], "communes": []}) is None
    assert perimeter_warning(body, {"departement_codes": ["80"], "communes": ["80001", "80021"]}) == (
        "commune 80024 is not in the perimeter of ti-4401 (2 communes)"
    )
    assert perimeter_warning(body, {"departement_codes": [], "communes": []}) is None


def test_each_bad_cell_is_reported_with_its_column() -> None:
    text = (
        HEADER + "\n"
        "bad id!;;20004;-1;bientôt;peut-être;2024-13-01;oui;non;martien\n"
    )
    (row,) = parse_rows(rows_of(text))
    assert row.body is None
    assert {e.column for e in row.errors} == {
        "site_id", "site_nom", "site_comm_insee", "site_surf_brute", "site_maturite", "site_friche", "site_date_label",
        "site_proprietaire",
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
        parse_rows(rows_of("site_id;site_nom;site_comm_insee;site_surf_brute\nS-001;Nom;13004;1\n"))
    assert info.value.status == 422
    assert info.value.errors is not None and info.value.errors[0]["loc"] == ["header", "site_maturite"]
    assert "site_friche or site_evol_urba is missing: add it or give ?land_recycling=" in info.value.detail
    with pytest.raises(Problem) as info:
        rows_of("site_id;site_nom\nS-001;Nom\n")
    assert "column site_comm_insee is missing" in info.value.detail


def test_generated_file_has_the_expected_bad_rows(site_file: Callable[..., object]) -> None:
    generated = site_file()
    parsed = parse_rows(rows_of(generated.content))  # type: ignore[attr-defined]
    assert len(parsed) == 55
    rejected = {p.row: {e.column for e in p.errors} for p in parsed if p.body is None}
    expected = {row: {col} for row, col in generated.bad_rows.items() if col != "territory_id"}  # type: ignore[attr-defined]
    assert rejected == expected


def test_the_enumerations_and_columns_are_those_of_the_official_schema() -> None:
    """Every value of every enumeration of CNIG 1.0.1 is known to the import: mapped to a field, or checked
    and kept as written."""
    import json

    from site_catalog.imports import CNIG_CHECKED, EVOL_URBA, MOA_TYPE
    from site_catalog.schemas import CNIG_COLUMNS

    fields = json.loads((CNIG / "schema.json").read_text(encoding="utf-8"))["fields"]
    assert tuple(f["name"] for f in fields) == CNIG_COLUMNS
    official = {f["name"]: f.get("enum") or f.get("constraints", {}).get("enum") for f in fields}
    official = {name: values for name, values in official.items() if values}
    ours = {**{c: list(v) for c, v in CNIG_CHECKED.items()}, "site_evol_urba": list(EVOL_URBA), "site_moa_type": list(MOA_TYPE)}
    assert {name: sorted(values) for name, values in official.items()} == {name: sorted(values) for name, values in ours.items()}


def test_a_yes_no_column_of_the_standard_outside_oui_non_is_a_warning_kept_as_written() -> None:
    defaults = SiteDefaults(maturity="ready", labelled_on="2024-01-01", workshop_held=False, roadmap_delivered=False, owner_kind="autre")
    text = "site_id;site_nom;site_comm_insee;site_surf_brute;site_friche;reseau_gaz;desserte_tc\nS-001;Nom;13004;1;non;Oui;x\n"
    (row,) = parse_rows(rows_of(text), defaults)
    assert row.body is not None and row.body.cnig == {"reseau_gaz": "Oui", "desserte_tc": "x"}
    assert [m for _, m in warnings_of(row)] == [
        "'x' is not a value of desserte_tc in CNIG 1.0.1 (kept as written; a value holding ';' unquoted shifts the columns after it)",
    ]


def _inventory_csv(rows: list[dict[str, str]]) -> bytes:
    import csv
    import io

    from site_catalog.schemas import CNIG_COLUMNS

    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(CNIG_COLUMNS)
    for values in rows:
        writer.writerow([values.get(c, "") for c in CNIG_COLUMNS])
    return out.getvalue().encode()


def test_where_the_official_schema_finds_fault_the_import_says_so_and_keeps_the_row() -> None:
    """An inventory of our own, invalid against CNIG 1.0.1 in every way the standard's types allow: each
    (row, column) frictionless reports is a warning (or an error) of the import, and the valid row none."""
    from site_catalog.imports import CNIG_DATES, CNIG_NUMBERS, CNIG_REQUIRED, CNIG_URLS
    from ti_shared.testing import table_schema_errors

    plain = {
        "site_id": "80021_SITE-ECO_00001", "pole_id": "80021_POLE-ECO_00001", "site_nom": "Zone d'Amiens", "site_type": "autre",
        "site_vocadomi": "industrielle", "site_etat": "existant et actif", "site_surf_brute": "12.5", "site_surf_utile": "10",
        "site_creation_date": "2001", "site_identif_date": "2016-03-26", "site_actu_date": "2023-08-29",
        "site_evol_urba": "extension urbaine", "site_url": "https://amiens.example/zone", "site_epci_nom": "Amiens Métropole",
        "site_epci_siren": "248000531", "site_comm_nom": "Amiens", "site_comm_insee": "80021", "site_moa_type": "epci",
        "site_geomsurf": '{"type": "Polygon", "coordinates": [[[2.3, 49.9], [2.31, 49.9], [2.31, 49.91], [2.3, 49.9]]]}',
        "site_nb_emploi": "120", "reseau_gaz": "oui", "gare_dist": "2.5",
    }
    faulty = [
        {**plain, "site_id": "80021_SITE-ECO_00002", "site_surf_utile": "10,5", "site_nb_emploi": "beaucoup", "gare_dist": "2 km"},
        {**plain, "site_id": "80021_SITE-ECO_00003", "site_creation_date": "2001-05", "site_identif_date": "26/03/2016",
         "site_actu_date": "2023-02-30"},
        {**plain, "site_id": "80021_SITE-ECO_00004", "site_url": "www.amiens.fr", "reseau_gaz": "peut-être",
         "site_geomsurf": "POLYGON((2.3 49.9, 2.31 49.9))"},
        {**plain, "site_id": "80021_SITE-ECO_00005", "pole_id": "", "site_epci_nom": "NA", "site_comm_nom": ""},
    ]
    data = _inventory_csv([plain, *faulty])
    found = {(e.row, e.field) for e in table_schema_errors(data, CNIG / "schema.json", delimiter=";")}
    # the file is as faulty as it was made: every kind of check of the schema finds something
    columns = {c for _, c in found}
    assert {"site_surf_utile", "site_nb_emploi", "gare_dist", "site_identif_date", "site_actu_date", "site_url",
            "reseau_gaz", "site_geomsurf", "pole_id", "site_epci_nom", "site_comm_nom"} <= columns
    assert {r for r, _ in found} == {3, 4, 5, 6}
    defaults = SiteDefaults(maturity="ready", labelled_on="2024-01-01", workshop_held=False, roadmap_delivered=False)
    parsed = parse_rows(rows_of(data), defaults)
    assert all(p.body is not None and p.errors == [] for p in parsed)  # never refused: said
    reported = {(p.row, w.column) for p in parsed for w in p.warnings}
    assert found <= reported, found - reported
    assert [w.msg for w in parsed[0].warnings] == []
    kept = {p.row: p.body.cnig for p in parsed if p.body is not None and p.body.cnig}
    assert kept[3]["site_surf_utile"] == "10,5" and kept[4]["site_identif_date"] == "26/03/2016"  # as written
    assert [m for _, m in warnings_of(parsed[1])][:2] == [
        "'10,5' is not a number as CNIG 1.0.1 writes it (10.5): kept as written",
        "'beaucoup' is not a number (kept as written)",
    ]
    assert ("site_epci_nom", "site_epci_nom is required by CNIG 1.0.1: empty") in warnings_of(parsed[4])
    # the checks cover the schema's types: the code's lists are the official schema's
    import json

    fields = json.loads((CNIG / "schema.json").read_text(encoding="utf-8"))["fields"]
    held = {"site_id", "site_nom", "site_comm_insee", "site_surf_brute"}
    assert {f["name"] for f in fields if f["type"] == "number"} - held == set(CNIG_NUMBERS)
    assert {f["name"]: f["format"] for f in fields if f["type"] == "date"} == CNIG_DATES
    assert {f["name"] for f in fields if "pattern" in f.get("constraints", {})} == set(CNIG_URLS)
    assert {f["name"] for f in fields if f.get("constraints", {}).get("required")} - held == set(CNIG_REQUIRED)
