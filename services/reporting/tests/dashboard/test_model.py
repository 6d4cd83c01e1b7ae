"""French formats and the pages' figures, without a browser (pure)."""

from __future__ import annotations

import asyncio
from typing import Any

from reporting.api import get_catalogue
from reporting.dashboard import formatting as fmt
from reporting.dashboard import model

NNBSP = "\u202f"
NBSP = "\xa0"


def test_french_formats() -> None:
    assert fmt.text(2812, "count") == f"2{NNBSP}812"
    assert fmt.text("63000000.00", "money") == f"63,0{NBSP}M€"
    assert fmt.text("12300000000.00", "money") == f"12,3{NBSP}Md€"
    assert fmt.text("950.50", "money") == f"950{NBSP}€"
    assert fmt.exact("39700000.00", "money") == f"39{NNBSP}700{NNBSP}000,00{NBSP}€"
    assert fmt.text(0.320057, "share") == f"32,0{NNBSP}%"
    assert fmt.text("2942.00", "area") == f"2{NNBSP}942{NBSP}ha"
    assert fmt.text("53.49", "area") == f"53,49{NBSP}ha"
    assert fmt.text(None, "share") == "—"
    assert fmt.delta(2812, 2429, "count") == "+383"
    assert fmt.delta(0.30, 0.32, "share") == f"−2,0{NBSP}pts"
    assert fmt.delta(None, 1, "count") is None
    assert fmt.when("2023-11-30") == "30 novembre 2023" and fmt.when("2024-11-30T10:00:00Z") == "30 novembre 2024 à 11:00"
    assert fmt.data_date("2024-11-30", "2026-01-01T00:00:00Z") == "Données au 30 novembre 2024 (fin de journée, heure de Paris)"


def test_kinds_follow_the_catalogue_units() -> None:
    assert fmt.kind_of_unit("EUR") == "money"
    assert fmt.kind_of_unit("part (0–1)") == "share"
    assert fmt.kind_of_unit("ha") == "area"
    assert fmt.kind_of_unit("mixte", "fonds_vert_ti_te.investment_eur") == "money"
    assert fmt.kind_of_unit("mixte", "fonds_vert_ti_te.value_chain_share.bioeconomie") == "share"
    assert fmt.kind_of_unit("mixte", "fonds_vert_ti_te.jobs_forecast") == "count"


CATALOGUE: dict[str, Any] = {
    "actions.count": {"label": "Actions recensées", "unit": "actions", "definition": "Actions des plans.", "breakdown_labels": {}},
    "actions.by_axis": {"label": "Actions par axe", "unit": "actions", "definition": "Par axe.",
                        "breakdown_labels": {"foncier": "Foncier", "autre": "Autre"}},
}


def test_figures_keep_code_path_value_and_comparison() -> None:
    now = {"indicators": {"actions.count": 12, "actions.by_axis": {"foncier": 7, "autre": 5}}}
    before = {"indicators": {"actions.count": 10, "actions.by_axis": {"foncier": 7}}}
    b = model.Builder(CATALOGUE, now, before)
    count = b.figure("actions.count")
    assert count is not None and (count.value, count.compare, count.delta) == (12, 10, "+2")
    bars = b.bars("Par axe", "actions.by_axis")
    assert [(bar.figure.label, bar.figure.key, bar.ratio) for bar in bars.bars] == [("Foncier", "foncier", 1.0), ("Autre", "autre", 5 / 7)]
    autre = bars.bars[1].figure
    assert autre.compare is None and autre.delta is None and autre.compare_text == "—"
    assert "Actions par axe — Autre" in autre.definition
    assert b.figure("grants.count") is None  # not in the document: not shown


def test_map_classes_and_links() -> None:
    docs = {code: {"indicators": {"actions.count": n}} for code, n in (("53", 100), ("94", 0), ("02", 45))}
    names = {"53": "Bretagne", "94": "Corse", "02": "Martinique"}
    regions, legend = model.map_regions(CATALOGUE, "actions.count", docs, names, {c: f"/r/{c}" for c in names})
    colours = {r.code: r.colour for r in regions}
    assert colours["53"] == model.MAP_COLOURS[-1] and colours["94"] == model.MAP_COLOURS[0]
    assert colours["02"] == model.MAP_COLOURS[2]
    assert len(legend) == len(model.MAP_COLOURS) and legend[-1].text == "80 – 100"


def test_what_an_entity_contributes_is_named_and_written_in_french() -> None:
    catalogue = {i.code: i.model_dump() for i in asyncio.run(get_catalogue()).items}
    assert model.input_label(catalogue, "actions.count") == "Actions recensées"
    assert model.input_label(catalogue, "actions.by_axis.innovation") == "Actions par axe › Innovation"
    assert model.input_label(catalogue, "actions.by_region_status.53.en_cours") == "Avancement des actions par région › Bretagne › En cours"
    assert model.input_label(catalogue, "grants.by_programme.rebond_industriel.amount_eur") == (
        "Subventions par programme › Rebond industriel (France 2030) › Montant des subventions")
    assert model.input_label(catalogue, "grant_territory:rebond_industriel") == "Territoire lauréat — Rebond industriel (France 2030)"
    assert model.input_label(catalogue, "sites.workshop_held") == "Atelier d'accompagnement tenu"
    assert model.input_text("grants.amount_eur", "1500000.00") == f"1{NNBSP}500{NNBSP}000,00{NBSP}€"
    assert model.input_text("sites.area_ha", "25.50") == f"25,5{NBSP}ha"
    assert model.input_text("region", ["53"]) == "Bretagne (53)"
    assert model.input_text("epci", ["200071751", "200067072"]) == "200071751, 200067072"
    rows = model.explained_rows(catalogue, [{
        "entity": "territory", "id": "ti-5301", "version": 3, "event_id": "e-1", "time": "2024-06-30T08:00:00Z",
        "contribution": {"territories.count": 1, "epci": ["200071751"]},
    }], lambda t: f"/dashboard/territories/{t}")
    assert rows[0].href == "/dashboard/territories/ti-5301" and rows[0].entity_label == "Territoire"
    assert rows[0].time_text == "30 juin 2024 à 10:00"
    assert [(p.label, p.text) for p in rows[0].parts] == [
        ("Territoires d'industrie labellisés", "1"), ("EPCI couverts (SIREN)", "200071751")]
    assert model.figure_id("actions.by_axis", "innovation") == "f-actions-by-axis-innovation"
