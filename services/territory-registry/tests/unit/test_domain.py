from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from territory_registry.domain import FIELDS, decide_write, territory_problems, territory_state
from territory_registry.schemas import TERRITORY_EXAMPLE, Territory, TerritoryFields
from ti_shared.types import luhn_complete

T1 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TERRITORY_EXAMPLE)
    doc.update(changes)
    return doc


def fields(**changes: Any) -> TerritoryFields:
    return TerritoryFields.model_validate(body(**changes))


def territory(version: int = 1, **changes: Any) -> Territory:
    return Territory.model_validate({**body(**changes), "id": "ti-8402", "version": version, "updated_at": T1})


def error_locs(doc: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as info:
        TerritoryFields.model_validate(doc)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_the_contract_example_is_valid_and_round_trips() -> None:
    fields = TerritoryFields.model_validate(TERRITORY_EXAMPLE)
    assert territory_state(fields) == {**TERRITORY_EXAMPLE, "communes": None}


def test_a_body_without_communes_keeps_the_perimeter_and_an_empty_list_clears_it() -> None:
    current = territory(communes=["01053", "01004"])
    assert current.communes == ["01004", "01053"]
    kept = decide_write(current, fields(), territory_id="ti-8402", at=T2)
    assert kept.change is None and kept.entity.communes == ["01004", "01053"]
    cleared = decide_write(current, fields(communes=[]), territory_id="ti-8402", at=T2)
    assert cleared.change == "updated" and cleared.changed_fields == ("communes",) and cleared.entity.communes == []
    new = decide_write(None, fields(), territory_id="ti-8402", at=T2)
    assert new.entity.communes == []


def test_communes_are_insee_codes_each_once() -> None:
    assert error_locs(body(communes=["01053", "1053", "20004"])) == [("communes", 1), ("communes", 2)]
    with pytest.raises(ValidationError, match="communes listed more than once: 01053"):
        fields(communes=["01053", "01004", "01053"])


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
    decision = decide_write(None, fields(), territory_id="ti-8402", at=T1)
    assert (decision.change, decision.changed_fields) == ("registered", FIELDS)
    assert decision.changed and decision.entity == territory(1)


def test_same_state_is_no_change() -> None:
    current = territory(4)
    decision = decide_write(current, fields(), territory_id="ti-8402", at=T2)
    assert not decision.changed and decision.change is None and decision.changed_fields == ()
    assert decision.entity is current


def test_a_change_names_its_fields_and_bumps_the_version() -> None:
    decision = decide_write(territory(4), fields(name="Autre nom", phase="temps-1"), territory_id="ti-8402", at=T2)
    assert (decision.change, decision.changed_fields) == ("updated", ("name", "phase"))
    assert (decision.entity.version, decision.entity.updated_at, decision.entity.name) == (5, T2, "Autre nom")


def test_withdrawal_and_reactivation() -> None:
    decision = decide_write(territory(1), fields(status="withdrawn"), territory_id="ti-8402", at=T2)
    assert decision.change == "withdrawn" and decision.entity.version == 2
    withdrawn = territory(2, status="withdrawn")
    again = decide_write(withdrawn, fields(status="withdrawn", name="Renommé"), territory_id="ti-8402", at=T2)
    assert again.change == "updated"
    back = decide_write(withdrawn, fields(), territory_id="ti-8402", at=T2)
    assert back.change == "updated" and back.changed_fields == ("status",)


def test_order_of_epcis_is_part_of_the_state() -> None:
    two = [{"siren": "200071751", "name": "A"}, {"siren": luhn_complete("24010001"), "name": "B"}]
    decision = decide_write(territory(1, epcis=two), fields(epcis=list(reversed(two))), territory_id="ti-8402", at=T2)
    assert decision.changed_fields == ("epcis",)


def test_resource_serializes_updated_at_in_utc_with_z() -> None:
    resource = Territory.model_validate(
        {**TERRITORY_EXAMPLE, "id": "ti-8402", "version": 1, "updated_at": "2024-03-01T10:00:00+01:00"}
    )
    assert resource.model_dump(mode="json")["updated_at"] == "2024-03-01T09:00:00Z"


def test_resource_refuses_a_bad_id() -> None:
    with pytest.raises(ValidationError):
        Territory.model_validate({**TERRITORY_EXAMPLE, "id": "ti-84", "version": 1, "updated_at": "2024-03-01T09:00:00Z"})


def test_a_lead_address_is_checked_as_pydantic_checks_it_each_time() -> None:
    """The addresses checked are remembered: a valid one gives the same normalised address again, a
    refused one is refused again (and so is one that differs only by a character)."""
    lead = {"in_post": True, "cofinanced": False, "name": "A"}
    for _ in range(2):
        written = TerritoryFields.model_validate(body(project_lead={**lead, "email": "Chef.Projet@EXAMPLE.fr"}))
        assert written.project_lead is not None and written.project_lead.email == "Chef.Projet@example.fr"
        for address in ("chef@", "chef@@example.fr", "chef projet@example.fr"):
            assert ("project_lead", "email") in error_locs(body(project_lead={**lead, "email": address}))
    schema = TerritoryFields.model_json_schema()["$defs"]["ProjectLead"]["properties"]["email"]
    assert {"type": "string", "format": "email"} in schema["anyOf"]
