"""Rules of the reporting service, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from reporting.catalogue import CODES
from reporting.domain import (
    InvalidEventData,
    States,
    compute_indicators,
    empty_indicators,
    end_of_day_paris,
    flatten,
    mean2,
    median2,
    parse_as_of,
    parse_scope,
    row_from_event,
    share,
)
from reporting.main import SPEC
from ti_shared.events import stale_event_schemas
from ti_shared.streams import final_states, generate_stream

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_shares_round_half_even_to_six_decimals_and_are_null_without_denominator() -> None:
    assert share(1, 3) == 0.333333
    assert share(2, 3) == 0.666667
    assert share(1, 8_000_000) == 0.0  # 0.000000125 → 0.000000 (half-even keeps the even digit)
    assert share(3, 8_000_000) == 0.0  # 0.000000375 → 0.000000
    assert share(5, 8_000_000) == 0.000001  # 0.000000625 → 0.000001
    assert share(0, 5) == 0.0
    assert share(3, 0) is None


def test_means_and_medians_round_half_even_and_even_counts_take_the_two_middle_values() -> None:
    assert median2([Decimal("3.00"), Decimal("1.00"), Decimal("2.00")]) == "2.00"
    assert median2([Decimal("1.00"), Decimal("2.00"), Decimal("4.00"), Decimal("9.00")]) == "3.00"
    assert median2([Decimal("0.01"), Decimal("0.04")]) == "0.02"  # 0.025 → 0.02
    assert median2([Decimal("0.01"), Decimal("0.06")]) == "0.04"  # 0.035 → 0.04
    assert mean2([Decimal("1.00"), Decimal("2.00"), Decimal("2.00")]) == "1.67"
    assert mean2([Decimal("0.00"), Decimal("0.05")]) == "0.02"  # 0.025 → 0.02
    assert mean2([]) is None and median2([]) is None


def test_scopes_parse_or_explain() -> None:
    assert parse_scope("national").key == "national"
    assert parse_scope("region:84").key == "region:84"
    assert parse_scope("territory:ti-8402").key == "territory:ti-8402"
    for bad in ("", "nationale", "region:", "territory:8402", "commune:01053", "territory:ti-84021"):
        with pytest.raises(ValueError):
            parse_scope(bad)


def test_a_date_means_the_end_of_that_day_in_paris_and_an_instant_needs_an_offset() -> None:
    winter = parse_as_of("2024-01-15")
    assert winter.instant == datetime(2024, 1, 15, 23, tzinfo=UTC) and not winter.inclusive
    summer = parse_as_of("2024-06-30")
    assert summer.instant == datetime(2024, 6, 30, 22, tzinfo=UTC)
    assert end_of_day_paris(datetime(2024, 3, 30).date()) == datetime(2024, 3, 30, 23, tzinfo=UTC)  # DST starts on the 31st
    assert end_of_day_paris(datetime(2024, 10, 26).date()) == datetime(2024, 10, 26, 22, tzinfo=UTC)
    instant = parse_as_of("2024-11-30T10:00:00+01:00")
    assert instant.instant == datetime(2024, 11, 30, 9, tzinfo=UTC) and instant.inclusive
    assert parse_as_of("2024-11-30T10:00:00Z").label == "2024-11-30T10:00:00Z"
    for bad in ("2024-11-30T10:00:00", "2024-02-30", "tomorrow", "2024-11-30T25:00:00Z"):
        with pytest.raises(ValueError):
            parse_as_of(bad)


def _grant(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "programme": "fonds_vert_ti_te", "status": "committed", "territory_id": "ti-8401", "commune_insee": "01053",
        "amount_eur": "100.00", "investment_eur": None, "disbursed_eur": "0.00", "jobs_forecast": None,
        "jobs_conditional": 3, "contributions": ["water"], "value_chain": None,
    }
    data.update(fields)
    return data


def _territory(tid: str, region: str, **fields: object) -> dict[str, object]:
    data: dict[str, object] = {"region_code": region, "status": "active", "epcis": [], "project_lead": None,
                               "launch_copil_held_on": None}
    data.update(fields)
    return data


def test_scope_rules_of_grants_sites_and_actions() -> None:
    ev = "fr.anct.ti.{}.v1"
    overseas = row_from_event(ev.format("grant.committed"), "BPI/1", 1, T0, _grant(commune_insee="97411"))
    corsica = row_from_event(ev.format("grant.committed"), "BPI/2", 1, T0, _grant(commune_insee="2A004"))
    no_commune = row_from_event(ev.format("grant.committed"), "BPI/3", 1, T0, _grant(commune_insee=None, territory_id="ti-7501"))
    assert (overseas.departement, overseas.departement_region) == ("974", "04")  # type: ignore[union-attr]
    assert (corsica.departement, corsica.departement_region) == ("2A", "94")  # type: ignore[union-attr]
    states = States(
        territories=[
            row_from_event(ev.format("territory.registered"), "ti-8401", 1, T0, _territory("ti-8401", "84")),  # type: ignore[list-item]
            row_from_event(ev.format("territory.registered"), "ti-7501", 1, T0, _territory("ti-7501", "75")),  # type: ignore[list-item]
        ],
        grants=[overseas, corsica, no_commune],  # type: ignore[list-item]
        actions=[
            row_from_event(ev.format("action.created"), "A1", 1, T0, {"territory_id": "ti-8401", "axis": "foncier", "status": "amont", "themes": ["gestion_eau", "gestion_eau"]}),  # type: ignore[list-item]
            row_from_event(ev.format("action.created"), "A2", 1, T0, {"territory_id": "ti-0001", "axis": "foncier", "status": "amont"}),  # type: ignore[list-item]
            row_from_event(ev.format("action.deleted"), "A3", 2, T0, {"territory_id": "ti-8401", "axis": "foncier", "status": "amont", "deleted": True}),  # type: ignore[list-item]
        ],
        sites=[row_from_event(ev.format("site.labelled"), "S1", 1, T0, {"commune_insee": "13004", "territory_id": "ti-8401", "area_ha": "25.00", "maturity": "ready", "status": "labelled"})],  # type: ignore[list-item]
    )
    docs = compute_indicators(states, ["national", "region:04", "region:94", "region:75", "region:84", "region:93", "territory:ti-8401"])
    assert docs["national"]["actions.count"] == 2  # the unknown territory's action counts nationally only
    assert docs["national"]["actions.by_theme"]["gestion_eau"] == 1  # once per theme
    assert docs["region:84"]["actions.count"] == 1
    assert docs["region:04"]["grants.count"] == 1 and docs["region:94"]["grants.count"] == 1
    assert docs["region:75"]["grants.count"] == 1  # no commune: the territory's region
    assert docs["region:84"]["grants.count"] == 0
    assert docs["territory:ti-8401"]["grants.count"] == 2
    assert docs["region:93"]["sites.count"] == 1 and docs["region:84"]["sites.count"] == 0
    assert docs["territory:ti-8401"]["sites.count"] == 1
    assert docs["national"]["grants.jobs_forecast"] == 0 and docs["national"]["grants.jobs_conditional"] == 9
    assert docs["national"]["grants.by_programme"]["fonds_vert_ti_te"]["contribution_share"]["water"] == 1.0
    assert docs["national"]["grants.by_programme"]["fonds_vert_ti_te"]["value_chain_share"]["autre"] == 0.0
    assert "actions.by_region_status" in docs["national"] and "actions.by_region_status" not in docs["region:84"]
    assert list(docs["national"]) == list(CODES)


def test_empty_scope_lists_every_breakdown_key_with_zeros() -> None:
    doc = empty_indicators(parse_scope("territory:ti-8402"))
    assert doc["actions.by_status"] == dict.fromkeys(
        ["amont", "etude_prealable", "en_cours", "en_pause", "realise", "abandonne", "non_renseigne"], 0)
    assert doc["actions.by_axis_share"]["foncier"] is None
    assert len(doc["grants.by_programme"]) == 6
    assert doc["sites.area_ha_total"] == "0.00" and doc["sites.area_ha_median"] is None


def test_unusable_event_data_is_refused_with_the_field() -> None:
    with pytest.raises(InvalidEventData, match="status"):
        row_from_event("fr.anct.ti.action.created.v1", "A1", 1, T0, {"territory_id": "ti-8401", "axis": "foncier", "status": "??"})
    with pytest.raises(InvalidEventData, match="region_code"):
        row_from_event("fr.anct.ti.territory.registered.v1", "ti-9901", 1, T0, _territory("ti-9901", "99"))


def test_flatten_gives_key_paths() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None}}}) == [("a.b", 1), ("a.c.d", None)]
    assert flatten(3) == [("", 3)]


def test_generated_streams_are_deterministic_and_keep_each_entity_in_order() -> None:
    a = generate_stream(5, territories=10, actions=50, grants=20, sites=5, shuffle=True, duplicate_rate=0.05)
    b = generate_stream(5, territories=10, actions=50, grants=20, sites=5, shuffle=True, duplicate_rate=0.05)
    assert a == b
    seen: dict[str, int] = {}
    ids: set[str] = set()
    for e in a:
        assert e["entityversion"] >= seen.get(e["subject"], 0) or e["id"] in ids  # only a duplicate goes back
        seen[e["subject"]] = max(seen.get(e["subject"], 0), e["entityversion"])
        ids.add(e["id"])
    states = final_states(a)
    assert len(states["territory"]) == 10 and len(states["site"]) == 5


def test_committed_event_schemas_are_current() -> None:
    assert stale_event_schemas(Path(SPEC.schemas_dir or "."), list(SPEC.events)) == []
