"""The rules: which change a write is, what changed, how plan cells are read."""

from __future__ import annotations

from typing import Any

from action_tracker.domain import (
    BODY_FIELDS,
    Change,
    axis_code,
    changed_fields,
    decide_delete,
    decide_write,
    fold,
    iso_date_text,
    split_list,
    status_code,
    territories_touched,
    theme_code,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_shared.vocabulary import ACTION_STATUSES as STATUSES
from ti_shared.vocabulary import AXES, AXIS_LABELS, STATUS_LABELS, THEME_AXES, THEME_LABELS, THEMES

STATE: dict[str, Any] = {
    "territory_id": "ti-8402",
    "title": "Campus",
    "description": None,
    "axis": "foncier",
    "themes": ["gestion_eau"],
    "status": "en_cours",
    "planned_start": "2024-01-15",
    "planned_end": None,
    "budget_eur": "10.00",
    "partners": [],
}


def test_first_write_creates_with_every_field() -> None:
    decision = decide_write(None, False, STATE)
    assert decision.change is Change.CREATED
    assert decision.changed_fields == BODY_FIELDS


def test_identical_write_changes_nothing() -> None:
    decision = decide_write(STATE, False, dict(STATE))
    assert decision.is_noop and decision.changed_fields == ()


def test_status_change_wins_over_other_changes() -> None:
    decision = decide_write(STATE, False, {**STATE, "status": "realise", "title": "Autre"})
    assert decision.change is Change.STATUS_CHANGED
    assert decision.changed_fields == ("title", "status")


def test_other_changes_are_updates() -> None:
    decision = decide_write(STATE, False, {**STATE, "themes": ["gestion_eau", "tiers_lieux"], "budget_eur": None})
    assert decision.change is Change.UPDATED
    assert decision.changed_fields == ("themes", "budget_eur")


def test_theme_order_is_a_change() -> None:
    before = {**STATE, "themes": ["a", "b"]}
    assert decide_write(before, False, {**STATE, "themes": ["b", "a"]}).change is Change.UPDATED


def test_write_over_a_deleted_action_recreates_it() -> None:
    decision = decide_write(STATE, True, dict(STATE))
    assert decision.change is Change.CREATED
    assert decision.changed_fields == ("deleted",)
    assert decide_write(STATE, True, {**STATE, "status": "amont"}).changed_fields == ("status", "deleted")


def test_delete() -> None:
    assert decide_delete(False).change is Change.DELETED
    assert decide_delete(True).is_noop


def test_territories_touched_by_a_move() -> None:
    assert territories_touched(STATE, {**STATE, "territory_id": "ti-1101"}) == {"ti-8402", "ti-1101"}
    assert territories_touched(None, STATE) == {"ti-8402"}
    assert territories_touched(STATE, None) == {"ti-8402"}


body_values = st.fixed_dictionaries(
    {
        "territory_id": st.sampled_from(["ti-8402", "ti-1101"]),
        "title": st.text(min_size=1, max_size=20),
        "description": st.none() | st.text(max_size=20),
        "axis": st.sampled_from(AXES),
        "themes": st.lists(st.sampled_from(THEMES), unique=True, max_size=4),
        "status": st.sampled_from(STATUSES),
        "planned_start": st.none() | st.dates().map(lambda d: d.isoformat()),
        "planned_end": st.none() | st.dates().map(lambda d: d.isoformat()),
        "budget_eur": st.none() | st.decimals(min_value=0, max_value=10**6, places=2).map(lambda d: f"{d:.2f}"),
        "partners": st.lists(st.text(min_size=1, max_size=8), max_size=3),
    }
)


@settings(max_examples=60, deadline=None)
@given(body_values, body_values)
def test_decision_agrees_with_the_diff(before: dict[str, Any], after: dict[str, Any]) -> None:
    decision = decide_write(before, False, after)
    fields = changed_fields(before, after)
    assert decision.changed_fields == fields
    assert decision.is_noop == (before == after)
    assert (decision.change is Change.STATUS_CHANGED) == (before["status"] != after["status"])
    assert decide_write(after, False, after).is_noop


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
