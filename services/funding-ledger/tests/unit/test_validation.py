import pytest
from funding_ledger.schemas import DisbursementBody, GrantBody
from pydantic import ValidationError

BASE = {
    "programme": "fonds_vert_ti_te",
    "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
    "territory_id": "ti-2705",
    "commune_insee": "71076",
    "action_id": None,
    "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1500000.00",
    "investment_eur": "4800000.00",
    "decision_date": "2024-06-12",
    "jobs_forecast": 12,
    "jobs_conditional": 6,
    "contributions": ["climate_mitigation", "circular_economy"],
    "value_chain": "economie_circulaire",
    "status": "committed",
}


def locs(**changes):
    doc = {**BASE, **changes}
    with pytest.raises(ValidationError) as err:
        GrantBody.model_validate(doc)
    return [tuple(e["loc"]) for e in err.value.errors()]


def test_contract_example_is_valid_and_amounts_come_back_with_two_decimals():
    g = GrantBody.model_validate({**BASE, "amount_eur": "1500000"})
    assert g.model_dump(mode="json")["amount_eur"] == "1500000.00"


def test_la_poste_siret_is_valid():
    GrantBody.model_validate({**BASE, "beneficiary": {**BASE["beneficiary"], "siret": "35600000000048"}})


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"beneficiary": {**BASE["beneficiary"], "siret": "73282932000075"}}, ("beneficiary", "siret")),
        ({"beneficiary": {**BASE["beneficiary"], "siret": "7328293200007"}}, ("beneficiary", "siret")),
        ({"beneficiary": {**BASE["beneficiary"], "rna": "W12345678"}}, ("beneficiary", "rna")),
        ({"beneficiary": {**BASE["beneficiary"], "kind": "ong"}}, ("beneficiary", "kind")),
        ({"amount_eur": "0"}, ("amount_eur",)),
        ({"amount_eur": "1.001"}, ("amount_eur",)),
        ({"amount_eur": 12.5}, ("amount_eur",)),
        ({"amount_eur": "1000000000000.00"}, ("amount_eur",)),
        ({"investment_eur": "-1"}, ("investment_eur",)),
        ({"object": ""}, ("object",)),
        ({"object": "   "}, ("object",)),
        ({"object": "x" * 257}, ("object",)),
        ({"commune_insee": "20004"}, ("commune_insee",)),
        ({"commune_insee": "97500"}, ("commune_insee",)),
        ({"territory_id": "TI-2705"}, ("territory_id",)),
        ({"decision_date": "12/06/2024"}, ("decision_date",)),
        ({"decision_date": 1718150400}, ("decision_date",)),
        ({"jobs_forecast": -1}, ("jobs_forecast",)),
        ({"jobs_forecast": "12"}, ("jobs_forecast",)),
        ({"jobs_forecast": 1.5}, ("jobs_forecast",)),
        ({"contributions": ["water", "water"]}, ("contributions",)),
        ({"contributions": ["energy"]}, ("contributions", 0)),
        ({"value_chain": "nucleaire"}, ("value_chain",)),
        ({"status": "paid"}, ("status",)),
        ({"surprise": 1}, ("surprise",)),
    ],
)
def test_bad_fields_are_named(changes, loc):
    assert loc in locs(**changes)


def test_corsica_and_overseas_communes_are_valid():
    for code in ("2A004", "2B033", "97411", "97611"):
        GrantBody.model_validate({**BASE, "commune_insee": code})


def test_contributions_come_back_in_the_canonical_order():
    g = GrantBody.model_validate({**BASE, "contributions": ["biodiversity", "climate_mitigation"]})
    assert g.contributions == ["climate_mitigation", "biodiversity"]


def test_disbursement_refuses_unknown_fields_and_slashes():
    with pytest.raises(ValidationError):
        DisbursementBody.model_validate({"ref": "DP/1", "amount_eur": "1", "paid_on": "2024-01-01"})
    with pytest.raises(ValidationError):
        DisbursementBody.model_validate({"ref": "DP-1", "amount_eur": "1", "paid_on": "2024-01-01", "x": 1})
