"""Incremental aggregates: batch after batch of a noisy stream, they equal a from-scratch computation."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from reporting.aggregates import (
    DEPENDENT_ENTITIES,
    EVERY_SCOPE,
    MEDIAN_NAME,
    PROGRAMME_KIND,
    aggregate,
    assemble,
    batch_deltas,
    cents,
    median_twice,
    placement,
    programmes_from,
    regions_after,
)
from reporting.domain import NATIONAL, Row, States, TerritoryRow, compute_indicators, row_from_event
from ti_shared.geo import REGIONS
from ti_shared.streams import final_states, generate_stream


def _row(e: dict[str, Any]) -> Row:
    return row_from_event(e["type"], e["subject"], e["entityversion"], datetime.fromisoformat(e["time"].replace("Z", "+00:00")), e["data"])


def _entity(row: Row) -> str:
    return type(row).__name__.removesuffix("Row").lower()


class Store:
    """An in-memory stand-in for the projection tables, applying batches like the consumer does."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Row]] = {k: {} for k in ("territory", "action", "grant", "site")}
        self.applied: dict[str, int] = {}
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.refs: dict[tuple[str, str, str], int] = defaultdict(int)

    def apply(self, batch: list[dict[str, Any]]) -> set[str]:
        latest: dict[str, dict[str, Row]] = {k: {} for k in self.states}
        for e in batch:
            if e["entityversion"] <= self.applied.get(e["subject"], 0):
                continue  # stale or duplicate: the consumer base skips it
            self.applied[e["subject"]] = e["entityversion"]
            row = _row(e)
            current = latest[_entity(row)].get(row.id)
            if current is None or row.version > current.version:
                latest[_entity(row)][row.id] = row
        old = {k: {i: self.states[k][i] for i in rows if i in self.states[k]} for k, rows in latest.items()}
        before = {t.id: t.region_code for t in self.states["territory"].values() if isinstance(t, TerritoryRow)}
        after = regions_after(latest["territory"], old["territory"], before)
        moved = {tid for tid in latest["territory"] if before.get(tid) != after[tid]}
        dependents = [r for k in DEPENDENT_ENTITIES for r in self.states[k].values() if getattr(r, "territory_id", None) in moved]
        deltas = batch_deltas(latest, old, before, after, dependents)
        for k, rows in latest.items():
            self.states[k].update(rows)
        for key, value in deltas.counters.items():
            self.counters[key] += value
        for ref, n in deltas.refs.items():
            self.refs[ref] += n
        return deltas.scopes

    def final(self) -> States:
        s = self.states
        return States(list(s["territory"].values()), list(s["action"].values()), list(s["grant"].values()),  # type: ignore[arg-type]
                      list(s["site"].values()))  # type: ignore[arg-type]


def _documents(store: Store, scopes: list[str]) -> dict[str, dict[str, Any]]:
    states = store.final()
    regions = {t.id: t.region_code for t in states.territories}
    areas: dict[str, list[int]] = defaultdict(list)
    for site in states.sites:
        if site.status == "labelled":
            for scope in placement(site.region_code, site.territory_id, regions):
                areas[scope].append(cents(site.area_ha))
    programmes = programmes_from({v: n for (s, k, v), n in store.refs.items() if s == EVERY_SCOPE and k == PROGRAMME_KIND})
    out = {}
    for scope in scopes:
        counters = {name: v for (s, name), v in store.counters.items() if s == scope}
        twice = median_twice(sorted(areas[scope]))
        if twice is not None:
            counters[MEDIAN_NAME] = twice
        distinct: dict[str, int] = defaultdict(int)
        for (s, kind, _), n in store.refs.items():
            if s == scope and n > 0:
                distinct[kind] += 1
        out[scope] = assemble(scope, counters, distinct, programmes)
    return out


def _moving_territory(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A later version of a territory, in another region, at the end of the stream."""
    last = max((e for e in events if e["type"].startswith("fr.anct.ti.territory.")), key=lambda e: (e["subject"], e["entityversion"]))
    latest = max((e for e in events if e["subject"] == last["subject"]), key=lambda e: e["entityversion"])
    region = next(r for r in REGIONS if r != latest["data"]["region_code"])
    moved = {**latest, "id": latest["id"] + "-moved", "entityversion": latest["entityversion"] + 1,
             "data": {**latest["data"], "region_code": region}}
    return [*events, moved]


def test_counters_after_a_shuffled_duplicated_stream_equal_a_recomputation_from_scratch() -> None:
    events = _moving_territory(generate_stream(31, territories=25, actions=600, grants=150, sites=40,
                                               shuffle=True, duplicate_rate=0.05, stale_rate=0.03))
    rng = random.Random(7)
    store = Store()
    i = 0
    while i < len(events):
        size = rng.choice([1, 3, 50, 400])
        store.apply(events[i : i + size])
        i += size
    expected = aggregate(store.final())
    assert {k: v for k, v in store.counters.items() if v} == {k: v for k, v in expected.counters.items() if k[1] != MEDIAN_NAME}
    assert {k: v for k, v in store.refs.items() if v} == expected.refs
    assert all(v >= 0 for v in store.refs.values())
    # and the documents assembled from them equal the direct computation over the final states
    finals = final_states(events)
    assert {s for s, _ in store.counters} >= {NATIONAL}
    scopes = [NATIONAL, *(f"region:{r}" for r in REGIONS), *(f"territory:{t}" for t in sorted(finals["territory"]))]
    assert _documents(store, scopes) == compute_indicators(store.final(), scopes)


def test_a_territory_arriving_after_its_actions_and_grants_moves_their_region_figures() -> None:
    ev = "fr.anct.ti.{}.v1"
    t0 = "2024-03-01T12:00:00Z"
    action = {"type": ev.format("action.created"), "subject": "A1", "entityversion": 1, "time": t0,
              "data": {"territory_id": "ti-8401", "axis": "foncier", "status": "amont", "themes": []}}
    grant = {"type": ev.format("grant.committed"), "subject": "G1", "entityversion": 1, "time": t0,
             "data": {"programme": "rebond_industriel", "status": "committed", "territory_id": "ti-8401", "commune_insee": None,
                      "amount_eur": "10.50", "contributions": [], "value_chain": None}}
    territory = {"type": ev.format("territory.registered"), "subject": "ti-8401", "entityversion": 1, "time": t0,
                 "data": {"region_code": "84", "status": "active", "epcis": [{"siren": "200000001"}]}}
    store = Store()
    store.apply([action, grant])
    assert store.counters[("region:84", "actions.count")] == 0 and store.counters[(NATIONAL, "actions.count")] == 1
    touched = store.apply([territory])
    assert {"region:84", "territory:ti-8401"} <= touched
    assert store.counters[("region:84", "actions.count")] == 1
    assert store.counters[("territory:ti-8401", "grants.amount_eur")] == 1050
    assert store.counters[(NATIONAL, "actions.by_region_status.84.amont")] == 1
    moved = {**territory, "entityversion": 2, "data": {**territory["data"], "region_code": "93"}}
    store.apply([moved])
    assert store.counters[("region:84", "actions.count")] == 0 and store.counters[("region:93", "actions.count")] == 1
    assert store.counters[("region:84", "grants.count")] == 0 and store.counters[("region:93", "grants.count")] == 1
    assert store.refs[("region:93", "epci", "200000001")] == 1 and store.refs[("region:84", "epci", "200000001")] == 0


def test_cents_and_medians_are_exact() -> None:
    assert cents(Decimal("12.34")) == 1234 and cents(Decimal("0.005")) == 1
    assert median_twice([100, 200, 400, 900]) == 600 and median_twice([5]) == 10 and median_twice([]) is None
    doc = assemble("region:84", {"sites.count": 2, "sites.area_ha_total": 5, MEDIAN_NAME: 5}, {}, programmes_from({}))
    assert doc["sites.area_ha_median"] == "0.02" and doc["sites.area_ha_mean"] == "0.02"  # 0.025 → 0.02 (half-even)
