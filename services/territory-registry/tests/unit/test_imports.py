from __future__ import annotations

from typing import Any

import pytest
from territory_registry.imports import (
    COMMUNE_LIST,
    GROUPEMENT_LIST,
    TERRITORY_LIST,
    commune_list_candidates,
    file_territory_ids,
    groupement_candidates,
    is_commune_list,
    territory_candidates,
)
from territory_registry.schemas import TERRITORY_EXAMPLE
from ti_shared.imports import import_table
from ti_shared.problems import Problem
from ti_shared.tabular import read_sheet, read_table
from ti_shared.types import luhn_complete


def territories(text: str, current: dict[str, dict[str, Any]] | None = None, encoding: str = "utf-8") -> list[Any]:
    table = import_table(read_sheet(text.encode(encoding), "text/csv"), TERRITORY_LIST)
    return territory_candidates(table.table.rows, table.header.columns, current or {}, table.table.lines)


def groupements(text: str, current: dict[str, dict[str, Any]], encoding: str = "utf-8") -> list[Any]:
    table = import_table(read_sheet(text.encode(encoding), "text/csv"), GROUPEMENT_LIST)
    return groupement_candidates(table.table.rows, table.header.columns, current, table.table.lines)


def test_a_latin1_semicolon_row_becomes_a_territory_with_codes_kept_as_strings() -> None:
    text = (
        "id_ti;lib_ti;code_reg;codes_dep;phase;date_labellisation;statut;chef_projet_en_poste;"
        "chef_projet_cofinance;chef_projet_nom;chef_projet_email;date_copil_lancement\n"
        "ti-0101;Côte-sous-le-Vent;01;971;temps-2;09/11/2023;actif;oui;non;Léa Bérard;lea@example.fr;2024-03-01\n"
    )
    [candidate] = territories(text, encoding="latin-1")
    assert candidate.errors == [] and candidate.rows == [2]
    state = candidate.fields.model_dump(mode="json")
    assert state["name"] == "Côte-sous-le-Vent"
    assert state["region_code"] == "01" and state["departement_codes"] == ["971"]
    assert state["labelled_on"] == "2023-11-09" and state["launch_copil_held_on"] == "2024-03-01"
    assert state["project_lead"] == {"in_post": True, "cofinanced": False, "name": "Léa Bérard", "email": "lea@example.fr"}
    assert state["status"] == "active"


def test_header_spellings_are_matched_without_case_or_accents() -> None:
    [candidate] = territories("ID_TI,Lib_TI,Insee_Reg,Codes_Dep\nti-2801,Vallée de la Bresle,28,76|80\n")
    assert candidate.fields is not None
    assert candidate.fields.departement_codes == ["76", "80"]


def test_missing_columns_are_a_file_problem() -> None:
    with pytest.raises(Problem) as info:
        territories("id_ti;lib_ti\nti-8402;X\n")
    assert info.value.status == 422
    assert info.value.errors == [{"loc": ["header", "code_reg"], "msg": "column code_reg is missing (also read as: insee_reg, reg)"}]


def test_an_unknown_or_renamed_column_is_a_warning_of_the_file() -> None:
    table = import_table(read_sheet("ID_TI;Lib TI;code_reg;commentaire\nti-8402;X;84;à revoir\n".encode(), "text/csv"), TERRITORY_LIST)
    assert [w.msg for w in table.warnings] == [
        "column 'ID_TI' read as id_ti",
        "column 'Lib TI' read as lib_ti",
        "column 'commentaire' is not a column of ANCT's territories list: its values are not imported",
    ]


def test_absent_columns_keep_current_values_and_empty_cells_clear_them() -> None:
    current = {"ti-8402": {**TERRITORY_EXAMPLE, "id": "ti-8402", "version": 3, "updated_at": "2024-01-01T00:00:00Z"}}
    [kept] = territories("id_ti;lib_ti;code_reg\nti-8402;Nouveau nom;84\n", current)
    assert kept.fields is not None
    assert kept.fields.epcis[0].siren == "200071751"
    assert kept.fields.project_lead is not None and kept.fields.phase == "temps-2"
    [cleared] = territories("id_ti;lib_ti;code_reg;phase;date_copil_lancement\nti-8402;Nom;84;;\n", current)
    assert cleared.fields is not None
    assert cleared.fields.phase is None and cleared.fields.launch_copil_held_on is None


def test_every_bad_cell_is_reported_with_its_row_and_column() -> None:
    text = (
        "id_ti;lib_ti;code_reg;codes_dep;date_labellisation;chef_projet_en_poste;chef_projet_email\n"
        "ti-8401;Bon;84;01;2023-11-09;oui;a@example.fr\n"
        "ti-84;Mauvais id;84;01;;;\n"
        "ti-8403;;99;20|2A;31/02/2023;peut-être;pas-un-mail\n"
        "ti-8401;Doublon;84;01;;;\n"
    )
    good, bad_id, bad_cells, duplicate = territories(text)
    assert good.fields is not None
    assert bad_id.fields is None and bad_id.errors[0]["loc"] == ["row", 3, "id_ti"]
    locs = {tuple(e["loc"]) for e in bad_cells.errors}
    assert {
        ("row", 4, "lib_ti"),
        ("row", 4, "code_reg"),
        ("row", 4, "codes_dep"),
        ("row", 4, "date_labellisation"),
        ("row", 4, "chef_projet_en_poste"),
        ("row", 4, "chef_projet_email"),
    } <= locs
    assert duplicate.fields is None and "row 2" in duplicate.errors[0]["msg"]


def test_file_ids_are_the_well_formed_ones() -> None:
    rows = read_table(b"id_ti;lib_ti;code_reg\nti-8401;A;84\nbad;B;84\n")
    assert file_territory_ids(rows, "id_ti") == {"ti-8401"}


def current_of(*ids: str) -> dict[str, dict[str, Any]]:
    return {i: {**TERRITORY_EXAMPLE, "id": i, "version": 1, "updated_at": "2024-01-01T00:00:00Z"} for i in ids}


def test_groupements_replace_the_epci_list_of_each_territory() -> None:
    a, b = luhn_complete("24010001"), luhn_complete("24010002")
    text = (
        "id_ti;lib_groupement;siren_groupement\n"
        f"ti-8402;CC de la Plaine de l'Ain;{a}\n"
        f"ti-8403;CA Annemasse;{b}\n"
        f"ti-8402;CC Rives de l'Ain;{b[:3]} {b[3:6]} {b[6:]}\n"
    )
    first, second = groupements(text, current_of("ti-8402", "ti-8403"), encoding="latin-1")
    assert first.territory_id == "ti-8402" and first.rows == [2, 4]
    assert first.fields is not None and [e.siren for e in first.fields.epcis] == [a, b]
    assert first.fields.name == TERRITORY_EXAMPLE["name"]
    assert second.rows == [3] and second.fields is not None and second.fields.epcis[0].name == "CA Annemasse"


def test_a_bad_groupement_row_rejects_its_territory_and_names_the_row() -> None:
    a = luhn_complete("24010001")
    text = (
        "id_ti;lib_groupement;siren_groupement\n"
        f"ti-8402;CC A;{a}\n"
        "ti-8402;CC B;200071752\n"
        f"ti-8402;CC C;{a}\n"
        f"ti-9901;CC D;{a}\n"
        f"ti-9x;CC E;{a}\n"
        "ti-8403;;200071751\n"
    )
    candidates = groupements(text, current_of("ti-8402", "ti-8403"))
    by_id = {c.territory_id: c for c in candidates}
    assert by_id["ti-8402"].fields is None
    assert {tuple(e["loc"]) for e in by_id["ti-8402"].errors} == {("row", 3, "siren_groupement"), ("row", 4, "siren_groupement")}
    assert by_id["ti-9901"].fields is None and "not registered" in by_id["ti-9901"].errors[0]["msg"]
    assert by_id["ti-9x"].errors[0]["loc"] == ["row", 6, "id_ti"]
    assert by_id["ti-8403"].errors[0]["loc"] == ["row", 7, "lib_groupement"]
    assert [c.rows[0] for c in candidates] == sorted(c.rows[0] for c in candidates)


# --- ANCT's commune-level list ---------------------------------------------------------------


def commune_list(text: str, current: dict[str, dict[str, Any]] | None = None, encoding: str = "utf-8") -> dict[str, Any]:
    table = import_table(read_sheet(text.encode(encoding), "text/csv"), COMMUNE_LIST)
    return {c.territory_id: c for c in commune_list_candidates(table, current or {})}


def messages(candidate: Any, kind: str = "warnings") -> list[tuple[Any, str]]:
    """(row, message) of each warning, (column, message) of each error."""
    return [(e["loc"][1] if kind == "warnings" else e["loc"][2], e["msg"]) for e in getattr(candidate, kind)]


def test_the_commune_list_is_told_by_its_insee_com_column() -> None:
    assert is_commune_list(["insee_com", "lib_com", "id_ti", "lib_ti"])
    assert is_commune_list(["\ufeffID_TI", "INSEE_COM"]) and is_commune_list(["id_ti", "Code INSEE", "lib_ti"])
    assert not is_commune_list(["id_ti", "lib_ti", "code_reg", "codes_dep"])


def test_one_territory_per_id_with_its_region_communes_and_departements() -> None:
    text = (
        "lib_ti;insee_com;id_ti;lib_com\n"
        "Bassin de Bourg-en-Bresse;01053;ti-8402;Bourg-en-Bresse\n"
        "Bassin de Bourg-en-Bresse;01004;ti-8402;Ambérieu-en-Bugey\n"
        "Bassin de Bourg-en-Bresse;38053;ti-8402;Bourgoin-Jallieu\n"
        "Ajaccio;2A004;ti-9401;Ajaccio\n"
    )
    by_id = commune_list(text)
    bourg, ajaccio = by_id["ti-8402"].fields, by_id["ti-9401"].fields
    assert (bourg.name, bourg.region_code, bourg.departement_codes) == ("Bassin de Bourg-en-Bresse", "84", ["01", "38"])
    assert bourg.communes == ["01004", "01053", "38053"] and by_id["ti-8402"].rows == [2, 3, 4]
    assert (ajaccio.region_code, ajaccio.departement_codes, ajaccio.communes) == ("94", ["2A"], ["2A004"])
    assert by_id["ti-8402"].warnings == [] and by_id["ti-9401"].warnings == []


def test_other_fields_of_a_known_territory_are_kept() -> None:
    current = {"ti-8402": {**TERRITORY_EXAMPLE, "id": "ti-8402", "version": 3, "updated_at": "2024-01-01T00:00:00Z"}}
    [candidate] = commune_list("insee_com,id_ti,lib_ti\n01053,ti-8402,Bourg et Bresse\n", current).values()
    assert candidate.fields.epcis[0].siren == "200071751" and candidate.fields.phase == "temps-2"
    assert candidate.fields.project_lead.email == "camille.martin@example.org"
    assert (candidate.fields.name, candidate.fields.communes) == ("Bourg et Bresse", ["01053"])


def test_what_the_rows_depart_from_is_a_warning_naming_the_value_read() -> None:
    text = (
        "insee_com;id_ti;lib_ti\n"
        "1053;TI-8402;Bourg\n"          # a leading zero lost, an upper-case id
        "01053;ti-8402;Bourg\n"         # the same commune again
        "80021;ti-8402;\n"              # a commune of another region, a row without the name
        "2a004;ti-9401;Ajaccio\n"
        "01053;ti-9401;Ajaccio\n"       # a commune in two perimeters
    )
    by_id = commune_list(text, encoding="cp1252")
    assert by_id["ti-8402"].fields.communes == ["01053", "80021"]
    assert by_id["ti-8402"].fields.departement_codes == ["01", "80"]
    assert messages(by_id["ti-8402"]) == [
        (2, "'TI-8402' read as ti-8402"),
        (2, "'1053' read as 01053 (a leading zero lost by a spreadsheet?)"),
        (3, "commune 01053 is already listed for ti-8402 at row 2: kept once"),
        (4, "no lib_ti on this row of ti-8402"),
        (4, "communes of Somme (80, region 32) are in the perimeter of ti-8402, whose region is 84: kept (a territory may span regions)"),
    ]
    assert messages(by_id["ti-9401"]) == [
        (5, "'2a004' read as 2A004"),
        (6, "commune 01053 is also in the perimeter of ti-8402 (row 2)"),
        (6, "communes of Ain (01, region 84) are in the perimeter of ti-9401, whose region is 94: kept (a territory may span regions)"),
    ]


def test_a_territory_is_refused_when_its_rows_cannot_all_be_read() -> None:
    text = (
        "insee_com;id_ti;lib_ti\n"
        "01053;ti-9902;Nulle part\n"     # 99 is no region
        "01053;ti-8402;Bourg\n"
        "01004;ti-8402;Bourg-en-Bresse\n"  # two names for one territory
        "20004;ti-9401;Ajaccio\n"        # not a commune code
        "71076;ti-2701;Le Creusot\n"
        ";ti-2701;Le Creusot\n"          # no code
        "71076;27-01;Le Creusot\n"       # not an id
    )
    by_id = commune_list(text)
    assert all(c.fields is None for c in by_id.values())
    assert messages(by_id["ti-9902"], "errors") == [
        ("id_ti", "ti-9902: its first two digits 99 are not an INSEE region code (ANCT numbers each territory after its region: ti-8402 is in region 84)")
    ]
    assert messages(by_id["ti-8402"], "errors") == [
        ("lib_ti", "the rows of ti-8402 give different names: 'Bourg' (row 3), 'Bourg-en-Bresse' (row 4)")
    ]
    assert messages(by_id["ti-9401"], "errors") == [("insee_com", "'20004': Corsican communes use 2A or 2B, not 20")]
    assert messages(by_id["ti-2701"], "errors") == [("insee_com", "no INSEE commune code")]
    assert by_id["27-01"].rows == [8] and by_id["27-01"].errors[0]["loc"] == ["row", 8, "id_ti"]


def test_the_cells_of_a_territories_row_are_read_as_the_other_imports_read_them_each_departure_a_warning() -> None:
    text = (
        "id_ti;lib_ti;code_reg;date_labellisation;date_copil_lancement;statut;chef_projet_en_poste;chef_projet_cofinance\n"
        "ti-8401;Plain;84;09/11/2023;2024-03-01;actif;oui;non\n"
        "ti-8402;Written otherwise;84;9 novembre 2023;01.03.2024;Retire;Vrai;0\n"
    )
    plain, other = territories(text)
    assert plain.errors == [] and plain.warnings == []
    assert other.errors == [] and other.fields is not None
    state = other.fields.model_dump(mode="json")
    assert state["labelled_on"] == "2023-11-09" and state["launch_copil_held_on"] == "2024-03-01"
    assert state["status"] == "withdrawn"
    assert state["project_lead"]["in_post"] is True and state["project_lead"]["cofinanced"] is False
    assert other.warnings == [
        {"loc": ["row", 3, "date_labellisation"], "msg": "'9 novembre 2023' read as 2023-11-09"},
        {"loc": ["row", 3, "date_copil_lancement"], "msg": "'01.03.2024' read as 2024-03-01"},
        {"loc": ["row", 3, "statut"], "msg": "'Retire' read as withdrawn"},
        {"loc": ["row", 3, "chef_projet_en_poste"], "msg": "'Vrai' read as oui"},
        {"loc": ["row", 3, "chef_projet_cofinance"], "msg": "'0' read as non"},
    ]


def test_an_unreadable_status_or_flag_rejects_its_row_naming_the_value() -> None:
    [bad] = territories("id_ti;lib_ti;code_reg;statut;chef_projet_en_poste\nti-8401;X;84;en sommeil;peut-être\n")
    assert bad.fields is None
    assert {tuple(e["loc"]): e["msg"] for e in bad.errors} == {
        ("row", 2, "statut"): "'en sommeil' is not a known status (active, withdrawn)",
        ("row", 2, "chef_projet_en_poste"): "'peut-être' is not a yes/no value (oui or non)",
    }


def test_a_siren_written_with_spaces_is_read_with_a_warning() -> None:
    a = luhn_complete("24010001")
    [candidate] = groupements(f"id_ti;lib_groupement;siren_groupement\nti-8402;CC;{a[:3]} {a[3:6]} {a[6:]}\n", current_of("ti-8402"))
    assert candidate.fields is not None and candidate.fields.epcis[0].siren == a
    assert candidate.warnings == [{"loc": ["row", 2, "siren_groupement"], "msg": f"'{a[:3]} {a[3:6]} {a[6:]}' read as {a}"}]
