from funding_ledger.events import EVENTS
from funding_ledger.main import SPEC
from ti_shared.events import EVENT_TOPICS, stale_event_schemas


def test_committed_event_schemas_match_the_code() -> None:
    assert SPEC.schemas_dir is not None
    assert stale_event_schemas(SPEC.schemas_dir, list(SPEC.events)) == []


def test_events_are_the_contract_ones_on_ti_grants() -> None:
    assert sorted(e.type for e in EVENTS) == [
        "fr.anct.ti.grant.amended.v1",
        "fr.anct.ti.grant.cancelled.v1",
        "fr.anct.ti.grant.committed.v1",
        "fr.anct.ti.grant.disbursed.v1",
    ]
    assert all(EVENT_TOPICS[e.type] == e.topic == "ti.grants" for e in EVENTS)
