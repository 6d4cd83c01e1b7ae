"""The reference computation of CONTRACT §6 on small streams whose figures can be worked out by hand."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ti_testkit
from ti_shared.geo import REGIONS
from ti_shared.vocabulary import ACTION_STATUSES, AXES, DEFAULT_PROGRAMMES, MATURITIES, OBJECTIVES, THEMES, VALUE_CHAINS
from ti_testkit.compare import differences
from ti_testkit.reference import CODES, expected_indicators, median, share, states_of

PACKAGE = Path(ti_testkit.__file__).parent


def event(entity: str, change: str, subject: str, version: int, time: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": f"{subject}-{version}-{change}", "source": f"/services/{entity}",
        "type": f"fr.anct.ti.{entity}.{change}.v1", "subject": subject, "time": time,
        "datacontenttype": "application/json", "entityversion": version, "tiactor": "tester",
        "data": {"id": subject, "version": version, "updated_at": time, **data},
    }


def territory(tid: str, region: str, version: int = 1, time: str = "2024-01-10T10:00:00Z", **fields: Any) -> dict[str, Any]:
    data = {"region_code": region, "status": "active", "epcis": [], "project_lead": None, "launch_copil_held_on": None, **fields}
    return event("territory", "registered" if version == 1 else "updated", tid, version, time, **data)


def action(aid: str, tid: str, version: int = 1, time: str = "2024-02-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    data = {"territory_id": tid, "axis": "foncier", "status": "en_cours", "themes": [], **fields}
    return event("action", "created" if version == 1 else "updated", aid, version, time, **data)


def grant(gid: str, version: int = 1, time: str = "2024-03-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    data = {
        "programme": "fonds_vert_ti_te", "status": "committed", "territory_id": None, "commune_insee": None,
        "amount_eur": "100.00", "investment_eur": None, "disbursed_eur": "0.00", "jobs_forecast": None,
        "jobs_conditional": None, "contributions": [], "value_chain": None, **fields,
    }
    return event("grant", "committed" if version == 1 else "amended", gid, version, time, **data)


def site(sid: str, commune: str, area: str, version: int = 1, time: str = "2024-04-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    data = {
        "commune_insee": commune, "territory_id": None, "area_ha": area, "maturity": "ready", "land_recycling": False,
        "workshop_held": False, "roadmap_delivered": False, "status": "labelled", **fields,
    }
    return event("site", "labelled" if version == 1 else "updated", sid, version, time, **data)


def test_every_code_and_every_enum_value_even_with_no_data() -> None:
    national = expected_indicators([], "national")
    assert tuple(national) == CODES
    region = expected_indicators([], "region:84")
    assert set(region) == set(CODES) - {"actions.by_region_status"}
    assert set(national["actions.by_axis"]) == set(AXES) and set(national["actions.by_axis_share"]) == set(AXES)
    assert set(national["actions.by_status"]) == set(national["actions.by_status_share"]) == set(ACTION_STATUSES)
    assert set(national["actions.by_theme"]) == set(THEMES)
    assert set(national["actions.by_region_status"]) == set(REGIONS)
    assert set(national["sites.by_maturity"]) == set(MATURITIES)
    assert list(national["grants.by_programme"]) == list(DEFAULT_PROGRAMMES)
    block = national["grants.by_programme"]["rebond_industriel"]
    assert set(block["contribution_share"]) == set(OBJECTIVES) and set(block["value_chain_share"]) == set(VALUE_CHAINS)
    # a denominator of 0: null shares, means and medians; totals are zero amounts
    assert block["contribution_share"]["water"] is None and national["actions.by_axis_share"]["foncier"] is None
    assert national["sites.workshop_held_share"] is None
    assert (national["sites.area_ha_mean"], national["sites.area_ha_median"]) == (None, None)
    assert (national["grants.amount_eur"], national["sites.area_ha_total"]) == ("0.00", "0.00")


def test_shares_have_six_decimals_half_even() -> None:
    assert share(1, 3) == 0.333333 and share(2, 3) == 0.666667
    assert share(1, 128) == 0.007812  # 0.0078125: the tie goes to the even digit
    assert share(3, 128) == 0.023438  # 0.0234375
    assert share(0, 0) is None


def test_medians_of_even_counts_and_half_even_means() -> None:
    from decimal import Decimal

    assert median([Decimal("10.00"), Decimal("1.00"), Decimal("4.00")]) == "4.00"
    assert median([Decimal("1.00"), Decimal("4.01"), Decimal("10.00"), Decimal("2.00")]) == "3.00"  # (2.00 + 4.01) / 2 = 3.005
    assert median([Decimal("1.00"), Decimal("2.03")]) == "1.52"  # 1.515 → 1.52
    events = [site("S1", "01001", "1.00"), site("S2", "01002", "2.01")]
    national = expected_indicators(events, "national")
    assert (national["sites.area_ha_mean"], national["sites.area_ha_median"], national["sites.area_ha_total"]) == ("1.50", "1.50", "3.01")


def test_grants_are_placed_by_their_commune_then_their_territory() -> None:
    events = [
        territory("ti-8401", "84"),
        grant("ADEME/A", commune_insee="97411", territory_id="ti-8401", amount_eur="10.00"),  # La Réunion: region 04
        grant("ADEME/B", commune_insee="2A004", amount_eur="20.00"),  # Corse-du-Sud: region 94
        grant("ADEME/C", territory_id="ti-8401", amount_eur="30.00"),  # no commune: its territory's region
        grant("ADEME/D", amount_eur="40.00"),  # neither: national only
        grant("ADEME/E", commune_insee="01053", status="cancelled", amount_eur="50.00"),
    ]
    national = expected_indicators(events, "national")
    assert (national["grants.count"], national["grants.amount_eur"]) == (4, "100.00")
    assert national["grants.departement_count"] == 2 and national["grants.territory_count"] == 1
    assert expected_indicators(events, "region:04")["grants.amount_eur"] == "10.00"
    assert expected_indicators(events, "region:94")["grants.amount_eur"] == "20.00"
    region84 = expected_indicators(events, "region:84")
    assert (region84["grants.count"], region84["grants.amount_eur"]) == (1, "30.00")
    assert expected_indicators(events, "territory:ti-8401")["grants.amount_eur"] == "40.00"  # A and C carry its id


def test_actions_of_unknown_territories_count_nationally_only_and_deleted_ones_not_at_all() -> None:
    events = [
        territory("ti-8401", "84"),
        territory("ti-9301", "93", status="withdrawn"),
        action("A1", "ti-8401", status="amont", themes=["gestion_eau", "tiers_lieux"]),
        action("A2", "ti-9301", status="realise"),
        action("A3", "ti-0001"),
        action("A4", "ti-8401"),
        {**action("A4", "ti-8401", version=2, time="2024-02-02T10:00:00Z", deleted=True), "type": "fr.anct.ti.action.deleted.v1"},
    ]
    national = expected_indicators(events, "national")
    assert national["actions.count"] == 3 and national["territories.count"] == 1
    assert national["actions.by_theme"]["gestion_eau"] == 1 and national["actions.by_status_share"]["en_cours"] == 0.333333
    assert national["actions.by_region_status"]["84"]["amont"] == 1
    assert national["actions.by_region_status"]["93"]["realise"] == 1  # a withdrawn territory's actions still count
    assert sum(sum(row.values()) for row in national["actions.by_region_status"].values()) == 2
    assert expected_indicators(events, "region:93")["actions.count"] == 1
    assert expected_indicators(events, "territory:ti-0001")["actions.count"] == 0  # unknown territory: no scope


def test_programmes_and_their_shares() -> None:
    events = [
        grant("BPI/1", programme="rebond_industriel", contributions=["water"], value_chain="bioeconomie", jobs_forecast=3),
        grant("BPI/2", programme="rebond_industriel", contributions=["water", "pollution"]),
        grant("BPI/3", programme="rebond_industriel", jobs_conditional=2),
        grant("BPI/4", programme="autre_dispositif", status="cancelled"),
    ]
    national = expected_indicators(events, "national")
    block = national["grants.by_programme"]["rebond_industriel"]
    assert (block["count"], block["jobs_forecast"], block["jobs_conditional"]) == (3, 3, 2)
    assert block["contribution_share"]["water"] == 0.666667 and block["contribution_share"]["pollution"] == 0.333333
    assert block["value_chain_share"]["bioeconomie"] == 0.333333 and block["value_chain_share"]["autre"] == 0.0
    assert list(national["grants.by_programme"])[-1] == "autre_dispositif"  # seen in a grant, even cancelled
    assert national["grants.by_programme"]["autre_dispositif"]["count"] == 0


def test_as_of_a_date_is_the_end_of_that_day_in_paris_and_an_instant_is_inclusive() -> None:
    events = [
        territory("ti-8401", "84", time="2024-06-30T21:59:59Z"),  # 23:59:59 in Paris (summer time)
        territory("ti-8402", "84", time="2024-06-30T22:00:00Z"),  # midnight in Paris: 1 July
        territory("ti-8401", "84", version=2, time="2024-07-05T10:00:00Z", status="withdrawn"),
    ]
    assert expected_indicators(events, "region:84", "2024-06-30")["territories.count"] == 1
    assert expected_indicators(events, "region:84", "2024-07-01")["territories.count"] == 2
    assert expected_indicators(events, "region:84", "2024-06-30T22:00:00Z")["territories.count"] == 2
    assert expected_indicators(events, "region:84", "2024-07-01T00:00:00+02:00")["territories.count"] == 2
    assert expected_indicators(events, "region:84", "2024-06-30T21:59:58Z")["territories.count"] == 0
    assert expected_indicators(events, "region:84")["territories.count"] == 1
    with pytest.raises(ValueError):
        expected_indicators(events, "national", "2024-07-01T00:00:00")


def test_duplicates_stale_redeliveries_and_order_change_nothing() -> None:
    v1 = territory("ti-8401", "84", project_lead={"in_post": False, "cofinanced": False})
    v2 = territory("ti-8401", "84", version=2, time="2024-05-01T10:00:00Z", project_lead={"in_post": True, "cofinanced": True})
    clean = expected_indicators([v1, v2], "national")
    assert clean["territories.project_leads_in_post"] == 1
    assert expected_indicators([v2, v1, v2, v1], "national") == clean
    assert states_of([v2, v1]).territories["ti-8401"]["version"] == 2


def test_differences_name_each_value_and_accept_what_the_contract_allows_to_add() -> None:
    expected = expected_indicators([grant("ADEME/1")], "national")
    served = {**expected, "grants.extra_code": 1}
    served["grants.by_programme"] = {**expected["grants.by_programme"], "nouveau": {"count": 0}}
    assert differences(expected, served) == []
    served["grants.amount_eur"] = "100.0"
    served["actions.by_axis"] = {**expected["actions.by_axis"], "foncier": 1}
    served["sites.workshop_held_share"] = 0
    del served["territories.count"]
    assert sorted(str(d) for d in differences(expected, served)) == [
        "actions.by_axis.foncier: expected 0, served 1",
        "grants.amount_eur: expected '100.00', served '100.0'",
        "sites.workshop_held_share: expected null, served 0",
        "territories.count: expected 0, served (missing)",
    ]


def test_the_reference_never_imports_the_reporting_service() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "reporting" or n.startswith("reporting.") for n in names), f"{path.name} imports {names}"
    code = "import sys, ti_testkit.reference, ti_testkit.conformance, ti_testkit.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'reporting'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
