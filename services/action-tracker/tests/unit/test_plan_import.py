"""Reading plan files: columns, codes or labels, French numbers and dates, per-row reasons, the report."""

from __future__ import annotations

from action_tracker.plan_import import (
    axis_code,
    fold,
    iso_date_text,
    plan_columns,
    read_plan,
    split_list,
    status_code,
    theme_code,
)
from ti_shared.tabular import read_csv
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, AXIS_LABELS, STATUS_LABELS, THEME_AXES, THEME_LABELS, THEMES

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
    columns, missing = plan_columns(["ID", "Titre", "Axe", "Thématiques", "Commentaire"])
    assert columns == {"action_id": "ID", "title": "Titre", "axis": "Axe", "themes": "Thématiques"}
    assert missing == []
    assert plan_columns(["action_id", "title"])[1] == ["axis"]


def test_rows_with_their_reasons() -> None:
    table = read_csv(CSV)
    columns, missing = plan_columns(table[0].keys())
    assert missing == []
    rows = read_plan(table, columns, "ti-8402")
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
    table = read_csv(b"action_id,territory_id,title,axis\nb-1,ti-1101,T,autre\nb-2,,T,autre\nb-3,ti-8402,T,autre\n")
    columns, _ = plan_columns(table[0].keys())
    rows = read_plan(table, columns, "ti-8402")
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
    assert axis_code("Compétences et attractivité") == "competences_attractivite"
    assert axis_code("TRANSITION ÉCOLOGIQUE") == "transition_ecologique"
    assert axis_code("logistique") == "logistique"
    assert status_code("En pause / à débloquer") == "en_pause"
    assert status_code("À initier") == "amont"
    assert status_code("realise") == "realise"
    assert theme_code("Écologie industrielle et territoriale") == "ecologie_industrielle_territoriale"
    assert theme_code("Tiers-lieux") == "tiers_lieux"
    assert all(theme_code(label) == code for code, label in THEME_LABELS.items())
    assert all(status_code(label) == code for code, label in STATUS_LABELS.items())


def test_list_cells_and_dates() -> None:
    assert split_list("gestion_eau | tiers_lieux") == ["gestion_eau", "tiers_lieux"]
    assert split_list("BPI, Région,,") == ["BPI", "Région"]
    assert split_list("") == []
    assert iso_date_text("5/1/2024") == "2024-01-05"
    assert iso_date_text(" 2024-01-05 ") == "2024-01-05"
    assert iso_date_text("janvier") == "janvier"
