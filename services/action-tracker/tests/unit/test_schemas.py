"""Validation of what clients write."""

from __future__ import annotations

from typing import Any

import pytest
from action_tracker.schemas import ActionBody, ActionPatch, ActionResource, ActionWrite
from pydantic import ValidationError

BODY: dict[str, Any] = {
    "territory_id": "ti-8402",
    "title": "Campus",
    "axis": "competences_attractivite",
    "themes": ["nouvelles_formations"],
    "status": "en_cours",
    "planned_start": "2024-01-15",
    "budget_eur": "120000",
    "partners": ["BPI"],
}


def locs(exc: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_canonical_form() -> None:
    body = ActionBody.model_validate(BODY).canonical()
    assert body == {
        "territory_id": "ti-8402",
        "title": "Campus",
        "description": None,
        "axis": "competences_attractivite",
        "themes": ["nouvelles_formations"],
        "status": "en_cours",
        "planned_start": "2024-01-15",
        "planned_end": None,
        "budget_eur": "120000.00",
        "partners": ["BPI"],
    }
    assert ActionBody.model_validate({**BODY, "budget_eur": "120000.00", "title": " Campus "}).canonical() == body


def test_defaults() -> None:
    body = ActionBody.model_validate({"territory_id": "ti-8402", "title": "T", "axis": "autre"}).canonical()
    assert (body["status"], body["themes"], body["partners"], body["budget_eur"]) == ("non_renseigne", [], [], None)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"territory_id": "ti-84021"}, ("territory_id",)),
        ({"title": "   "}, ("title",)),
        ({"title": "x" * 301}, ("title",)),
        ({"axis": "Foncier"}, ("axis",)),
        ({"themes": ["tiers_lieux", "tiers_lieux"]}, ("themes",)),
        ({"themes": ["x"]}, ("themes", 0)),
        ({"status": None}, ("status",)),
        ({"planned_start": "2024-1-5"}, ("planned_start",)),
        ({"planned_start": 20240105}, ("planned_start",)),
        ({"planned_start": "2024-01-05T00:00:00Z"}, ("planned_start",)),
        ({"planned_end": "2023-01-01"}, ("planned_end",)),
        ({"budget_eur": 1.5}, ("budget_eur",)),
        ({"budget_eur": "1,5"}, ("budget_eur",)),
        ({"budget_eur": "0.001"}, ("budget_eur",)),
        ({"partners": ["x" * 121]}, ("partners", 0)),
        ({"extra": 1}, ("extra",)),
    ],
)
def test_invalid_bodies_name_the_field(fields: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        ActionBody.model_validate({**BODY, **fields})
    assert loc in locs(info.value)


def test_a_read_representation_can_be_written_back() -> None:
    resource = {
        "id": "a1",
        **ActionBody.model_validate(BODY).canonical(),
        "version": 3,
        "updated_at": "2024-01-01T00:00:00Z",
        "deleted": False,
    }
    write = ActionWrite.model_validate(resource)
    assert write.body().canonical() == ActionBody.model_validate(BODY).canonical()
    with pytest.raises(ValidationError):
        ActionWrite.model_validate({**resource, "deleted": True})
    ActionResource.model_validate(resource)


def test_patch_keeps_only_given_fields() -> None:
    patch = ActionPatch.model_validate({"status": "realise", "comment": "fini", "planned_end": None})
    assert patch.changes() == {"status": "realise", "planned_end": None}
    assert patch.comment == "fini"
    with pytest.raises(ValidationError):
        ActionPatch.model_validate({"statut": "realise"})
