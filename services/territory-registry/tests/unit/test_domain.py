from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError
from territory_registry.domain import FIELDS, plan_change, territory_problems, territory_state
from territory_registry.schemas import TERRITORY_EXAMPLE, Territory, TerritoryFields
from ti_shared.types import luhn_complete


def body(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TERRITORY_EXAMPLE)
    doc.update(changes)
    return doc


def error_locs(doc: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as info:
        TerritoryFields.model_validate(doc)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_the_contract_example_is_valid_and_round_trips() -> None:
    fields = TerritoryFields.model_validate(TERRITORY_EXAMPLE)
    assert territory_state(fields) == TERRITORY_EXAMPLE


def test_optional_fields_default_sensibly() -> None:
    fields = TerritoryFields.model_validate({"name": "Vallée de l'Arve", "region_code": "84"})
    state = territory_state(fields)
    assert state["status"] == "active"
    assert state["epcis"] == [] and state["departement_codes"] == []
    assert state["project_lead"] is None and state["launch_copil_held_on"] is None


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"name": ""}, ("name",)),
        ({"name": "   "}, ("name",)),
        ({"name": "x" * 201}, ("name",)),
        ({"region_code": "99"}, ("region_code",)),
        ({"region_code": 84}, ("region_code",)),
        ({"departement_codes": ["20"]}, ("departement_codes", 0)),
        ({"departement_codes": ["01", "975"]}, ("departement_codes", 1)),
        ({"epcis": [{"siren": "200071752", "name": "CA"}]}, ("epcis", 0, "siren")),
        ({"epcis": [{"siren": "20007175", "name": "CA"}]}, ("epcis", 0, "siren")),
        ({"epcis": [{"siren": "200071751", "name": ""}]}, ("epcis", 0, "name")),
        ({"epcis": [{"siren": "200071751", "name": "CA", "kind": "CA"}]}, ("epcis", 0, "kind")),
        ({"labelled_on": "09/11/2023"}, ("labelled_on",)),
        ({"labelled_on": "2023-02-30"}, ("labelled_on",)),
        ({"labelled_on": "2023-11-09T00:00:00"}, ("labelled_on",)),
        ({"labelled_on": 1699488000}, ("labelled_on",)),
        ({"launch_copil_held_on": "2024-3-1"}, ("launch_copil_held_on",)),
        ({"project_lead": {"in_post": True, "cofinanced": False, "name": "A", "email": "not-an-email"}}, ("project_lead", "email")),
        ({"project_lead": {"in_post": "yes", "cofinanced": False}}, ("project_lead", "in_post")),
        ({"project_lead": {"in_post": True, "cofinanced": True, "phone": "0102030405"}}, ("project_lead", "phone")),
        ({"status": "suspended"}, ("status",)),
        ({"id": "ti-8402"}, ("id",)),
        ({"version": 3}, ("version",)),
    ],
)
def test_each_invalid_value_is_named(changes: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    assert loc in error_locs(body(**changes))


def test_missing_name_and_region_are_refused() -> None:
    locs = error_locs({"departement_codes": ["01"]})
    assert ("name",) in locs and ("region_code",) in locs


def test_duplicate_epci_sirens_and_departements_are_problems() -> None:
    siren = luhn_complete("24010001")
    fields = TerritoryFields.model_validate(
        body(
            departement_codes=["01", "38", "01"],
            epcis=[{"siren": siren, "name": "A"}, {"siren": "200071751", "name": "B"}, {"siren": siren, "name": "C"}],
        )
    )
    problems = territory_problems(fields)
    assert [p["loc"] for p in problems] == [["epcis", 2, "siren"], ["departement_codes", 2]]
    assert "epcis[0]" in problems[0]["msg"]


def test_distinct_values_raise_no_problem() -> None:
    assert territory_problems(TerritoryFields.model_validate(TERRITORY_EXAMPLE)) == []


def test_creation_is_registered_with_every_field() -> None:
    planned = plan_change(None, None, TERRITORY_EXAMPLE)
    assert planned is not None
    assert (planned.change, planned.version, planned.changed_fields) == ("registered", 1, list(FIELDS))


def test_same_state_is_no_change() -> None:
    assert plan_change(TERRITORY_EXAMPLE, 4, copy.deepcopy(TERRITORY_EXAMPLE)) is None


def test_a_change_names_its_fields_and_bumps_the_version() -> None:
    planned = plan_change(TERRITORY_EXAMPLE, 4, body(name="Autre nom", phase="temps-1"))
    assert planned is not None
    assert (planned.change, planned.version, planned.changed_fields) == ("updated", 5, ["name", "phase"])


def test_withdrawal_and_reactivation() -> None:
    withdrawn = body(status="withdrawn")
    planned = plan_change(TERRITORY_EXAMPLE, 1, withdrawn)
    assert planned is not None and planned.change == "withdrawn" and planned.version == 2
    again = plan_change(withdrawn, 2, body(status="withdrawn", name="Renommé"))
    assert again is not None and again.change == "updated"
    back = plan_change(withdrawn, 2, TERRITORY_EXAMPLE)
    assert back is not None and back.change == "updated" and back.changed_fields == ["status"]


def test_order_of_epcis_is_part_of_the_state() -> None:
    two = [{"siren": "200071751", "name": "A"}, {"siren": luhn_complete("24010001"), "name": "B"}]
    planned = plan_change(body(epcis=two), 1, body(epcis=list(reversed(two))))
    assert planned is not None and planned.changed_fields == ["epcis"]


def test_resource_serializes_updated_at_in_utc_with_z() -> None:
    resource = Territory.model_validate(
        {**TERRITORY_EXAMPLE, "id": "ti-8402", "version": 1, "updated_at": "2024-03-01T10:00:00+01:00"}
    )
    assert resource.model_dump(mode="json")["updated_at"] == "2024-03-01T09:00:00Z"


def test_resource_refuses_a_bad_id() -> None:
    with pytest.raises(ValidationError):
        Territory.model_validate({**TERRITORY_EXAMPLE, "id": "ti-84", "version": 1, "updated_at": "2024-03-01T09:00:00Z"})
