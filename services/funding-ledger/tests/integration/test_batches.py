import asyncio
from decimal import Decimal

import pytest
from funding_ledger.schemas import GrantBatch

from .helpers import GRANT, service

pytestmark = pytest.mark.integration


def item(ref: str, operator: str = "ADEME", **changes):
    return {"operator": operator, "operator_ref": ref, **GRANT, **changes}


async def test_partial_and_atomic_json_batches():
    async with service() as s:
        c, h = s.client, s.token()
        assert (await c.put("/v1/grants/ADEME/OLD-1", json=GRANT, headers=h)).status_code == 201
        assert (await c.put("/v1/grants/ADEME/OLD-2", json=GRANT, headers=h)).status_code == 201
        partial = {
            "mode": "partial",
            "items": [
                item("N-1"),
                item("OLD-1"),
                item("OLD-2", amount_eur="900000.00"),
                item("N-2", commune_insee="20004"),
                item("N-3", operator="BPI", programme="rebond_industriel"),
                item("N-4", territory_id="ti-9999"),
                "not an object",
            ],
        }
        r = await c.post("/v1/grant-batches", json=partial, headers={**h, "Idempotency-Key": "b-1"})
        assert r.status_code == 201, r.text
        batch = r.json()
        assert GrantBatch.model_validate(batch).model_dump(mode="json") == batch
        assert batch["status"] == "completed_with_errors" and batch["mode"] == "partial"
        assert [row["outcome"] for row in batch["rows"]] == [
            "created",
            "unchanged",
            "updated",
            "rejected",
            "rejected",
            "rejected",
            "rejected",
        ]
        assert batch["counts"] == {"total": 7, "created": 1, "updated": 1, "unchanged": 1, "rejected": 4, "warnings": 0}
        assert batch["rows"][3]["errors"][0]["loc"] == ["commune_insee"]
        assert batch["rows"][4]["errors"] == [{"loc": ["operator"], "msg": "This token may not act for operator 'BPI'"}]
        assert batch["rows"][5]["errors"][0]["loc"] == ["territory_id"]
        assert r.headers["location"] == f"/v1/grant-batches/{batch['id']}"
        replay = await c.post("/v1/grant-batches", json=partial, headers={**h, "Idempotency-Key": "b-1"})
        assert replay.status_code == 201 and replay.json() == batch
        # the id of the batch's last event, answered again by the replay (a reader waits for it: after=)
        assert r.headers["ti-event-id"] and replay.headers["ti-event-id"] == r.headers["ti-event-id"]
        assert (await c.get(f"/v1/grant-batches/{batch['id']}", headers=h)).json() == batch
        assert (await c.get(f"/v1/grant-batches/{batch['id']}", headers=s.token("BPI"))).status_code == 403
        # the batch follows its operator: the sender's sub acting for another operator may not read it
        assert (await c.get(f"/v1/grant-batches/{batch['id']}", headers=s.token("BPI", sub="ademe-push"))).status_code == 403
        assert (await c.get(f"/v1/grant-batches/{batch['id']}", headers=s.token("ADEME", sub="ademe-other"))).status_code == 200
        assert (await c.get(f"/v1/grant-batches/{batch['id']}", headers=s.admin)).status_code == 200
        assert (await c.get("/v1/grant-batches/nope", headers=h)).status_code == 404
        assert (await c.get("/v1/grants/ADEME/OLD-2", headers=h)).json()["amount_eur"] == "900000.00"

        before = (await s.count("grant"), await s.count("outbox_message"), await s.count("grant_ledger_entry"))
        atomic = {"mode": "atomic", "items": [item("A-1"), item("A-2", amount_eur="-5")]}
        r = await c.post("/v1/grant-batches", json=atomic, headers=h)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert GrantBatch.model_validate(problem["batch"]).model_dump(mode="json") == problem["batch"]
        assert problem["errors"] == [{"loc": ["items", 1, "amount_eur"], "msg": problem["errors"][0]["msg"]}]
        assert problem["batch"]["status"] == "rejected" and problem["batch"]["rows"][0]["outcome"] == "created"
        stored = (await c.get(r.headers["location"], headers=h)).json()
        assert stored["status"] == "rejected"
        assert (await s.count("grant"), await s.count("outbox_message"), await s.count("grant_ledger_entry")) == before

        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": [item("A-1"), item("A-2")]}, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "completed" and r.json()["counts"]["created"] == 2

        for bad in (
            {"items": []},
            {"items": [item("X")], "mode": "all"},
            {"items": [item("X")], "extra": 1},
            {"mode": "partial"},
        ):
            r = await c.post("/v1/grant-batches", json=bad, headers=h)
            assert r.status_code == 422, bad
        r = await c.post("/v1/grant-batches", json={"items": [{}] * 10_001}, headers=h)
        assert r.status_code == 413
        assert (await c.post("/v1/grant-batches", json=partial)).status_code == 401
        assert (
            await c.post("/v1/grant-batches", content=b"x", headers={**h, "Content-Type": "application/xml"})
        ).status_code == 415

        events = await s.grant_events(6)
        assert sorted((e["subject"], e["type"].split(".")[4], e["entityversion"]) for e in events) == [
            ("ADEME/A-1", "committed", 1),
            ("ADEME/A-2", "committed", 1),
            ("ADEME/N-1", "committed", 1),
            ("ADEME/OLD-1", "committed", 1),
            ("ADEME/OLD-2", "amended", 2),
            ("ADEME/OLD-2", "committed", 1),
        ]


async def test_concurrent_identical_batches_have_one_effect():
    async with service() as s:
        c, h = s.client, {**s.token(), "Idempotency-Key": "same"}
        body = {"mode": "partial", "items": [item(f"C-{n}") for n in range(50)]}
        results = await asyncio.gather(*(c.post("/v1/grant-batches", json=body, headers=h) for _ in range(2)))
        assert sorted(r.status_code for r in results) in ([201, 201], [201, 409])
        assert (
            await s.count("grant") == 50 and await s.count("outbox_message") == 50 and await s.count("grant_batch") == 1
        )


SCDL = (
    "nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;rnaBeneficiaire;objet;"
    "montant;nature;conditionsVersement;datesPeriodeVersement;idRAE;notificationUE;pourcentageSubvention;dispositifAide;"
    "programme;territory_id;commune_insee;investment_eur;jobs_forecast;jobs_conditional;contributions;value_chain;beneficiary_kind;"
    "operator_ref\n"
    "ADEME;;12/06/2024;FV-2024-0042;Société Aéro Métal;73282932000074;;Recyclage de métaux stratégiques;1 500 000,00;"
    "aide en numéraire;échelonné;2024-09-01_2025-06-30;;non;0,3125;Fonds vert;fonds_vert_ti_te;ti-2705;71076;4 800 000,00;12;6;"
    "climate_mitigation|circular_economy;economie_circulaire;entreprise;FV-2024-0042\n"
    "ADEME;;2024-05-02;FV-2024-0043;Association Forêt Durable;;W123456789;Filière bois local;250 000,50;aide en numéraire;"
    "unique;2024-07-01;;non;0,9;Fonds vert;fonds_vert_ti_te;;2A004;500 000;;;biodiversity;bioeconomie;association;FV-2024-0043\n"
    "ADEME;;2024-05-02;FV-2024-0044;Mauvais SIRET;73282932000075;;Objet;10 000;aide en numéraire;unique;;;non;1;;fonds_vert_ti_te;;71076;;;;;;entreprise;FV-2024-0044\n"
    "ADEME;;2024-05-02;FV-2024-0045;Montant illisible;73282932000074;;Objet;dix mille;aide en numéraire;unique;;;non;1;;fonds_vert_ti_te;;71076;;;;;;entreprise;FV-2024-0045\n"
)


async def test_csv_import_of_a_latin1_scdl_file_with_bad_rows():
    async with service() as s:
        c, h = s.client, s.token()
        data = SCDL.encode("cp1252")
        r = await c.post("/v1/grant-batches?mode=atomic", content=data, headers={**h, "Content-Type": "text/csv"})
        assert r.status_code == 422
        assert await s.count("grant") == 0
        r = await c.post(
            "/v1/grant-batches", content=data, headers={**h, "Content-Type": "text/csv; charset=windows-1252"}
        )
        assert r.status_code == 201, r.text
        assert GrantBatch.model_validate(r.json()).model_dump(mode="json") == r.json()
        rows = r.json()["rows"]
        assert [row["outcome"] for row in rows] == ["created", "created", "rejected", "rejected"]
        assert {"loc": ["pourcentageSubvention"], "msg": "'0,9' read as 0.90"} in rows[1]["warnings"]
        assert rows[2]["errors"][0]["loc"] == ["idBeneficiaire"]
        assert rows[3]["errors"][0]["loc"] == ["montant"]
        g = (await c.get("/v1/grants/ADEME/FV-2024-0042", headers=h)).json()
        assert (
            g["beneficiary"]["name"] == "Société Aéro Métal"
            and g["amount_eur"] == "1500000.00"
            and g["decision_date"] == "2024-06-12"
        )
        assert g["territory_id"] == "ti-2705" and g["contributions"] == ["climate_mitigation", "circular_economy"]
        other = (await c.get("/v1/grants/ADEME/FV-2024-0043", headers=h)).json()
        assert (
            other["amount_eur"] == "250000.50"
            and other["beneficiary"]["rna"] == "W123456789"
            and other["commune_insee"] == "2A004"
        )
        again = await c.post("/v1/grant-batches", content=data, headers={**h, "Content-Type": "text/csv"})
        assert [row["outcome"] for row in again.json()["rows"]] == ["unchanged", "unchanged", "rejected", "rejected"]
        assert (
            await c.post("/v1/grant-batches?mode=atomic", json={"items": [item("Z")]}, headers=h)
        ).status_code == 422
        assert (
            await c.post("/v1/grant-batches", content=b"", headers={**h, "Content-Type": "text/csv"})
        ).status_code == 422
        assert len(await s.grant_events(2)) == 2


async def test_a_batch_row_is_refused_with_the_message_of_the_same_put():
    async with service() as s:
        c, h = s.client, s.token()
        cases = [
            ("BPI", {"programme": "rebond_industriel"}),
            ("ADEME", {"programme": "rebond_industriel"}),
            ("ADEME", {"programme": "inconnu", "territory_id": "ti-9999"}),
            ("ADEME", {"decision_date": "2099-01-01"}),
        ]
        r = await c.post("/v1/grant-batches", json={"items": [item(f"R-{n}", op, **ch) for n, (op, ch) in enumerate(cases)]}, headers=h)
        assert r.status_code == 422 and r.json()["batch"]["counts"]["rejected"] == len(cases)  # wrote nothing
        for row, (n, (op, changes)) in zip(r.json()["batch"]["rows"], enumerate(cases), strict=True):
            put = await c.put(f"/v1/grants/{op}/R-{n}", json={**GRANT, **changes}, headers=h)
            problem = put.json()
            if put.status_code == 403:
                assert row["errors"] == [{"loc": row["errors"][0]["loc"], "msg": problem["detail"]}]
            else:
                assert put.status_code == 422
                assert row["errors"] == [{"loc": e["loc"][1:], "msg": e["msg"]} for e in problem["errors"]]
        assert await s.count("grant") == 0 and await s.count("outbox_message") == 0


async def test_control_totals_through_the_route_json_and_csv():
    async with service() as s:
        c, h = s.client, s.token()
        own = [{"programme": "fonds_vert_ti_te", "count": 2, "amount_eur": "1"}]
        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": [item("CT-1"), item("CT-2")], "control": own}, headers=h)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["batch"]["control"]["status"] == "mismatch" and r.json()["errors"][0]["loc"] == ["control", "fonds_vert_ti_te"]
        assert await s.count("grant") == 0 and await s.count("outbox_message") == 0
        total = str(2 * Decimal(GRANT["amount_eur"]))
        own = [{"programme": "fonds_vert_ti_te", "count": 2, "amount_eur": total}]
        r = await c.post("/v1/grant-batches", json={"mode": "atomic", "items": [item("CT-1"), item("CT-2")], "control": own}, headers=h)
        assert r.status_code == 201 and r.json()["control"]["status"] == "match", r.text
        data = (
            "operator_ref,nomBeneficiaire,idBeneficiaire,objet,montant,dateConvention,programme,commune_insee,beneficiary_kind\n"
            'CT-3,Aéro,73282932000074,Objet,"1 000,50",12/06/2024,fonds_vert_ti_te,71076,entreprise\n'
        ).encode()
        csv_headers = {**h, "Content-Type": "text/csv"}
        r = await c.post("/v1/grant-batches", params={"control": "fonds_vert_ti_te:1:1000.50"}, content=data, headers=csv_headers)
        assert r.status_code == 201 and r.json()["control"]["programmes"][0]["status"] == "match", r.text
        r = await c.post("/v1/grant-batches", params={"control": "fonds_vert_ti_te:1"}, content=data, headers=csv_headers)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "control"]
        r = await c.post("/v1/grant-batches", params={"control": "fonds_vert_ti_te:1:1"}, json={"items": [item("CT-4")]}, headers=h)
        assert r.status_code == 422
        assert await s.count("grant") == 3
