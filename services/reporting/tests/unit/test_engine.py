"""The indicator engine: placement rules, incremental deltas equal a recomputation, patched documents
equal assembled ones, explanations add up to the figures."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from reporting.catalogue import CODES
from reporting.decoding import decode
from reporting.domain import NATIONAL, ActionRow, Entity, Row, TerritoryRow, entity_of
from reporting.engine import (
    INDICATORS,
    MEDIAN_NAME,
    Aggregates,
    Deltas,
    aggregate,
    assemble,
    contribution,
    deltas_of,
    empty_document,
    explain,
    median_twice,
    moved_territories,
    patch,
    regions_after,
)
from ti_shared.geo import REGIONS
from ti_shared.streams import final_states, generate_stream
from ti_shared.vocabulary import ACTION_STATUSES, AXES, THEMES

EV = "fr.anct.ti.{}.v1"


def _row(e: dict[str, Any]) -> Row:
    return decode(e["type"], e["subject"], e["entityversion"], e["data"])


def _regions(rows: list[Row]) -> dict[str, str]:
    return {r.id: r.region_code for r in rows if isinstance(r, TerritoryRow)}


def _documents(aggregates: Aggregates, scopes: list[str]) -> dict[str, dict[str, Any]]:
    return {s: assemble(s, aggregates.figures(s), aggregates.programmes()) for s in scopes}


class Store:
    """Applies batches as the handler does in memory: skip what is not newer, deltas, patched documents."""

    def __init__(self) -> None:
        self.states: dict[Entity, dict[str, Row]] = {"territory": {}, "action": {}, "grant": {}, "site": {}}
        self.aggregates = Aggregates()
        self.documents: dict[str, dict[str, Any]] = {}

    def regions(self) -> dict[str, str]:
        return _regions(list(self.states["territory"].values()))

    def apply(self, batch: list[dict[str, Any]]) -> None:
        before_regions = self.regions()
        before: dict[tuple[Entity, str], Row | None] = {}
        for e in batch:
            row = _row(e)
            entity = entity_of(row)
            was = self.states[entity].get(row.id)
            if was is not None and row.version <= was.version:
                continue  # stale or duplicate: the consumer skips it
            before.setdefault((entity, row.id), was)
            self.states[entity][row.id] = row
        after_regions = self.regions()
        moved = moved_territories(before_regions, after_regions)
        dependents = [r for entity in ("action", "grant", "site") for r in self.states[entity].values()  # type: ignore[literal-required]
                      if getattr(r, "territory_id", None) in moved and (entity, r.id) not in before]
        changes = [(was, self.states[entity][i]) for (entity, i), was in before.items()]
        deltas = deltas_of(changes, before_regions, after_regions, dependents)
        programmes = self.aggregates.programmes()
        touched = self.aggregates.apply(deltas)
        changed_programmes = self.aggregates.programmes() != programmes
        scopes = {*touched.counters, *touched.refs, *touched.areas, *deltas.scopes}
        if changed_programmes:
            scopes |= set(self.documents)
        for scope in scopes:
            figures = self.aggregates.figures(scope)
            current = self.documents.get(scope)
            if current is None:
                self.documents[scope] = assemble(scope, figures, self.aggregates.programmes())
            else:
                self.documents[scope] = patch(
                    current, scope, figures, self.aggregates.programmes(), counters=touched.counters.get(scope, ()),
                    refs=touched.refs.get(scope, ()), areas=scope in touched.areas,
                    programmes_changed=changed_programmes,
                )

    def rows(self) -> list[Row]:
        return [r for states in self.states.values() for r in states.values()]


def _moving_territory(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A later version of a territory, in another region, at the end of the stream."""
    last = max((e for e in events if e["type"].startswith("fr.anct.ti.territory.")), key=lambda e: (e["subject"], e["entityversion"]))
    latest = max((e for e in events if e["subject"] == last["subject"]), key=lambda e: e["entityversion"])
    region = next(r for r in REGIONS if r != latest["data"]["region_code"])
    moved = {**latest, "id": latest["id"] + "-moved", "entityversion": latest["entityversion"] + 1,
             "data": {**latest["data"], "region_code": region}}
    return [*events, moved]


def test_batch_after_batch_of_a_noisy_stream_the_aggregates_and_documents_equal_a_recomputation() -> None:
    events = _moving_territory(generate_stream(31, territories=25, actions=600, grants=150, sites=40,
                                               shuffle=True, duplicate_rate=0.05, stale_rate=0.03))
    rng = random.Random(7)
    store = Store()
    i = 0
    while i < len(events):
        size = rng.choice([1, 3, 50, 400])
        store.apply(events[i : i + size])
        i += size
    final = [_row(e) for finals in final_states(events).values() for e in finals.values()]
    expected = aggregate(final, _regions(final))
    assert store.aggregates.counter_rows() == expected.counter_rows()
    assert store.aggregates.ref_rows() == expected.ref_rows()
    assert all(n > 0 for n in store.aggregates.ref_rows().values())
    scopes = [NATIONAL, *(f"region:{r}" for r in REGIONS), *(f"territory:{t}" for t in sorted(_regions(final)))]
    patched = {s: store.documents.get(s) or assemble(s, store.aggregates.figures(s), store.aggregates.programmes()) for s in scopes}
    assert patched == _documents(expected, scopes)


def test_a_territory_arriving_after_its_actions_and_grants_moves_their_region_figures() -> None:
    t0 = "2024-03-01T12:00:00Z"
    action = {"type": EV.format("action.created"), "subject": "A1", "entityversion": 1, "time": t0,
              "data": {"territory_id": "ti-8401", "axis": "foncier", "status": "amont", "themes": []}}
    grant = {"type": EV.format("grant.committed"), "subject": "G1", "entityversion": 1, "time": t0,
             "data": {"programme": "rebond_industriel", "status": "committed", "territory_id": "ti-8401", "commune_insee": None,
                      "amount_eur": "10.50", "contributions": [], "value_chain": None}}
    territory = {"type": EV.format("territory.registered"), "subject": "ti-8401", "entityversion": 1, "time": t0,
                 "data": {"region_code": "84", "status": "active", "epcis": [{"siren": "200000001"}]}}
    store = Store()
    store.apply([action, grant])
    c = store.aggregates.counters
    assert "region:84" not in c and c[NATIONAL]["actions.count"] == 1
    store.apply([territory])
    assert c["region:84"]["actions.count"] == 1 and c["territory:ti-8401"]["grants.amount_eur"] == 1050
    assert c[NATIONAL]["actions.by_region_status.84.amont"] == 1
    assert store.documents["territory:ti-8401"]["grants.amount_eur"] == "10.50"
    moved = {**territory, "entityversion": 2, "data": {**territory["data"], "region_code": "93"}}
    store.apply([moved])
    assert "actions.count" not in c["region:84"] and c["region:93"]["actions.count"] == 1  # back to 0: removed
    assert "grants.count" not in c["region:84"] and c["region:93"]["grants.count"] == 1
    refs = store.aggregates.refs
    assert refs["region:93"]["epci"] == {"200000001": 1} and "200000001" not in refs["region:84"]["epci"]
    assert store.documents["region:84"]["actions.count"] == 0 and store.documents["region:93"]["territories.epci_count"] == 1


def test_placement_rules_of_grants_sites_and_actions() -> None:
    t = [decode(EV.format("territory.registered"), tid, 1, {"region_code": r, "status": "active"})
         for tid, r in (("ti-8401", "84"), ("ti-7501", "75"))]
    g = {"programme": "fonds_vert_ti_te", "status": "committed", "territory_id": "ti-8401", "amount_eur": "100.00",
         "jobs_conditional": 3, "contributions": ["water"]}
    rows = [
        *t,
        decode(EV.format("grant.committed"), "BPI/1", 1, {**g, "commune_insee": "97411"}),
        decode(EV.format("grant.committed"), "BPI/2", 1, {**g, "commune_insee": "2A004"}),
        decode(EV.format("grant.committed"), "BPI/3", 1, {**g, "commune_insee": None, "territory_id": "ti-7501"}),
        decode(EV.format("action.created"), "A1", 1, {"territory_id": "ti-8401", "axis": "foncier", "status": "amont",
                                                     "themes": ["gestion_eau", "gestion_eau"]}),
        decode(EV.format("action.created"), "A2", 1, {"territory_id": "ti-0001", "axis": "foncier", "status": "amont"}),
        decode(EV.format("action.deleted"), "A3", 2, {"territory_id": "ti-8401", "axis": "foncier", "status": "amont"}),
        decode(EV.format("site.labelled"), "S1", 1, {"commune_insee": "13004", "territory_id": "ti-8401", "area_ha": "25.00",
                                                    "maturity": "ready", "status": "labelled"}),
    ]
    scopes = ["national", "region:04", "region:94", "region:75", "region:84", "region:93", "territory:ti-8401"]
    docs = _documents(aggregate(rows, _regions(rows)), scopes)
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


def test_the_counters_an_action_adds_from_cached_keys_are_those_its_contribution_lists() -> None:
    rnd = random.Random(15)
    regions = {f"ti-{i:04d}": rnd.choice(list(REGIONS)) for i in range(12)}
    territories = [*regions, "ti-9998", "ti-9999"]  # two unknown territories: national only
    for _ in range(3000):
        row = ActionRow(
            id=f"A{rnd.randrange(10**6)}", version=1, territory_id=rnd.choice(territories), axis=rnd.choice(AXES),
            status=rnd.choice(ACTION_STATUSES), themes=tuple(rnd.sample(THEMES, rnd.randrange(len(THEMES) + 1))),
            deleted=rnd.random() < 0.1,
        )
        sign = rnd.choice((1, -1))
        expected: dict[tuple[str, str], int] = {}
        for scope, name, value in contribution(row, regions).counters:
            expected[(scope, name)] = expected.get((scope, name), 0) + sign * value
        deltas = Deltas()
        deltas.add(row, regions, sign)
        deltas.add(row, regions, sign)  # from the caches this time
        assert dict(deltas.counters) == {k: 2 * v for k, v in expected.items()}, row
        assert not row.deleted or not deltas.counters


def test_an_empty_scope_lists_every_breakdown_key_with_zeros() -> None:
    doc = empty_document("territory:ti-8402")
    assert doc["actions.by_status"] == dict.fromkeys(
        ["amont", "etude_prealable", "en_cours", "en_pause", "realise", "abandonne", "non_renseigne"], 0)
    assert doc["actions.by_axis_share"]["foncier"] is None
    assert len(doc["grants.by_programme"]) == 6
    assert doc["sites.area_ha_total"] == "0.00" and doc["sites.area_ha_median"] is None
    assert [i.code for i in INDICATORS] == list(CODES)


def test_medians_means_and_shares_round_as_the_contract_says() -> None:
    assert median_twice([100, 200, 400, 900]) == 600 and median_twice([5]) == 10 and median_twice([]) is None
    rows = [decode(EV.format("site.labelled"), f"S{i}", 1, {"commune_insee": "13004", "area_ha": area, "maturity": "ready",
                                                          "status": "labelled", "workshop_held": i < 2})
            for i, area in enumerate(("0.01", "0.04", "1.00"))]
    agg = aggregate(rows[:2], {})
    doc = assemble(NATIONAL, agg.figures(NATIONAL), agg.programmes())
    assert doc["sites.area_ha_median"] == "0.02" and doc["sites.area_ha_mean"] == "0.02"  # 0.025 → 0.02 (half-even)
    agg = aggregate(rows, {})
    doc = assemble(NATIONAL, agg.figures(NATIONAL), agg.programmes())
    assert doc["sites.area_ha_median"] == "0.04" and doc["sites.area_ha_mean"] == "0.35"
    assert doc["sites.workshop_held_share"] == 0.666667
    assert agg.counter_rows()[(NATIONAL, MEDIAN_NAME)] == 8  # twice the median, in cents


def test_explanations_list_what_each_entity_contributes_and_add_up_to_the_figure() -> None:
    events = generate_stream(32, territories=20, actions=300, grants=120, sites=30)
    final = [_row(e) for finals in final_states(events).values() for e in finals.values()]
    regions = _regions(final)
    agg = aggregate(final, regions)
    scope = "region:84"
    doc = assemble(scope, agg.figures(scope), agg.programmes())
    amounts = explain(final, regions, scope, "grants.amount_eur")
    assert sum(Decimal(v["grants.amount_eur"]) for _, v in amounts) == Decimal(doc["grants.amount_eur"])
    assert all(entity_of(r) == "grant" for r, _ in amounts)
    epcis = explain(final, regions, scope, "territories.epci_count")
    assert len({s for _, v in epcis for s in v["epci"]}) == doc["territories.epci_count"]
    statuses = explain(final, regions, scope, "actions.by_status_share")
    assert len(statuses) == doc["actions.count"]
    assert all(v["actions.count"] == 1 and len(v) == 2 for _, v in statuses)
    medians = explain(final, regions, scope, "sites.area_ha_median")
    assert len(medians) == doc["sites.count"]
    assert explain(final, regions, scope, "actions.by_region_status") == []  # a national figure
    assert len(explain(final, regions, NATIONAL, "actions.by_region_status")) > 0


def test_an_explanation_of_one_breakdown_key_adds_up_to_that_value() -> None:
    events = generate_stream(33, territories=20, actions=300, grants=120, sites=30)
    final = [_row(e) for finals in final_states(events).values() for e in finals.values()]
    regions = _regions(final)
    agg = aggregate(final, regions)
    doc = assemble(NATIONAL, agg.figures(NATIONAL), agg.programmes())
    for axis, count in doc["actions.by_axis"].items():
        got = explain(final, regions, NATIONAL, "actions.by_axis", axis)
        assert len(got) == count and all(v == {f"actions.by_axis.{axis}": 1} for _, v in got)
    share = explain(final, regions, NATIONAL, "actions.by_axis_share", "innovation")  # numerator and denominator
    assert len(share) == doc["actions.count"]
    assert round(sum("actions.by_axis.innovation" in v for _, v in share) / len(share), 6) == doc["actions.by_axis_share"]["innovation"]
    region, status = "84", "en_cours"
    cell = explain(final, regions, NATIONAL, "actions.by_region_status", f"{region}.{status}")
    assert len(cell) == doc["actions.by_region_status"][region][status] > 0
    whole_region = explain(final, regions, NATIONAL, "actions.by_region_status", region)
    assert len(whole_region) == sum(doc["actions.by_region_status"][region].values())
    programme, entry = next((p, e) for p, e in doc["grants.by_programme"].items() if e["count"])
    amounts = explain(final, regions, NATIONAL, "grants.by_programme", f"{programme}.amount_eur")
    assert [set(v) for _, v in amounts] == [{f"grants.by_programme.{programme}.amount_eur"}] * len(amounts)
    assert sum(Decimal(v[f"grants.by_programme.{programme}.amount_eur"]) for _, v in amounts) == Decimal(entry["amount_eur"])
    territories = explain(final, regions, NATIONAL, "grants.by_programme", f"{programme}.territory_count")
    assert len({t for _, v in territories for t in v[f"grant_territory:{programme}"]}) == entry["territory_count"]
    assert all(set(v) == {f"grant_territory:{programme}"} for _, v in territories)
    objective, value = next(iter(entry["contribution_share"].items()))
    shared = explain(final, regions, NATIONAL, "grants.by_programme", f"{programme}.contribution_share.{objective}")
    assert len(shared) == entry["count"]  # every grant of the programme is in the denominator
    numerator = sum(f"grants.by_programme.{programme}.contribution_share.{objective}" in v for _, v in shared)
    assert round(numerator / entry["count"], 6) == value
    whole = explain(final, regions, NATIONAL, "grants.by_programme", programme)
    assert len(whole) == entry["count"]


def test_regions_after_and_moves() -> None:
    t = decode(EV.format("territory.updated"), "ti-8401", 2, {"region_code": "93", "status": "active"})
    assert isinstance(t, TerritoryRow)
    after = regions_after({"ti-8401": "84", "ti-1101": "11"}, [t])
    assert after == {"ti-8401": "93", "ti-1101": "11"}
    assert moved_territories({"ti-8401": "84", "ti-1101": "11"}, after) == {"ti-8401"}
    assert moved_territories({}, {"ti-0101": "01"}) == {"ti-0101"}
