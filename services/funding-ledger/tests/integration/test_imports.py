"""SCDL « subventions » files through the routes, on PostgreSQL and Kafka: the official examples (the
valid one imports cleanly; the invalid ones give, row by row and column by column, every error their
schema names), the rules of keys (a deliberation shared by many grants, duplicates both rejected), a
batch that writes nothing, dry runs, and the SCDL export validated and round-tripped."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from ti_shared.testing import official_schemas_dir, table_schema_errors
from ti_shared.types import siret_problem

from .helpers import GRANT, Service, service

pytestmark = pytest.mark.integration

FOLDER = official_schemas_dir() / "scdl-subventions-2.1.1"
SCHEMA = FOLDER / "schema.json"
PROGRAMME = "subventions_associations"
#: a Luhn-valid SIRET of Poitiers' SIREN (the examples' 21860194600000 fails the checksum, as the schema's check says)
POITIERS = "21860194600013"


async def register(s: Service, code: str, label: str, siret: str) -> dict[str, str]:
    """An attributor of SCDL files as an operator, with a programme it runs; its token."""
    assert (await s.client.put(f"/v1/operators/{code}", json={"label": label, "siret": siret}, headers=s.admin)).status_code in (200, 201)
    body = {"label": "Subventions aux associations", "operators": [code]}
    assert (await s.client.put(f"/v1/programmes/{PROGRAMME}", json=body, headers=s.admin)).status_code in (200, 201)
    return s.token(code)


async def post_csv(s: Service, headers: dict[str, str], data: bytes, **params: str) -> Any:
    return await s.client.post("/v1/grant-batches", content=data, params=params, headers={**headers, "Content-Type": "text/csv"})


def schema_findings(data: bytes) -> set[tuple[int | None, str | None]]:
    """Where the official schema finds fault in a file: frictionless's errors, and the schema's own
    custom checks (a SIRET's checksum; idBeneficiaire or rnaBeneficiaire), which frictionless does not run."""
    found = {(e.row, e.field) for e in table_schema_errors(data, SCHEMA)}
    for line, row in enumerate(csv.DictReader(io.StringIO(data.decode("utf-8"))), 2):
        for column in ("idAttribuant", "idBeneficiaire"):
            if row.get(column) and siret_problem(row[column]):
                found.add((line, column))
        if not row.get("idBeneficiaire") and not row.get("rnaBeneficiaire"):
            found.add((line, "idBeneficiaire"))
    return found


async def test_the_official_valid_example_imports_cleanly():
    async with service() as s:
        token = await register(s, "ANTIBES", "ANTIBES", "21060004500392")
        data = (FOLDER / "exemple_valide.csv").read_bytes()
        r = await post_csv(s, token, data, programme=PROGRAMME, beneficiary_kind="association")
        assert r.status_code == 201, r.text
        batch = r.json()
        assert batch["counts"]["rejected"] == 0 and batch["counts"]["created"] == 29 and batch["warnings"] == []
        warned = {(row["line"], w["loc"][0]) for row in batch["rows"] for w in row["warnings"]}
        # the example's own oddities are warnings, not refusals: a month 30, periods that end before they start
        assert (27, "datesPeriodeVersement") in warned and (24, "datesPeriodeVersement") in warned
        assert {loc for _, loc in warned} <= {"datesPeriodeVersement", "beneficiary_kind"}
        grants = (await s.client.get("/v1/grants", params={"operator": "ANTIBES", "limit": 100}, headers=token)).json()["items"]
        assert len(grants) == 29 and len({g["operator_ref"] for g in grants}) == 29
        cea = next(g for g in grants if g["beneficiary"]["name"].startswith("CEA DU PERSONNEL"))
        assert cea["scdl"] == {
            "nomAttribuant": None, "idAttribuant": None, "referenceDecision": "CONV N° 2074-15 2015-06-19",
            "nature": "aide en numéraire", "conditionsVersement": "échelonné", "datesPeriodeVersement": "2017-03-30/2017-05-24",
            "idRAE": None, "notificationUE": False, "pourcentageSubvention": "0.05", "dispositifAide": None,
        }
        assert cea["beneficiary"]["kind"] == "association" and cea["amount_eur"] == "99786.57"
        sasp = next(g for g in grants if g["beneficiary"]["name"].startswith("SASP"))
        assert sasp["beneficiary"]["kind"] == "entreprise"  # told by its name, not the batch's default


@pytest.mark.parametrize("example", ["exemple_invalide_erreurs_cellules.csv", "exemple_invalide_erreurs_colonnes.csv"])
async def test_the_official_invalid_examples_give_every_error_their_schema_names(example: str):
    async with service() as s:
        token = await register(s, "POITIERS", "Ville de Poitiers", POITIERS)
        data = (FOLDER / example).read_bytes()
        r = await post_csv(s, token, data, programme=PROGRAMME, beneficiary_kind="association")
        assert r.status_code == 201, r.text
        batch = r.json()
        reported = {(row["line"], m["loc"][0]) for row in batch["rows"] for m in row["errors"] + row["warnings"]}
        reported |= {(None, w["loc"][1] if len(w["loc"]) > 1 else None) for w in batch["warnings"]}
        header_fault = any(w["loc"] == ["header"] for w in batch["warnings"])
        for line, column in sorted(schema_findings(data), key=str):
            if line is None and header_fault:
                continue  # a label out of place: the file's warning says the columns are out of order
            assert (line, column) in reported, (line, column)
        rejected = {row["line"]: row["errors"] for row in batch["rows"] if row["outcome"] == "rejected"}
        assert {"loc": ["montant"], "msg": "is required"} in rejected[10]  # no amount: no grant
        assert any(e["loc"] == ["rnaBeneficiaire"] for e in rejected[12])


async def test_a_deliberation_shared_by_many_grants_gives_many_grants_and_duplicates_are_both_rejected():
    async with service() as s:
        token = await register(s, "POITIERS", "Ville de Poitiers", POITIERS)
        header = "dateConvention,referenceDecision,nomBeneficiaire,rnaBeneficiaire,objet,montant\n"
        rows = [f"2024-03-01,DEL-2024-07,Club {n},W{100000000 + n},Saison {n},{1000 + n}\n" for n in range(40)]
        data = (header + "".join(rows)).encode()
        r = await post_csv(s, token, data, programme=PROGRAMME)
        assert r.status_code == 201, r.text
        assert r.json()["counts"]["created"] == 40  # was: 3 grants and 37 silent amendments
        assert await s.count("grant") == 40
        again = await post_csv(s, token, data, programme=PROGRAMME)
        assert {row["outcome"] for row in again.json()["rows"]} == {"unchanged"}
        twice = (header
                 + "2024-03-02,DEL-2024-08,Club A,W200000001,Saison,500\n"
                 + "2024-03-02,DEL-2024-08,Club B,W200000002,Saison,700\n"
                 + "2024-03-02,DEL-2024-08,club a,W200000001,saison ,600\n").encode()
        r = await post_csv(s, token, twice, programme=PROGRAMME)
        assert r.status_code == 201
        rows = r.json()["rows"]
        assert [row["outcome"] for row in rows] == ["rejected", "created", "rejected"]
        assert rows[0]["errors"] == [{"loc": ["operator_ref"], "msg": "repeats the grant of line 4"}]
        assert rows[2]["errors"] == [{"loc": ["operator_ref"], "msg": "repeats the grant of line 2"}]


async def test_a_json_batch_never_amends_a_grant_it_created():
    async with service() as s:
        h = s.token()
        item = {"operator": "ADEME", "operator_ref": "TWICE-1", **GRANT}
        r = await s.client.post("/v1/grant-batches", json={"items": [item, {**item, "amount_eur": "2.00"}, {**item, "operator_ref": "ONCE"}]}, headers=h)
        rows = r.json()["rows"]
        assert [row["outcome"] for row in rows] == ["rejected", "rejected", "created"]
        assert rows[1]["errors"] == [{"loc": ["operator_ref"], "msg": "repeats the grant of row 1"}]


async def test_a_batch_that_writes_nothing_is_rejected_with_its_report():
    async with service() as s:
        h = s.token()
        data = b"dateConvention,nomBeneficiaire,idBeneficiaire,objet,montant,programme,beneficiary_kind\n2024-03-01,A,73282932000075,O,10,fonds_vert_ti_te,entreprise\n"
        r = await post_csv(s, h, data)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["batch"]["status"] == "rejected" and r.json()["batch"]["counts"]["rejected"] == 1
        assert (await s.client.get(r.headers["location"], headers=h)).json()["status"] == "rejected"
        r = await s.client.post("/v1/grant-batches", json={"items": [{"operator": "ADEME", "operator_ref": "X", **GRANT, "amount_eur": "-1"}]}, headers=h)
        assert r.status_code == 422 and r.json()["batch"]["status"] == "rejected"
        assert await s.count("grant") == 0 and await s.count("outbox_message") == 0


async def test_a_dry_run_reports_everything_and_writes_nothing():
    async with service() as s:
        h = {**s.token(), "Idempotency-Key": "dry-1"}
        doc = {"items": [{"operator": "ADEME", "operator_ref": "D-1", **GRANT}, {"operator": "ADEME", "operator_ref": "D-2", **GRANT, "amount_eur": "-1"}]}
        dry = await s.client.post("/v1/grant-batches", params={"dry_run": "true"}, json={**doc, "mode": "atomic"}, headers=h)
        assert dry.status_code == 200 and dry.json()["status"] == "rejected" and dry.json()["rows"][0]["outcome"] == "created"
        dry = await s.client.post("/v1/grant-batches", params={"dry_run": "true"}, json=doc, headers=h)
        assert dry.status_code == 200 and dry.json()["counts"]["created"] == 1
        assert await s.count("grant") == 0 and await s.count("outbox_message") == 0 and await s.count("grant_batch") == 0
        assert await s.count("idempotency_record") == 0
        real = await s.client.post("/v1/grant-batches", json=doc, headers=h)
        assert real.status_code == 201 and "idempotent-replayed" not in real.headers
        assert [row["outcome"] for row in real.json()["rows"]] == ["created", "rejected"]


async def test_the_scdl_export_validates_and_round_trips():
    async with service() as s:
        h = s.token()
        assert (await s.client.put("/v1/grants/ADEME/FV-1", json=GRANT, headers=h)).status_code == 201
        other = {**GRANT, "object": "Filière bois, local", "beneficiary": {"name": "=Forêt", "siret": None, "rna": "W123456789", "kind": "association"},
                 "scdl": {"notificationUE": True, "pourcentageSubvention": "0.05", "idRAE": "12345"}}
        assert (await s.client.put("/v1/grants/ADEME/FV-2", json=other, headers=h)).status_code == 201
        paid = {"ref": "DP-1", "amount_eur": "1000.00", "paid_on": "2024-09-01"}
        assert (await s.client.post("/v1/grants/ADEME/FV-1/disbursements", json=paid, headers=h)).status_code == 201
        for delimiter in (",", ";"):
            r = await s.client.get("/v1/grants/export.csv", params={"profile": "scdl", "delimiter": delimiter}, headers=h)
            assert r.status_code == 200 and r.text.splitlines()[0].split(delimiter)[:2] == ["nomAttribuant", "idAttribuant"]
            assert table_schema_errors(r.content, SCHEMA, delimiter=delimiter) == []
        scdl = (await s.client.get("/v1/grants/export.csv", params={"profile": "scdl"}, headers=h)).content
        rows = list(csv.DictReader(io.StringIO(scdl.decode())))
        assert {r["idAttribuant"] for r in rows} == {"38529030900454"}  # ADEME's SIRET, given by default
        assert {r["notificationUE"] for r in rows} == {"oui", "non"} and {Decimal(r["pourcentageSubvention"]) for r in rows} == {Decimal("0.05"), 1}
        assert {r["datesPeriodeVersement"] for r in rows} == {"2024-09-01", "2024-06-12"}
        full = (await s.client.get("/v1/grants/export.csv", headers=h)).content
        before = await s.count("outbox_message")
        for data in (scdl, full):
            back = await post_csv(s, h, data)
            assert back.status_code == 201, back.text
            assert [row["outcome"] for row in back.json()["rows"]] == ["unchanged", "unchanged"], back.json()["rows"]
        assert await s.count("outbox_message") == before
        bad = await s.client.get("/v1/grants/export.csv", params={"profile": "other"}, headers=h)
        assert bad.status_code == 422
