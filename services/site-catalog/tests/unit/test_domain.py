from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError
from site_catalog.domain import BODY_FIELDS, change_of, decide_write, geography_of, territory_to_check
from site_catalog.schemas import SITE_EXAMPLE, SiteBody, SiteResource

T1 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T2 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def body(**changes: object) -> SiteBody:
    return SiteBody.model_validate({**SITE_EXAMPLE, **changes})


@pytest.mark.parametrize(
    ("commune", "expected"),
    [("13004", ("13", "93")), ("2A004", ("2A", "94")), ("97411", ("974", "04")), ("01053", ("01", "84"))],
)
def test_geography_comes_from_the_commune(commune: str, expected: tuple[str, str]) -> None:
    assert geography_of(commune) == expected


def test_creation_is_labelled_version_one_with_derived_fields() -> None:
    decision = decide_write(None, body(), site_id="13004_SITE-ECO_00001", at=T1)
    assert decision.change == "labelled" and decision.changed_fields == BODY_FIELDS
    site = decision.entity
    assert (site.version, site.updated_at, site.departement_code, site.region_code) == (1, T1, "13", "93")
    assert site.area_ha == Decimal("25.00")


def test_same_body_changes_nothing() -> None:
    created = decide_write(None, body(area_ha="25"), site_id="s-1", at=T1).entity
    again = decide_write(created, body(area_ha="25.00", name="  Port fluvial d'Arles "), site_id="s-1", at=T2)
    assert again.change is None and not again.changed and again.changed_fields == ()
    assert again.entity == created


def test_a_change_is_a_new_version() -> None:
    created = decide_write(None, body(), site_id="s-1", at=T1).entity
    decision = decide_write(created, body(maturity="short_term", commune_insee="84007"), site_id="s-1", at=T2)
    assert decision.change == "updated" and decision.changed_fields == ("commune_insee", "maturity")
    assert (decision.entity.version, decision.entity.updated_at, decision.entity.region_code) == (2, T2, "93")
    assert decision.entity.departement_code == "84"


@pytest.mark.parametrize(
    ("previous", "new", "kind"),
    [
        (None, "labelled", "labelled"),
        (None, "withdrawn", "labelled"),
        ("labelled", "withdrawn", "withdrawn"),
        ("withdrawn", "withdrawn", "updated"),
        ("withdrawn", "labelled", "updated"),
        ("labelled", "labelled", "updated"),
    ],
)
def test_change_of_a_status(previous: str | None, new: str, kind: str) -> None:
    assert change_of(previous, new) == kind


def test_withdrawal_is_published_as_withdrawn() -> None:
    created = decide_write(None, body(), site_id="s-1", at=T1).entity
    decision = decide_write(created, body(status="withdrawn"), site_id="s-1", at=T2)
    assert decision.change == "withdrawn" and decision.entity.status == "withdrawn"


def test_only_a_newly_given_territory_is_checked() -> None:
    created = decide_write(None, body(territory_id="ti-9303"), site_id="s-1", at=T1).entity
    assert territory_to_check(None, body(territory_id="ti-9303")) == "ti-9303"
    assert territory_to_check(created, body(territory_id="ti-9303", maturity="before_2030")) is None
    assert territory_to_check(created, body(territory_id="ti-9304")) == "ti-9304"
    assert territory_to_check(created, body(territory_id=None)) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 201),
        ("commune_insee", "20004"),
        ("commune_insee", "1300"),
        ("commune_insee", 13004),
        ("territory_id", "TI-9303"),
        ("area_ha", "0"),
        ("area_ha", "0.00"),
        ("area_ha", "-1"),
        ("area_ha", "12.345"),
        ("area_ha", 12.5),
        ("area_ha", "12,5"),
        ("maturity", "soon"),
        ("land_recycling", "true"),
        ("land_recycling", 1),
        ("labelled_on", "15/04/2024"),
        ("labelled_on", 1700000000),
        ("labelled_on", "2024-02-30"),
        ("workshop_held", None),
        ("owner_kind", "prive"),
        ("status", "active"),
    ],
)
def test_invalid_field_is_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        body(**{field: value})
    assert [e["loc"][0] for e in info.value.errors()] == [field]


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        SiteBody.model_validate({**SITE_EXAMPLE, "surface": "3"})
    assert info.value.errors()[0]["loc"] == ("surface",)
    incomplete = dict(SITE_EXAMPLE)
    del incomplete["maturity"]
    with pytest.raises(ValidationError) as info:
        SiteBody.model_validate(incomplete)
    assert info.value.errors()[0]["loc"] == ("maturity",)


def test_territory_may_be_omitted_or_null() -> None:
    without = dict(SITE_EXAMPLE)
    del without["territory_id"]
    assert SiteBody.model_validate(without).territory_id is None
    assert body(territory_id=None).territory_id is None


def test_resource_renders_as_the_contract_says() -> None:
    site = decide_write(None, body(area_ha="25"), site_id="13004_SITE-ECO_00001", at=datetime(2024, 4, 15, 9, tzinfo=UTC)).entity
    doc = site.model_dump(mode="json")
    assert doc["area_ha"] == "25.00"
    assert doc["updated_at"] == "2024-04-15T09:00:00Z"
    assert doc["labelled_on"] == "2024-04-15"
    assert doc["id"] == "13004_SITE-ECO_00001"
    assert SiteResource.model_validate(doc) == site
