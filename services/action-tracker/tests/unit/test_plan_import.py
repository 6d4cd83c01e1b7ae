"""Reading plan files: columns, codes or labels, French numbers and dates, per-row reasons, the report."""

from __future__ import annotations

import io

import pytest
from action_tracker.plan_import import AXIS, PLAN, STATUS, THEME, read_plan
from openpyxl import Workbook
from ti_shared.cells import fold
from ti_shared.imports import ImportTable, read_import
from ti_shared.problems import Problem
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, AXIS_LABELS, STATUS_LABELS, THEME_AXES, THEME_LABELS, THEMES

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def table_of(data: bytes, media_type: str = "text/csv") -> ImportTable:
    return read_import(data, media_type, PLAN)


CSV = """action_id;titre;description;axe;thématiques;statut;planned_start;planned_end;budget;partenaires;colonne GRIST
a-1;Campus des métiers;;Compétences et attractivité;Nouvelles formations|besoin_formation;En cours;15/01/2024;2025-06-30;1 234,50;Région, BPI;x
a-2;Friche Nexans;Dépollution;foncier;requalification_friche;;;;;;
a-3;;;logistique;peinture;fini;2024-13-01;;abc;;
a-1;Doublon;;autre;;amont;;;;;
;Sans identifiant;;autre;;;;;;;
a-6;Fin avant début;;innovation;;etude_prealable;2024-05-01;2024-04-01;-3;;
a-7;Autre territoire;;innovation;;;;;;;
""".encode()


def test_columns_by_code_or_french_name() -> None:
    table = table_of("ID;Titre;Axe;Thématiques;Commentaire\na-1;T;autre;;x\n".encode())
    assert table.header.columns == {"action_id": "ID", "title": "Titre", "axis": "Axe", "themes": "Thématiques"}
    assert [w.msg for w in table.warnings] == ["column 'Commentaire' is not a column of a territory's plan: its values are not imported"]
    with pytest.raises(Problem) as info:
        table_of(b"action_id;title\na-1;T\n")
    assert info.value.errors == [{"loc": ["header", "axis"], "msg": "column axis is missing (also read as: axe, Axe)"}]


def test_rows_with_their_reasons() -> None:
    table = table_of(CSV)
    assert [w.msg for w in table.warnings] == [
        "column 'colonne GRIST' is not a column of a territory's plan: its values are not imported"
    ]
    rows = read_plan(table, "ti-8402")
    by_row = {r.row: r for r in rows}
    assert [r.row for r in rows] == [2, 3, 4, 5, 6, 7, 8]

    first = by_row[2]
    assert first.ok and first.body is not None
    assert first.body.canonical() == {
        "territory_id": "ti-8402",
        "title": "Campus des métiers",
        "description": None,
        "axis": "competences_attractivite",
        "themes": ["nouvelles_formations", "besoin_formation"],
        "status": "en_cours",
        "planned_start": "2024-01-15",
        "planned_end": "2025-06-30",
        "budget_eur": "1234.50",
        "partners": ["Région", "BPI"],
    }
    assert by_row[3].ok and by_row[3].body is not None and by_row[3].body.status == "non_renseigne"

    bad = {e["loc"][0] for e in by_row[4].errors}
    assert bad == {"title", "axis", "themes", "status", "planned_start", "budget_eur"}
    assert [e["loc"] for e in by_row[5].errors] == [["action_id"]] and "row 2" in by_row[5].errors[0]["msg"]
    assert by_row[6].errors == [{"loc": ["action_id"], "msg": "is required"}]
    assert {e["loc"][0] for e in by_row[7].errors} == {"planned_end", "budget_eur"}
    assert by_row[8].ok


def test_territory_column_must_match_the_import() -> None:
    table = table_of(b"action_id,territory_id,title,axis\nb-1,ti-1101,T,autre\nb-2,,T,autre\nb-3,ti-8402,T,autre\n")
    rows = read_plan(table, "ti-8402")
    assert [r.ok for r in rows] == [False, True, True]
    assert rows[0].errors[0]["loc"] == ["territory_id"]


def test_vocabularies_of_the_contract() -> None:
    assert (len(AXES), len(THEMES), len(STATUSES)) == (5, 15, 7)
    assert set(AXIS_LABELS) == set(AXES) and set(THEME_LABELS) == set(THEMES) and set(STATUS_LABELS) == set(STATUSES)
    assert set(THEME_AXES) == set(THEMES) and set(THEME_AXES.values()) <= set(AXES)
    assert AXIS_LABELS["competences_attractivite"] == "Compétences et attractivité"
    assert STATUS_LABELS["amont"] == "À initier (amont)"
    assert THEME_LABELS["optimisation_densification_fonciere"] == "Optimisation / densification foncière"


def test_codes_from_codes_or_french_labels() -> None:
    assert fold("  À initier (amont) ") == "a_initier_amont"
    assert AXIS.read("Compétences et attractivité").value == "competences_attractivite"
    assert AXIS.read("TRANSITION ÉCOLOGIQUE").value == "transition_ecologique"
    with pytest.raises(ValueError):
        AXIS.read("logistique")
    assert STATUS.read("En pause / à débloquer").value == "en_pause"
    assert STATUS.read("À initier").value == "amont"
    assert STATUS.read("realise").value == "realise"
    assert THEME.read("Écologie industrielle et territoriale").value == "ecologie_industrielle_territoriale"
    assert all(THEME.read(label).value == code for code, label in THEME_LABELS.items())
    assert all(STATUS.read(label).value == code for code, label in STATUS_LABELS.items())


def grist_rows() -> list[list[str]]:
    """A plan as GRIST exports it: its columns' labels, multi-choice cells, French money and dates."""
    return [
        ["ID", "Titre", "Axe", "Thématiques", "Statut", "Date de début", "Date de fin", "Budget", "Partenaires", "Notes internes"],
        ["g-1", "Campus des métiers", "Compétences et attractivité", "Nouvelles formations, Besoin de formation",
         "En cours", "15/01/2024", "30 juin 2025", "120 000,00 €", "Région, BPI", "à relancer"],
        ["g-2", "Friche Nexans", "Foncier", "Requalification de friche", "Étude préalable", "2024-03-01", "", "1 500", "", ""],
    ]


def test_a_grist_csv_export_keeps_both_dates_and_every_theme() -> None:
    data = "\r\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in grist_rows()).encode()
    table = table_of(data)
    assert [w.msg for w in table.warnings] == [
        "column 'Notes internes' is not a column of a territory's plan: its values are not imported"
    ]
    first, second = read_plan(table, "ti-8402")
    assert first.ok and first.body is not None and second.ok and second.body is not None
    assert first.body.canonical() == {
        "territory_id": "ti-8402", "title": "Campus des métiers", "description": None, "axis": "competences_attractivite",
        "themes": ["nouvelles_formations", "besoin_formation"], "status": "en_cours", "planned_start": "2024-01-15",
        "planned_end": "2025-06-30", "budget_eur": "120000.00", "partners": ["Région", "BPI"],
    }
    assert [(w["loc"], w["msg"]) for w in first.warnings] == [
        (["budget_eur"], "'120 000,00 €' read as 120000.00"),
        (["planned_start"], "'15/01/2024' read as 2024-01-15"),
        (["planned_end"], "'30 juin 2025' read as 2025-06-30"),
    ]
    assert second.body.canonical()["budget_eur"] == "1500.00" and second.body.canonical()["planned_start"] == "2024-03-01"


def test_a_grist_xlsx_export_separates_choices_with_semicolons() -> None:
    rows = grist_rows()
    rows[1][3] = "Nouvelles formations; Besoin de formation"
    rows[0][5], rows[0][6] = "Date de debut", "DATE DE FIN"
    book = Workbook()
    for r in rows:
        book.active.append(r)
    out = io.BytesIO()
    book.save(out)
    table = table_of(out.getvalue(), XLSX)
    assert "column 'DATE DE FIN' read as planned_end" in [w.msg for w in table.warnings]
    first, _ = read_plan(table, "ti-8402")
    assert first.body is not None and first.body.themes == ["nouvelles_formations", "besoin_formation"]
    assert (str(first.body.planned_start), str(first.body.planned_end)) == ("2024-01-15", "2025-06-30")


def test_an_unknown_theme_among_known_ones_is_named() -> None:
    table = table_of(b"action_id;title;axis;themes\na-1;T;autre;Tiers-lieux, Peinture, Gestion de l'eau\n")
    (row,) = read_plan(table, "ti-8402")
    assert row.errors == [{"loc": ["themes"], "msg": "unknown theme(s): 'Peinture'"}]
