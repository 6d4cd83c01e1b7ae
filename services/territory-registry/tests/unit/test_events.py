from __future__ import annotations

from territory_registry.events import EVENT_OF_CHANGE, EVENTS
from territory_registry.main import SPEC
from ti_shared.events import TOPIC_TERRITORIES, event_json_schema, stale_event_schemas


def test_committed_event_schemas_match_the_code() -> None:
    assert SPEC.schemas_dir is not None
    assert stale_event_schemas(SPEC.schemas_dir, list(SPEC.events)) == []


def test_the_three_contract_event_types_travel_on_ti_territories() -> None:
    assert sorted(e.type for e in EVENTS) == [
        "fr.anct.ti.territory.registered.v1",
        "fr.anct.ti.territory.updated.v1",
        "fr.anct.ti.territory.withdrawn.v1",
    ]
    assert {e.topic for e in EVENTS} == {TOPIC_TERRITORIES}
    assert set(EVENT_OF_CHANGE.values()) == set(EVENTS)
    assert {change: spec.type.split('.')[-2] for change, spec in EVENT_OF_CHANGE.items()} == {
        "registered": "registered", "updated": "updated", "withdrawn": "withdrawn"
    }


def test_event_data_schema_is_the_whole_resource() -> None:
    data = event_json_schema(EVENTS[0])["properties"]["data"]
    assert set(data["required"]) >= {"id", "version", "updated_at", "name", "region_code"}
    assert set(data["properties"]) == {
        "id", "version", "updated_at", "name", "region_code", "departement_codes", "epcis", "phase",
        "labelled_on", "project_lead", "launch_copil_held_on", "status", "communes",
    }
