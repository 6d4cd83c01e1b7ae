"""The shared payload generators give bodies the services accept (checked with the platform's own types)."""

from __future__ import annotations

import csv
import io
import random

from ti_shared.geo import commune_code_problem, region_of_commune
from ti_shared.streams import PROGRAMMES, grant_payloads, grants_scdl_csv, site_payloads, territory_payloads
from ti_shared.types import siren_problem, siret_problem


def test_generated_payloads_are_valid_and_deterministic() -> None:
    territories = territory_payloads(random.Random(1), ["84", "93"], 3)
    assert territory_payloads(random.Random(1), ["84", "93"], 3) == territories
    assert all(siren_problem(e["siren"]) is None for t in territories.values() for e in t["epcis"])
    placed = {tid: t["region_code"] for tid, t in territories.items()}
    for operator in ("ADEME", "BPI", "BDT", "ANCT"):
        grants = grant_payloads(random.Random(2), operator, placed, 30, tag="T")
        for (op, _ref), g in grants.items():
            assert op == operator and operator in PROGRAMMES[g["programme"]]
            assert siret_problem(g["beneficiary"]["siret"]) is None
            assert commune_code_problem(g["commune_insee"]) is None
            assert region_of_commune(g["commune_insee"]) == placed[g["territory_id"]]
            assert g["jobs_conditional"] is None or g["jobs_conditional"] <= g["jobs_forecast"]
    for site in site_payloads(random.Random(3), placed, 30, tag="T").values():
        assert region_of_commune(site["commune_insee"]) == placed[site["territory_id"]]


def test_scdl_csv_has_one_row_per_grant() -> None:
    grants = grant_payloads(random.Random(4), "BDT", {"ti-8401": "84"}, 5, tag="T")
    rows = list(csv.DictReader(io.StringIO(grants_scdl_csv(grants, attribuant="BDT", attribuant_siret="18002002600019")), delimiter=";"))
    assert [(r["operator"], r["referenceDecision"]) for r in rows] == list(grants)
    assert [r["montant"] for r in rows] == [g["amount_eur"] for g in grants.values()]
