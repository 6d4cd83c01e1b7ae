"""Event decoding: the direct reading gives what the lenient models give, and refuses what the tables cannot hold."""

from __future__ import annotations

from typing import Any

import pytest
from reporting import decoding
from reporting.decoding import InvalidEventData, decode
from reporting.domain import ActionRow, GrantRow, SiteRow, TerritoryRow
from ti_shared.streams import generate_stream


def _lenient(e: dict[str, Any]) -> object:
    return decoding._lenient(decoding.entity_of_type(e["type"]), e["type"], e["subject"], e["entityversion"], e["data"])


def test_the_direct_reading_equals_the_lenient_models_on_every_published_shape() -> None:
    events = generate_stream(41, territories=30, actions=400, grants=200, sites=40)
    for e in events:
        direct = decoding._DIRECT[decoding.entity_of_type(e["type"])](e["type"], e["subject"], e["entityversion"], e["data"])
        assert direct == _lenient(e), e
        assert decode(e["type"], e["subject"], e["entityversion"], e["data"]) == direct


GRANT = {
    "programme": "fonds_vert_ti_te", "status": "committed", "territory_id": "ti-8401", "commune_insee": "01053",
    "amount_eur": "100.00", "investment_eur": None, "disbursed_eur": "0.00", "jobs_forecast": None,
    "jobs_conditional": 3, "contributions": ["water", "water"], "value_chain": None,
}
SITE = {"commune_insee": "13004", "territory_id": "ti-8401", "area_ha": "25.5", "maturity": "ready", "status": "labelled"}


def _grant(**fields: object) -> GrantRow:
    row = decode("fr.anct.ti.grant.committed.v1", "BPI/1", 1, {**GRANT, **fields})
    assert isinstance(row, GrantRow)
    return row


@pytest.mark.parametrize(
    ("fields", "cents"),
    [({"amount_eur": "1500000"}, 150000000), ({"amount_eur": 12}, 1200), ({"amount_eur": 12.5}, 1250),
     ({"amount_eur": "0.005"}, 1), ({"amount_eur": " 7.10 "}, 710), ({"amount_eur": "-3.4"}, -340)],
)
def test_amounts_in_other_forms_are_read_as_the_models_read_them(fields: dict[str, object], cents: int) -> None:
    assert _grant(**fields).amount_cents == cents


def test_other_shapes_fall_back_to_the_lenient_models() -> None:
    assert _grant(jobs_forecast="12").jobs_forecast == 12  # a numeric string: coerced, as before
    assert _grant(contributions=["water", "water"]).contributions == ("water",)
    territory = decode("fr.anct.ti.territory.registered.v1", "ti-8401", 2, {
        "region_code": "84", "status": "active", "epcis": [{"siren": "200071751", "name": "x"}],
        "project_lead": {"in_post": "true"}, "launch_copil_held_on": "2024-03-01",
    })
    assert territory == TerritoryRow("ti-8401", 2, "84", "active", ("200071751",), True, False, True)
    action = decode("fr.anct.ti.action.deleted.v1", "A1", 3, {"territory_id": "ti-8401", "axis": "foncier", "status": "amont"})
    # a *.deleted event deletes; without budget_eur, the action has no budget
    assert action == ActionRow("A1", 3, "ti-8401", "foncier", "amont", (), True, False)
    site = decode("fr.anct.ti.site.labelled.v1", "S1", 1, SITE)
    assert site == SiteRow("S1", 1, "ti-8401", "93", "labelled", 2550, False, False, False, "ready")


def test_places_of_grants() -> None:
    overseas, corsica = _grant(commune_insee="97411"), _grant(commune_insee="2A004")
    assert (overseas.departement, overseas.departement_region) == ("974", "04")
    assert (corsica.departement, corsica.departement_region) == ("2A", "94")
    assert (_grant(commune_insee="20004").departement, _grant(commune_insee=None).departement) == (None, None)


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("fr.anct.ti.action.created.v1", {"territory_id": "ti-8401", "axis": "foncier", "status": "??"}, "status"),
        ("fr.anct.ti.territory.registered.v1", {"region_code": "99", "status": "active"}, "region_code"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "amount_eur": None}, "amount_eur"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "amount_eur": "12e20"}, "amount_eur"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "amount_eur": "NaN"}, "amount"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "jobs_forecast": 2**40}, "jobs_forecast"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "territory_id": "ti-84010000000000000"}, "territory_id"),
        ("fr.anct.ti.grant.committed.v1", {**GRANT, "programme": "p" * 65}, "programme"),
        ("fr.anct.ti.action.created.v1", {"territory_id": "ti-8\x0001", "axis": "foncier", "status": "amont"}, "NUL"),
        ("fr.anct.ti.territory.registered.v1", {"region_code": "84", "status": "active", "epcis": [{"siren": "1\x00"}]}, "NUL"),
        ("fr.anct.ti.site.labelled.v1", {**SITE, "maturity": "someday"}, "maturity"),
        ("fr.anct.ti.thing.created.v1", {}, "unknown entity"),
    ],
)
def test_unusable_data_is_refused_with_the_field(event_type: str, data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidEventData, match=message):
        decode(event_type, "X1", 1, data)


def test_a_subject_the_tables_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidEventData, match="subject"):
        decode("fr.anct.ti.site.labelled.v1", "s" * 257, 1, SITE)


def test_a_site_whose_land_recycling_is_unknown_counts_as_not_recycling_in_both_readings() -> None:
    data = {**SITE, "land_recycling": None, "workshop_held": True, "roadmap_delivered": False, "owner_kind": None,
            "cnig": {"site_evol_urba": "mixte", "site_moa_type": "inconnu"}}
    expected = SiteRow("S1", 1, "ti-8401", "93", "labelled", 2550, False, False, True, "ready")
    assert decoding._DIRECT["site"]("fr.anct.ti.site.labelled.v1", "S1", 1, data) == expected
    assert decoding._lenient("site", "fr.anct.ti.site.labelled.v1", "S1", 1, data) == expected
    assert decode("fr.anct.ti.site.labelled.v1", "S1", 1, {**data, "land_recycling": True}).land_recycling is True  # type: ignore[union-attr]
    with pytest.raises(InvalidEventData, match="land_recycling"):
        decode("fr.anct.ti.site.labelled.v1", "S1", 1, {**data, "land_recycling": "peut-être"})
