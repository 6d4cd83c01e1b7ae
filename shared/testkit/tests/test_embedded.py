"""The ``ti_platform`` fixture: the embedded platform in this process, written to through HTTP and through
a replayed reference stream, held against the reference computation (every scope, current and as of)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ti_shared.streams import to_json_lines
from ti_testkit import Platform, differences, expected_indicators, scopes_of, states_of
from ti_testkit.platform import ROLES
from ti_testkit.streams import reference_stream

pytestmark = pytest.mark.integration


def test_a_fresh_platform_in_seconds_on_a_free_port(ti_platform: Platform) -> None:
    assert ti_platform.base_url.startswith("http://127.0.0.1:")
    ready = httpx.get(ti_platform.base_url + "/readyz").json()
    assert (ready["status"], ready["outbox_pending"], ready["consumer_lag"]) == ("ready", 0, 0)
    assert ti_platform.indicators()["territories.count"] == 0
    # tokens of each role, signed with the platform's own secret
    assert ti_platform.client().put("/v1/territories/ti-8401", json={"name": "x", "region_code": "84"}).status_code == 401
    ademe = ti_platform.client("operator", operator="ADEME")
    assert ademe.put("/v1/territories/ti-8401", json={"name": "x", "region_code": "84"}).status_code == 403
    with pytest.raises(ValueError, match="operator="):
        ti_platform.token("operator")


def test_pushes_through_http_are_waited_for_and_counted(ti_platform: Platform) -> None:
    ti_platform.register_territory("ti-8401", "84", epcis=[{"siren": "200071751", "name": "CA du Bassin de Bourg-en-Bresse"}])
    plan = {f"PLAN-{n}": {"title": f"Action {n}", "axis": "foncier", "status": "en_cours", "themes": ["tiers_lieux"]} for n in range(3)}
    ti_platform.push_plan("ti-8401", plan)
    csv_plan = "action_id;title;axis;themes;status\nPLAN-9;Action importée;innovation;;amont\n"
    assert ti_platform.push_plan("ti-8401", csv_plan)["summary"]["created"] == 1
    grant = {
        "programme": "fonds_vert_ti_te", "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "kind": "entreprise"},
        "territory_id": "ti-8401", "commune_insee": "01053", "object": "Recyclage", "amount_eur": "1500000",
        "decision_date": "2024-06-12", "contributions": ["circular_economy"],
    }
    report = ti_platform.push_grants("ADEME", {"FV-1": grant, "FV-2": {**grant, "amount_eur": "500000.00"}})
    assert report["counts"]["created"] == 2
    ti_platform.put_grant("ADEME", "FV-2", {**grant, "amount_eur": "500000.00", "status": "cancelled"})
    region = ti_platform.indicators("region:84")  # waits for every write above
    assert (region["territories.count"], region["territories.epci_count"]) == (1, 1)
    assert (region["actions.count"], region["actions.by_axis"]["innovation"], region["actions.by_theme"]["tiers_lieux"]) == (4, 1, 3)
    assert (region["grants.count"], region["grants.amount_eur"]) == (1, "1500000.00")
    assert region["grants.by_programme"]["fonds_vert_ti_te"]["contribution_share"]["circular_economy"] == 1.0


def test_a_replayed_reference_stream_gives_the_reference_figures_in_every_scope(ti_platform: Platform, tmp_path: Path) -> None:
    events = reference_stream(seed=5, size="small")
    stream = tmp_path / "stream.jsonl"
    stream.write_text(to_json_lines(events), encoding="utf-8")
    assert ti_platform.replay(stream) == len(events)
    problems = []
    for scope in scopes_of(states_of(events)):
        problems += [f"{scope}: {d}" for d in differences(expected_indicators(events, scope), ti_platform.indicators(scope))]
    for as_of in ("2024-03-31", "2024-08-15T12:00:00+02:00"):
        for scope in ("national", "region:11", "region:84"):
            expected = expected_indicators(events, scope, as_of)
            problems += [f"{scope} as of {as_of}: {d}" for d in differences(expected, ti_platform.indicators(scope, as_of))]
    assert not problems, "\n".join(problems[:40])
    assert ti_platform.indicators()["actions.count"] > 100
    # a second replay of the same stream changes nothing
    before = ti_platform.indicators("national")
    ti_platform.replay(events)
    assert ti_platform.indicators("national") == before


def test_the_plugin_in_a_project_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_partner="""
        def test_embedded(ti_platform):
            ti_platform.register_territory("ti-9301", "93")
            assert ti_platform.indicators("region:93")["territories.count"] == 1

        def test_remote(ti_remote_platform):
            raise AssertionError("not reached without --ti-url")

        def test_stream(ti_stream):
            assert len(ti_stream(seed=2, size="tiny")) > 100
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2, skipped=1)


def test_waiting_for_one_write_on_the_real_platform(ti_platform: Platform) -> None:
    """``wait_for`` on the platform itself: the write answers the id of the event it recorded, and the
    wait returns once the indicators show it — through ``after=`` when reporting offers it (then an event
    that never happens is a TimeoutError), through ``/readyz`` otherwise."""
    writer = next(role for role, scopes in ROLES.items() if scopes == ("territories:write",))
    territories = ti_platform.client(writer)
    territory = {"name": "Territoire d'industrie ti-2401", "region_code": "24", "departement_codes": ["18"], "epcis": [],
                 "phase": "temps-2", "labelled_on": "2023-11-09", "project_lead": None, "launch_copil_held_on": None,
                 "status": "active"}
    written = territories.put("/v1/territories/ti-2401", json=territory)
    assert written.status_code == 201, written.text
    event_id = written.headers["TI-Event-Id"]
    assert httpx.get(ti_platform.base_url + "/v1/territories/ti-2401").status_code == 200
    ti_platform.wait_for(written)
    assert ti_platform.indicators("region:24", wait=False)["territories.count"] == 1
    again = territories.put("/v1/territories/ti-2401", json=territory)  # changes nothing: no event to wait for
    assert again.status_code == 200 and "TI-Event-Id" not in again.headers
    probe = httpx.get(ti_platform.base_url + "/v1/indicators", params={"scope": "national", "after": event_id, "wait": "0"})
    if ti_platform.offers_read_your_writes():
        assert probe.status_code == 200  # applied already
        with pytest.raises(TimeoutError):
            ti_platform.wait_for("00000000-0000-4000-8000-00000000dead", timeout_s=0.5)
    else:
        assert probe.status_code in (200, 422)  # after= ignored or refused: the kit waits on /readyz
