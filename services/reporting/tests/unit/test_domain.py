"""Pure rules of the reporting service: rounding, scopes, as_of; the generated streams; the schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from reporting.domain import end_of_day_paris, flatten, from_cents, parse_as_of, parse_scope, quantized, share
from reporting.main import SPEC
from ti_shared.events import stale_event_schemas
from ti_shared.streams import final_states, generate_stream


def test_shares_round_half_even_to_six_decimals_and_are_null_without_denominator() -> None:
    assert share(1, 3) == 0.333333
    assert share(2, 3) == 0.666667
    assert share(1, 8_000_000) == 0.0  # 0.000000125 → 0.000000 (half-even keeps the even digit)
    assert share(3, 8_000_000) == 0.0  # 0.000000375 → 0.000000
    assert share(5, 8_000_000) == 0.000001  # 0.000000625 → 0.000001
    assert share(0, 5) == 0.0
    assert share(3, 0) is None


def test_cents_and_two_decimal_rounding() -> None:
    assert from_cents(0) == "0.00" and from_cents(150000000) == "1500000.00" and from_cents(-5) == "-0.05"
    assert quantized(Decimal("0.025")) == "0.02" and quantized(Decimal("0.035")) == "0.04"  # half-even


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


def test_projection_tables_have_the_compact_rows_columns_in_order() -> None:
    from reporting.domain import ENTITIES, ROW_TYPES
    from reporting.tables import ENTITY_TABLES

    for entity in ENTITIES:
        for table in ENTITY_TABLES[entity]:
            names = [c.name for c in table.columns]
            assert tuple(names[:2]) == ("generation", "id") and names[2:5] == ["version", "time", "event_id"]
            assert (*names[1:3], *names[5:]) == ROW_TYPES[entity]._fields, table.name
