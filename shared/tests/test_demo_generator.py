"""The demo programme reproduces every figure of BILAN.md, recomputed here from the payloads alone."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from stdnum import luhn
from stdnum.fr import siren as fr_siren
from stdnum.fr import siret as fr_siret
from ti_demo.check import compare
from ti_demo.generator import DemoProgramme, Write, allocate, generate, instant
from ti_demo.loader import rounds
from ti_shared.geo import DEPARTEMENTS, REGIONS

LAUNCH_END = datetime(2023, 11, 30, 23, 0, tzinfo=UTC)  # 2023-11-30 end of day, Europe/Paris
REPORT_END = datetime(2024, 11, 30, 23, 0, tzinfo=UTC)

AXES = ("competences_attractivite", "foncier", "innovation", "transition_ecologique", "autre")
STATUSES = ("amont", "etude_prealable", "en_cours", "en_pause", "realise", "abandonne", "non_renseigne")
THEMES = {
    "valorisation_industrie": 376,
    "nouvelles_formations": 256,
    "rh_marque_employeur": 236,
    "besoin_formation": 181,
    "aide_installation": 148,
    "transition_energetique": 343,
    "ecologie_industrielle_territoriale": 320,
    "gestion_eau": 68,
    "infrastructures_numeriques": 53,
    "usages_numeriques": 75,
    "tiers_lieux": 75,
    "ecosysteme_innovation_recherche": 282,
    "sites_cles_en_main": 134,
    "requalification_friche": 193,
    "optimisation_densification_fonciere": 357,
}
OPERATORS = {
    "fonds_vert_ti_te": {"ADEME"},
    "rebond_industriel": {"BDT", "BPI"},
    "ingenierie_anct": {"ANCT"},
    "ingenierie_rebond": {"BDT", "ANCT"},
    "cofinancement_chef_projet": {"ANCT"},
}


@pytest.fixture(scope="module")
def programme() -> DemoProgramme:
    return generate()


def fold(writes: list[Write], until: datetime | None = None) -> dict[str, dict[str, Any]]:
    """The state of each entity after its writes (PUT replaces, PATCH merges), up to ``until``."""
    state: dict[str, dict[str, Any]] = {}
    for w in sorted(writes, key=lambda w: w.effective_at):
        if until is not None and w.effective_at > until:
            continue
        if w.method == "PUT":
            state[w.entity] = dict(w.body)
        elif "plan-imports" in w.path:  # one row per action: an upsert of each
            for row in w.body["actions"]:
                state[row["action_id"]] = {**row, "territory_id": w.body["territory_id"]}
    return state


def pct(count: int, total: int) -> int:
    return round(100 * count / total)


def departement_of(commune: str) -> str:
    return commune[:3] if commune.startswith("97") else commune[:2]


def siren_ok(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9]{9}", value)) and luhn.is_valid(value) and fr_siren.is_valid(value)


def siret_ok(value: str) -> bool:
    return (
        bool(re.fullmatch(r"[0-9]{14}", value))
        and not value.startswith("356000000")
        and luhn.is_valid(value)
        and fr_siret.is_valid(value)
    )


def commune_ok(code: str) -> bool:
    dep = departement_of(code)
    number = code[len(dep) :]
    return dep in DEPARTEMENTS and number.isdigit() and int(number) > 0 and len(code) == 5


# --- programme and network ---------------------------------------------------------------------


def test_territories_reproduce_the_network_figures(programme: DemoProgramme) -> None:
    territories = fold(programme.territories)
    active = [t for t in territories.values() if t["status"] == "active"]
    assert len(active) == 183
    assert len({e["siren"] for t in active for e in t["epcis"]}) == 630
    assert sum(len(t["epcis"]) for t in active) == 630  # no EPCI in two territories
    assert max(len(t["epcis"]) for t in active) <= 5 and min(len(t["epcis"]) for t in active) >= 1
    assert {t["region_code"] for t in active} == set(REGIONS)
    assert sum(1 for t in active if t["project_lead"] and t["project_lead"]["in_post"]) == 162
    assert sum(1 for t in active if t["project_lead"] and t["project_lead"]["in_post"] and t["project_lead"]["cofinanced"]) == 140
    assert sum(1 for t in active if t["launch_copil_held_on"]) == 146
    assert len({t["name"] for t in active}) == 183


def test_territories_are_well_formed(programme: DemoProgramme) -> None:
    territories = fold(programme.territories)
    for territory_id, t in territories.items():
        assert re.fullmatch(r"ti-[0-9]{4}", territory_id)
        assert territory_id[3:5] == t["region_code"]
        assert t["departement_codes"] and all(d in DEPARTEMENTS for d in t["departement_codes"])
        assert any(DEPARTEMENTS[d][1] == t["region_code"] for d in t["departement_codes"])
        assert all(siren_ok(e["siren"]) for e in t["epcis"])
        assert t["labelled_on"] == "2023-11-09" and t["phase"] == "temps-2"
        assert re.match(r"^(Bassin|Pays|Vallée|Périgord|Estuaire|Étang|Boucle|Canal|Côte|Centre|Petite-Terre|Cornouaille|Comminges|Médoc|Haut-Jura)", t["name"])
        if t["launch_copil_held_on"]:
            assert date(2023, 11, 9) < date.fromisoformat(t["launch_copil_held_on"]) <= date(2024, 11, 30)
    registrations = [w for w in programme.territories if w.effective_at == datetime(2023, 11, 9, 10, tzinfo=UTC)]
    assert len(registrations) == 183
    assert {"Pays de Lorient", "Périgord Noir"} <= {t["name"] for t in territories.values()}


# --- actions -----------------------------------------------------------------------------------


def test_actions_reproduce_the_plan_figures(programme: DemoProgramme) -> None:
    actions = fold(programme.actions, REPORT_END)
    assert len(actions) == 2812
    assert len(fold(programme.actions, LAUNCH_END)) == 2429
    axes = Counter(a["axis"] for a in actions.values())
    assert {axis: pct(axes[axis], 2812) for axis in AXES} == {
        "competences_attractivite": 32,
        "transition_ecologique": 24,
        "foncier": 18,
        "innovation": 18,
        "autre": 8,
    }
    themes = Counter(theme for a in actions.values() for theme in a["themes"])
    assert dict(themes) == THEMES
    statuses = Counter(a["status"] for a in actions.values())
    assert sum(statuses.values()) == 2812
    assert {s: pct(statuses[s], 2812) for s in STATUSES} == {
        "en_cours": 36,
        "amont": 20,
        "etude_prealable": 19,
        "realise": 13,
        "non_renseigne": 8,
        "en_pause": 4,
        "abandonne": 1,
    }


def test_actions_have_a_history(programme: DemoProgramme) -> None:
    launch = fold(programme.actions, LAUNCH_END)
    final = fold(programme.actions)
    changed = [k for k in launch if launch[k]["status"] != final[k]["status"]]
    assert len(changed) > 500
    launch_statuses = Counter(a["status"] for a in launch.values())
    final_statuses = Counter(a["status"] for a in final.values())
    assert launch_statuses["realise"] < final_statuses["realise"]
    per_territory: dict[str, list[Write]] = defaultdict(list)
    for w in programme.actions:
        per_territory[w.entity].append(w)
    territory_ids = {w.entity for w in programme.territories}
    assert set(per_territory) == territory_ids
    for territory_id, writes in per_territory.items():
        assert len(writes) == 3  # the launch plan, then the two half-yearly updates
        assert all(w.method == "POST" and w.path == f"/v1/actions/plan-imports?territory_id={territory_id}&mode=atomic" for w in writes)
        instants = [w.effective_at for w in writes]
        assert instants == sorted(instants) and len(set(instants)) == 3
        assert instants[0] <= LAUNCH_END < instants[1] and instants[2] <= REPORT_END
        ids = [[row["action_id"] for row in w.body["actions"]] for w in writes]
        assert set(ids[0]) <= set(ids[1]) <= set(ids[2])  # a later plan keeps every earlier action
        for row in writes[-1].body["actions"]:
            assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", row["action_id"])
            assert row["axis"] in AXES and row["status"] in STATUSES
            assert len(set(row["themes"])) == len(row["themes"]) and set(row["themes"]) <= set(THEMES)


def test_plan_files_carry_every_field(programme: DemoProgramme) -> None:
    write = programme.actions[0]
    assert write.media_type == "text/csv"
    lines = write.content().decode().splitlines()
    header = lines[0].split(";")
    assert header[:3] == ["action_id", "title", "description"] and "status" in header and "themes" in header
    assert len(lines) == 1 + len(write.body["actions"])
    first = write.body["actions"][0]
    assert lines[1].startswith(first["action_id"] + ";") and "|".join(first["themes"]) in lines[1]


# --- grants ------------------------------------------------------------------------------------


def by_programme(programme: DemoProgramme) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in programme.grants:
        out[g["programme"]].append(g)
    return out


def test_fonds_vert_reproduces_the_report(programme: DemoProgramme) -> None:
    fv = by_programme(programme)["fonds_vert_ti_te"]
    assert len(fv) == 163
    amount = sum(Decimal(g["amount_eur"]) for g in fv)
    investment = sum(Decimal(g["investment_eur"]) for g in fv)
    assert abs(amount - Decimal(63_000_000)) <= Decimal(500_000)
    assert round(amount / 1_000_000) == 63 and round(investment / 1_000_000) == 776
    assert len({g["territory_id"] for g in fv}) == 106
    assert len({departement_of(g["commune_insee"]) for g in fv}) == 77
    assert sum(g["jobs_forecast"] for g in fv) == 2600
    assert sum(g["jobs_conditional"] for g in fv) == 1300
    assert all(0 <= g["jobs_conditional"] <= g["jobs_forecast"] for g in fv)
    assert pct(sum("climate_mitigation" in g["contributions"] for g in fv), 163) == 78
    assert pct(sum("circular_economy" in g["contributions"] for g in fv), 163) == 66
    chains = Counter(g["value_chain"] for g in fv)
    assert (pct(chains["economie_circulaire"], 163), pct(chains["relocalisation"], 163), pct(chains["bioeconomie"], 163)) == (55, 22, 17)
    assert all(g["contributions"] for g in fv)


def test_rebond_and_engineering_reproduce_the_report(programme: DemoProgramme) -> None:
    grants = by_programme(programme)
    rebond = grants["rebond_industriel"]
    assert sum(Decimal(g["amount_eur"]) for g in rebond) == Decimal("39700000.00")
    assert len({g["territory_id"] for g in rebond}) == 26
    assert {g["operator"] for g in rebond} == {"BDT", "BPI"}
    assert round(sum(Decimal(g["amount_eur"]) for g in grants["ingenierie_anct"]) / 1_000_000) == 2
    assert round(sum(Decimal(g["amount_eur"]) for g in grants["ingenierie_rebond"]) / 1_000_000) == 2
    assert len(grants["ingenierie_rebond"]) == 15
    names = {w.entity: w.body["name"] for w in programme.territories}
    lorient = [g for g in rebond if names[g["territory_id"]] == "Pays de Lorient"]
    assert len(lorient) == 6 and sum(Decimal(g["amount_eur"]) for g in lorient) == Decimal(1_500_000)
    assert sum(Decimal(g["investment_eur"]) for g in lorient) == Decimal(4_800_000)
    perigord = [g for g in rebond if names[g["territory_id"]] == "Périgord Noir"]
    assert len(perigord) == 5 and sum(Decimal(g["amount_eur"]) for g in perigord) == Decimal(2_000_000)


def test_the_states_cofinancing_of_project_leads_reproduces_the_report(programme: DemoProgramme) -> None:
    cofinanced = {w.entity for w in programme.territories if (w.body.get("project_lead") or {}).get("cofinanced")}
    grants = by_programme(programme)["cofinancement_chef_projet"]
    assert round(sum(Decimal(g["amount_eur"]) for g in grants) / 100_000) == 67  # 6.7 M€
    assert {g["territory_id"] for g in grants} == cofinanced and len(cofinanced) == 140
    assert sorted(g["decision_date"][:4] for g in grants) == ["2023"] * 140 + ["2024"] * 140
    assert {g["operator"] for g in grants} == {"ANCT"}


def test_grants_are_valid_for_the_ledger(programme: DemoProgramme) -> None:
    territories = fold(programme.territories)
    refs = [(g["operator"], g["operator_ref"]) for g in programme.grants]
    assert len(set(refs)) == len(refs)
    for g in programme.grants:
        assert g["operator"] in OPERATORS[g["programme"]]
        assert siret_ok(g["beneficiary"]["siret"]), g["beneficiary"]
        assert commune_ok(g["commune_insee"]), g["commune_insee"]
        assert departement_of(g["commune_insee"]) in territories[g["territory_id"]]["departement_codes"]
        assert Decimal(g["amount_eur"]) > 0 and re.fullmatch(r"[0-9]+\.[0-9]{2}", g["amount_eur"])
        if g["investment_eur"] is not None:
            assert Decimal(g["investment_eur"]) >= Decimal(g["amount_eur"])
        # every grant is of the temps II (labelled on 9 November 2023); only the project leads' co-financing
        # has a 2023 share
        year = "2024" if g["programme"] != "cofinancement_chef_projet" else ("2023", "2024")
        assert g["decision_date"][:4] in year and g["decision_date"] > "2023-11-09" and len(g["object"]) <= 256
    for batch in programme.grant_batches:
        assert batch.method == "POST" and batch.path == "/v1/grant-batches"
        assert all(date.fromisoformat(g["decision_date"]) <= batch.effective_at.date() for g in batch.body["items"])
        assert batch.effective_at.year in (2023, 2024)


# --- sites -------------------------------------------------------------------------------------


def test_sites_reproduce_the_report(programme: DemoProgramme) -> None:
    sites = list(fold(programme.sites).values())
    assert len(sites) == 55
    areas = [Decimal(s["area_ha"]) for s in sites]
    assert sum(areas) == Decimal("2942.00")
    assert round(sum(areas) / 55) == 53
    assert statistics.median(areas) == Decimal("39.00")
    assert Counter(s["maturity"] for s in sites) == {"ready": 6, "short_term": 25, "before_2030": 24}
    recycled = [Decimal(s["area_ha"]) for s in sites if s["land_recycling"]]
    assert len(recycled) == 30 and sum(recycled) > 1000
    held = sum(s["workshop_held"] for s in sites)
    assert held == min(range(56), key=lambda k: abs(k / 55 - 0.88))  # 48: the nearest share to 88 %
    assert held in (48, 49)
    assert sum(s["roadmap_delivered"] for s in sites) == 30
    territories = fold(programme.territories)
    for w in programme.sites:
        assert re.fullmatch(r"[A-Za-z0-9_-]{3,64}", w.entity)
        assert w.body["labelled_on"] == "2024-04-15" and w.effective_at.date() == date(2024, 4, 15)
        assert commune_ok(w.body["commune_insee"])
        assert departement_of(w.body["commune_insee"]) in territories[w.body["territory_id"]]["departement_codes"]


def test_sites_travel_as_a_cnig_inventory_the_catalogue_reads_back_whole(programme: DemoProgramme) -> None:
    from site_catalog.imports import LAYOUT, parse_rows
    from ti_shared.imports import read_import

    (file,) = programme.site_files()
    assert file.path.startswith("/v1/sites/imports") and file.effective_at == programme.sites[0].effective_at
    table = read_import(file.content(), file.media_type, LAYOUT)
    assert table.warnings == []
    parsed = parse_rows(table)
    assert all(p.errors == [] and p.body is not None for p in parsed)
    read_back = {p.site_id: p.body.model_dump(mode="json") for p in parsed if p.body is not None}
    assert read_back == {w.entity: w.body for w in programme.sites}
    # French decimals and dates, the standard's own words: what a collectivité's file looks like
    assert {w.msg.split(" read as ")[0] for p in parsed for w in p.warnings} >= {"'22,00'", "'15/04/2024'"}


def test_anct_publishes_its_grants_as_scdl_files_the_ledger_reads_back_whole(programme: DemoProgramme) -> None:
    from funding_ledger.scdl import LAYOUT, Attributor, ScdlContext, grant_item, read_rows
    from funding_ledger.schemas import GrantBody
    from ti_demo.generator import SCDL_OPERATORS
    from ti_shared.imports import read_import

    files = [b for b in programme.grant_batches if b.media_type == "text/csv"]
    pushed = [b for b in programme.grant_batches if b.media_type == "application/json"]
    # part of the grants go through the SCDL import: ANCT's, every one of them; the others as JSON batches
    assert files and pushed and all(b.path == "/v1/grant-batches" for b in programme.grant_batches)
    published = [g for b in files for g in b.body["items"]]
    assert {g["operator"] for g in published} == {"ANCT"} and "ANCT" not in {g["operator"] for b in pushed for g in b.body["items"]}
    assert {g["programme"] for g in published} == {"ingenierie_anct", "cofinancement_chef_projet"}
    label, siret = SCDL_OPERATORS["ANCT"]
    ctx = ScdlContext({"ANCT": Attributor("ANCT", label, siret)}, {g["programme"]: g["programme"] for g in programme.grants})
    for file in files:
        table = read_import(file.content(), file.media_type, LAYOUT)
        assert table.warnings == []  # the 16 SCDL columns in the schema's order, comma-separated UTF-8
        rows = read_rows(table, None)
        items = [grant_item(r, None, ctx) for r in rows]
        assert all(r.notes.errors == [] and r.notes.warnings == [] and r.key_from == "column" for r in rows)
        for item, expected in zip(items, file.body["items"], strict=True):
            assert item is not None
            body = GrantBody.model_validate({k: v for k, v in item.items() if k not in ("operator", "operator_ref")})
            read_back = {"operator": item["operator"], "operator_ref": item["operator_ref"], **body.model_dump(mode="json")}
            scdl = read_back.pop("scdl")
            # the grant of the JSON batch, and the SCDL fields the file gives kept with it
            assert read_back == expected
            assert scdl["referenceDecision"] == f"DG-ANCT-{expected['decision_date'][:7]}" and scdl["nomAttribuant"] is None


# --- instants, determinism, helpers ------------------------------------------------------------


def test_effective_instants_are_ordered_and_in_the_past(programme: DemoProgramme) -> None:
    now = datetime.now(UTC)
    for group in (programme.territories, programme.actions, programme.sites):
        last: dict[str, datetime] = {}
        for w in group:
            assert w.effective_at <= REPORT_END <= now
            assert w.entity not in last or last[w.entity] <= w.effective_at
            last[w.entity] = w.effective_at
    assert min(w.effective_at for w in programme.actions) == datetime(2023, 11, 15, 9, tzinfo=UTC)
    assert instant(datetime(2024, 1, 2, 3, 4, tzinfo=UTC)) == "2024-01-02T03:04:00Z"


def test_generation_is_deterministic() -> None:
    a, b = generate(7), generate(7)
    assert [w.as_json() for w in a.all_writes()] == [w.as_json() for w in b.all_writes()]
    assert [w.as_json() for w in a.all_writes()] != [w.as_json() for w in generate(8).all_writes()]
    assert len(fold(a.actions)) == 2812 and len(fold(a.actions, LAUNCH_END)) == 2429


def test_allocate_splits_exactly() -> None:
    parts = allocate(1000, [1.0, 2.0, 3.5, 0.1], minimum=10)
    assert sum(parts) == 1000 and min(parts) >= 10
    assert parts[2] > parts[1] > parts[0] > parts[3]
    with pytest.raises(ValueError):
        allocate(5, [1.0, 1.0], minimum=3)


def test_rounds_keep_each_entity_in_order(programme: DemoProgramme) -> None:
    assert [len(b) for b in rounds(programme.territories)] == [183, 146]  # registration, then the COPIL update
    batches = rounds(programme.actions)
    assert sum(len(b) for b in batches) == len(programme.actions)
    assert [len(b) for b in batches] == [183, 183, 183]
    assert {w.effective_at.year for w in batches[0]} == {2023}
    for batch in batches:
        assert len({w.entity for w in batch}) == len(batch)
    seen: dict[str, datetime] = {}
    for batch in batches:
        for w in batch:
            assert w.entity not in seen or seen[w.entity] < w.effective_at
            seen[w.entity] = w.effective_at


def indicators_of(programme: DemoProgramme, until: datetime) -> dict[str, Any]:
    """The national indicators the reporting service should give, computed from the payloads."""
    territories = [t for t in fold(programme.territories, until).values() if t["status"] == "active"]
    actions = list(fold(programme.actions, until).values())
    sites = list(fold(programme.sites, until).values())
    n = len(actions)
    grants: dict[str, dict[str, Any]] = {}
    for code, items in by_programme(programme).items():
        grants[code] = {
            "count": len(items),
            "amount_eur": str(sum(Decimal(g["amount_eur"]) for g in items)),
            "investment_eur": str(sum(Decimal(g["investment_eur"] or 0) for g in items)),
            "jobs_forecast": sum(g["jobs_forecast"] or 0 for g in items),
            "jobs_conditional": sum(g["jobs_conditional"] or 0 for g in items),
            "territory_count": len({g["territory_id"] for g in items}),
            "departement_count": len({departement_of(g["commune_insee"]) for g in items}),
            "contribution_share": {
                o: round(sum(o in g["contributions"] for g in items) / len(items), 6)
                for o in ("climate_mitigation", "circular_economy")
            },
            "value_chain_share": {
                c: round(sum(g["value_chain"] == c for g in items) / len(items), 6)
                for c in ("economie_circulaire", "relocalisation", "bioeconomie")
            },
        }
    areas = sorted(Decimal(s["area_ha"]) for s in sites)
    return {
        "territories.count": len(territories),
        "territories.epci_count": len({e["siren"] for t in territories for e in t["epcis"]}),
        "territories.region_count": len({t["region_code"] for t in territories}),
        "territories.project_leads_in_post": sum(bool(t["project_lead"] and t["project_lead"]["in_post"]) for t in territories),
        "territories.project_leads_cofinanced": sum(bool(t["project_lead"] and t["project_lead"]["cofinanced"]) for t in territories),
        "territories.launch_copil_held": sum(bool(t["launch_copil_held_on"]) for t in territories),
        "actions.count": n,
        "actions.by_axis_share": {a: round(sum(x["axis"] == a for x in actions) / n, 6) for a in AXES},
        "actions.by_status_share": {s: round(sum(x["status"] == s for x in actions) / n, 6) for s in STATUSES},
        "actions.by_theme": {t: sum(t in x["themes"] for x in actions) for t in THEMES},
        "grants.by_programme": grants,
        "sites.count": len(sites),
        "sites.area_ha_total": str(sum(areas)),
        "sites.area_ha_mean": str(round(sum(areas) / len(areas), 2)) if areas else None,
        "sites.area_ha_median": str(statistics.median(areas)) if areas else None,
        "sites.by_maturity": dict(Counter(s["maturity"] for s in sites)),
        "sites.land_recycling_count": sum(s["land_recycling"] for s in sites),
        "sites.land_recycling_area_ha": str(sum(Decimal(s["area_ha"]) for s in sites if s["land_recycling"])),
        "sites.workshop_held_share": round(sum(s["workshop_held"] for s in sites) / len(sites), 6) if sites else None,
        "sites.roadmap_delivered_count": sum(s["roadmap_delivered"] for s in sites),
    }


def test_check_accepts_the_programme_and_spots_a_difference(programme: DemoProgramme) -> None:
    national = indicators_of(programme, REPORT_END)
    launch = indicators_of(programme, LAUNCH_END)
    figures = compare(national, launch)
    assert len(figures) >= 60
    assert [f.label for f in figures if not f.ok] == []
    national["actions.by_theme"]["gestion_eau"] = 67
    national["sites.area_ha_median"] = "41.00"
    launch["actions.count"] = 2812
    wrong = {f.label for f in compare(national, launch) if not f.ok}
    assert wrong == {"theme gestion_eau", "median surface", "actions at the launch (as of 2023-11-30)"}
    assert [f.ok for f in compare({}, {})].count(True) == 0


def test_generate_writes_the_imported_files_as_the_load_sends_them(programme: DemoProgramme, tmp_path: Any) -> None:
    from ti_demo.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "files").iterdir())
    sent = [w for w in (*programme.actions, *programme.grant_batches, *programme.site_files()) if w.media_type == "text/csv"]
    assert len(files) == len(sent) and sorted(f.read_bytes() for f in files) == sorted(w.content() for w in sent)
    scdl = [f for f in files if f.name.startswith("scdl-")]
    assert len(scdl) == len([b for b in programme.grant_batches if b.media_type == "text/csv"])
    assert scdl[0].read_text(encoding="utf-8").startswith("nomAttribuant,idAttribuant,dateConvention,referenceDecision,")
    assert len([f for f in files if f.name.startswith("cnig-")]) == 1
