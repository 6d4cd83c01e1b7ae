import asyncio

import pytest

from .helpers import GRANT, service

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


async def test_grant_lifecycle_versions_events_and_ledger():
    async with service() as s:
        c, h = s.client, s.token()
        r = await c.put("/v1/grants/ADEME/FV-2024-0042", json=GRANT, headers=h)
        assert r.status_code == 201, r.text
        assert r.headers["etag"] == 'W/"1"'
        created = r.json()
        assert created["id"] == "ADEME/FV-2024-0042" and created["version"] == 1 and created["disbursed_eur"] == "0.00"
        assert created["updated_at"].endswith("Z")
        r = await c.get("/v1/grants/ADEME/FV-2024-0042", headers=h)
        assert r.json() == created
        assert (
            await c.get("/v1/grants/ADEME/FV-2024-0042", headers={**h, "If-None-Match": 'W/"1"'})
        ).status_code == 304
        r = await c.put("/v1/grants/ADEME/FV-2024-0042", json={**GRANT, "amount_eur": "1500000"}, headers=h)
        assert (r.status_code, r.json()["version"]) == (200, 1)
        r = await c.put(
            "/v1/grants/ADEME/FV-2024-0042",
            json={**GRANT, "amount_eur": "1200000.00"},
            headers={**h, "If-Match": 'W/"7"'},
        )
        assert r.status_code == 412
        r = await c.put(
            "/v1/grants/ADEME/FV-2024-0042",
            json={**GRANT, "amount_eur": "1200000.00"},
            headers={**h, "If-Match": 'W/"1"'},
        )
        assert (r.status_code, r.json()["version"], r.json()["amount_eur"]) == (200, 2, "1200000.00")
        r = await c.post(
            "/v1/grants/ADEME/FV-2024-0042/disbursements",
            json={"ref": "DP-1", "amount_eur": "200000", "paid_on": "2024-09-01"},
            headers=h,
        )
        assert (r.status_code, r.json()["version"], r.json()["disbursed_eur"]) == (201, 3, "200000.00")
        r = await c.put("/v1/grants/ADEME/FV-2024-0042", json={**GRANT, "amount_eur": "100000.00"}, headers=h)
        assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
        r = await c.put(
            "/v1/grants/ADEME/FV-2024-0042",
            json={**GRANT, "amount_eur": "1200000.00", "status": "cancelled"},
            headers=h,
        )
        assert (r.status_code, r.json()["status"], r.json()["version"]) == (200, "cancelled", 4)
        r = await c.post(
            "/v1/grants/ADEME/FV-2024-0042/disbursements",
            json={"ref": "DP-2", "amount_eur": "1", "paid_on": "2024-09-02"},
            headers=h,
        )
        assert r.status_code == 409
        r = await c.put("/v1/grants/ADEME/FV-2024-0042", json={**GRANT, "amount_eur": "1200000.00"}, headers=h)
        assert (r.status_code, r.json()["status"], r.json()["version"]) == (200, "committed", 5)

        ledger = (await c.get("/v1/grants/ADEME/FV-2024-0042/ledger", headers=h)).json()
        assert [e["kind"] for e in ledger["entries"]] == [
            "commitment",
            "amendment",
            "disbursement",
            "cancellation",
            "amendment",
        ]
        assert [e["committed_eur"] for e in ledger["entries"]] == [
            "1500000.00",
            "1200000.00",
            "1200000.00",
            "200000.00",
            "1200000.00",
        ]
        assert ledger["disbursed_eur"] == "200000.00" and ledger["committed_eur"] == "1200000.00"

        events = await s.grant_events(5)
        assert [e["type"].split(".")[4] for e in events] == [
            "committed",
            "amended",
            "disbursed",
            "cancelled",
            "amended",
        ]
        assert [e["entityversion"] for e in events] == [1, 2, 3, 4, 5]
        assert all(e["subject"] == "ADEME/FV-2024-0042" and e["tiactor"] == "ademe-push" for e in events)
        assert events[0]["data"] == created
        last = (await c.get("/v1/grants/ADEME/FV-2024-0042", headers=h)).json()
        assert events[-1]["data"] == last


async def test_bad_inputs_are_refused_and_change_nothing():
    async with service() as s:
        c, h = s.client, s.token()
        bad = [
            ({**GRANT, "amount_eur": "0"}, 422, ["body", "amount_eur"]),
            (
                {**GRANT, "beneficiary": {**GRANT["beneficiary"], "siret": "73282932000075"}},
                422,
                ["body", "beneficiary", "siret"],
            ),
            ({**GRANT, "beneficiary": {"name": "X", "kind": "entreprise"}}, 422, ["body", "beneficiary", "siret"]),
            ({**GRANT, "commune_insee": "20004"}, 422, ["body", "commune_insee"]),
            ({**GRANT, "territory_id": "ti-9999"}, 422, ["body", "territory_id"]),
            ({**GRANT, "programme": "inconnu"}, 422, ["body", "programme"]),
            ({**GRANT, "decision_date": "2999-01-01"}, 422, ["body", "decision_date"]),
            ({**GRANT, "jobs_conditional": 13}, 422, ["body", "jobs_conditional"]),
            ({**GRANT, "contributions": ["water", "water"]}, 422, ["body", "contributions"]),
            ({**GRANT, "extra": True}, 422, ["body", "extra"]),
            ({**GRANT, "programme": "rebond_industriel"}, 403, None),
        ]
        for body, status, loc in bad:
            r = await c.put("/v1/grants/ADEME/FV-1", json=body, headers=h)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"] == PROBLEM
            if loc:
                assert loc in [e["loc"] for e in r.json()["errors"]], r.json()
        assert (await c.put("/v1/grants/ADEME/FV-1", json=GRANT)).status_code == 401
        assert (await c.put("/v1/grants/ADEME/FV-1", json=GRANT, headers=s.token("BPI"))).status_code == 403
        assert (
            await c.put("/v1/grants/ADEME/FV-1", json=GRANT, headers=s.token("ADEME", "sites:write"))
        ).status_code == 403
        assert (await c.put("/v1/grants/ADEME/FV%2F1", json=GRANT, headers=h)).status_code in (404, 422)
        assert (
            await c.put("/v1/grants/ADEME/FV-1", content=b"a;b", headers={**h, "Content-Type": "text/csv"})
        ).status_code == 415
        assert (
            await c.put("/v1/grants/ADEME/FV-1", content=b"{", headers={**h, "Content-Type": "application/json"})
        ).status_code == 422
        r = await c.put("/v1/grants/ZZZ/FV-1", json=GRANT, headers=s.admin)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["path", "operator"]
        assert (
            await s.count("grant") == 0
            and await s.count("outbox_message") == 0
            and await s.count("grant_ledger_entry") == 0
        )


async def test_disbursements_are_idempotent_per_ref_and_per_key():
    async with service() as s:
        c, h = s.client, s.token()
        assert (
            await c.put("/v1/grants/ADEME/FV-1", json={**GRANT, "amount_eur": "1000"}, headers=h)
        ).status_code == 201
        url = "/v1/grants/ADEME/FV-1/disbursements"
        pay = {"ref": "DP-1", "amount_eur": "400", "paid_on": "2024-09-01"}
        r = await c.post(url, json=pay, headers=h)
        assert (r.status_code, r.json()["version"]) == (201, 2)
        r = await c.post(url, json={**pay, "amount_eur": "400.00"}, headers=h)
        assert (r.status_code, r.json()["version"], r.json()["disbursed_eur"]) == (200, 2, "400.00")
        assert (await c.post(url, json={**pay, "amount_eur": "401"}, headers=h)).status_code == 409
        r = await c.post(url, json={"ref": "DP-2", "amount_eur": "600.01", "paid_on": "2024-09-01"}, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "amount_eur"]
        assert (
            await c.post(url, json={"ref": "DP-2", "amount_eur": "1", "paid_on": "2999-01-01"}, headers=h)
        ).status_code == 422
        assert (await c.post("/v1/grants/ADEME/NOPE/disbursements", json=pay, headers=h)).status_code == 404
        assert (await c.post(url, json=pay, headers=s.token("BPI"))).status_code == 403

        keyed = {**h, "Idempotency-Key": "pay-2"}
        second = {"ref": "DP-2", "amount_eur": "100", "paid_on": "2024-09-02"}
        first = await c.post(url, json=second, headers=keyed)
        again = await c.post(url, json=second, headers=keyed)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
        r = await c.post(url, json={**second, "ref": "DP-3"}, headers=keyed)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM

        racing = {**h, "Idempotency-Key": "pay-3"}
        third = {"ref": "DP-3", "amount_eur": "50", "paid_on": "2024-09-03"}
        results = await asyncio.gather(*(c.post(url, json=third, headers=racing) for _ in range(2)))
        statuses = sorted(r.status_code for r in results)
        assert statuses in ([201, 201], [201, 409]), statuses
        winners = [r.json() for r in results if r.status_code == 201]
        assert all(w == winners[0] for w in winners)
        plain = await asyncio.gather(*(c.post(url, json={**third, "ref": "DP-4"}, headers=h) for _ in range(2)))
        assert sorted(r.status_code for r in plain) in ([200, 201], [201, 409])

        g = (await c.get("/v1/grants/ADEME/FV-1", headers=h)).json()
        assert g["disbursed_eur"] == "600.00" and [d["ref"] for d in g["disbursements"]] == [
            "DP-1",
            "DP-2",
            "DP-3",
            "DP-4",
        ]
        events = await s.grant_events(5)
        assert [e["type"].split(".")[4] for e in events] == [
            "committed",
            "disbursed",
            "disbursed",
            "disbursed",
            "disbursed",
        ]
        assert await s.count("grant_ledger_entry") == 5


async def test_reads_are_isolated_per_operator_listed_and_exported():
    async with service() as s:
        c = s.client
        for n in range(3):
            assert (await c.put(f"/v1/grants/ADEME/A-{n}", json=GRANT, headers=s.token())).status_code == 201
        bpi = {**GRANT, "programme": "rebond_industriel", "territory_id": "ti-8402", "object": '=HYPERLINK("x")'}
        assert (await c.put("/v1/grants/BPI/B-1", json=bpi, headers=s.token("BPI"))).status_code == 201
        assert (await c.get("/v1/grants/ADEME/A-0")).status_code == 401
        assert (await c.get("/v1/grants/ADEME/A-0", headers=s.token("BPI"))).status_code == 403
        assert (await c.get("/v1/grants/ADEME/A-0/ledger", headers=s.token("BPI"))).status_code == 403
        assert (await c.get("/v1/grants?operator=ADEME", headers=s.token("BPI"))).status_code == 403
        own = (await c.get("/v1/grants", headers=s.token("BPI"))).json()
        assert [g["id"] for g in own["items"]] == ["BPI/B-1"] and own["next_cursor"] is None
        page1 = (await c.get("/v1/grants?limit=2", headers=s.admin)).json()
        page2 = (await c.get(f"/v1/grants?limit=2&cursor={page1['next_cursor']}", headers=s.admin)).json()
        assert [g["id"] for g in page1["items"] + page2["items"]] == ["ADEME/A-0", "ADEME/A-1", "ADEME/A-2", "BPI/B-1"]
        assert page2["next_cursor"] is None
        assert [g["id"] for g in (await c.get("/v1/grants?territory_id=ti-8402", headers=s.admin)).json()["items"]] == [
            "BPI/B-1"
        ]
        assert (await c.get("/v1/grants?status=paid", headers=s.admin)).status_code == 422
        assert (await c.get("/v1/grants?cursor=!!", headers=s.admin)).status_code == 422
        assert (await c.get("/v1/grants/ADEME/A-9", headers=s.admin)).status_code == 404

        r = await c.get("/v1/grants/export.csv", headers=s.token("BPI"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        lines = r.text.splitlines()
        assert len(lines) == 2 and lines[0].startswith("nomAttribuant;idAttribuant;dateConvention")
        assert "\"'=HYPERLINK" in lines[1] and ";BPI;B-1;rebond_industriel;" in lines[1]
        everything = (await c.get("/v1/grants/export.csv", headers=s.admin)).text.splitlines()
        assert len(everything) == 5


async def test_catalogue_is_public_and_admin_managed():
    async with service(territories=()) as s:
        c = s.client
        operators = (await c.get("/v1/operators")).json()["items"]
        assert [o["code"] for o in operators] == ["ADEME", "ANCT", "BDT", "BPI"]
        programmes = {p["code"]: p["operators"] for p in (await c.get("/v1/programmes")).json()["items"]}
        assert programmes == {
            "fonds_vert_ti_te": ["ADEME"],
            "rebond_industriel": ["BDT", "BPI"],
            "ingenierie_anct": ["ANCT"],
            "ingenierie_rebond": ["ANCT", "BDT"],
            "cofinancement_chef_projet": ["ANCT"],
            "fabriques_prospectives": ["ANCT", "BDT"],
        }
        assert (
            await c.put("/v1/operators/CEREMA", json={"label": "Cerema"}, headers=s.token("ANCT"))
        ).status_code == 403
        assert (await c.put("/v1/operators/CEREMA", json={"label": "Cerema"}, headers=s.admin)).status_code == 201
        assert (await c.put("/v1/operators/CEREMA", json={"label": "Cerema"}, headers=s.admin)).status_code == 200
        r = await c.put(
            "/v1/programmes/etudes_cerema", json={"label": "Études", "operators": ["NOPE"]}, headers=s.admin
        )
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "operators", 0]
        r = await c.put(
            "/v1/programmes/etudes_cerema", json={"label": "Études", "operators": ["CEREMA"]}, headers=s.admin
        )
        assert r.status_code == 201 and r.json()["operators"] == ["CEREMA"]
        body = {**GRANT, "programme": "etudes_cerema", "territory_id": None}
        assert (await c.put("/v1/grants/CEREMA/C-1", json=body, headers=s.token("CEREMA"))).status_code == 201


async def test_admin_effective_at_dates_the_change_and_its_event():
    async with service() as s:
        c = s.client
        h = {**s.admin, "TI-Effective-At": "2024-06-12T09:30:00Z"}
        r = await c.put("/v1/grants/ADEME/FV-1", json=GRANT, headers=h)
        assert r.status_code == 201 and r.json()["updated_at"] == "2024-06-12T09:30:00Z"
        early = {**s.admin, "TI-Effective-At": "2024-01-01T00:00:00Z"}
        assert (await c.put("/v1/grants/ADEME/FV-1", json={**GRANT, "object": "x"}, headers=early)).status_code == 409
        assert (
            await c.put(
                "/v1/grants/ADEME/FV-1",
                json={**GRANT, "object": "x"},
                headers={**s.admin, "TI-Effective-At": "2999-01-01T00:00:00Z"},
            )
        ).status_code == 422
        assert (
            await c.put(
                "/v1/grants/ADEME/FV-1",
                json={**GRANT, "object": "x"},
                headers={**s.token(), "TI-Effective-At": "2024-07-01T00:00:00Z"},
            )
        ).status_code == 403
        [event] = await s.grant_events(1)
        assert event["time"] == "2024-06-12T09:30:00Z"


async def test_a_disbursement_refused_under_an_idempotency_key_is_replayed_a_conflict_is_not():
    async with service() as s:
        c, h = s.client, s.token()
        assert (await c.put("/v1/grants/ADEME/FV-9", json={**GRANT, "amount_eur": "1000"}, headers=h)).status_code == 201
        url = "/v1/grants/ADEME/FV-9/disbursements"
        too_much = {"ref": "DP-1", "amount_eur": "1000.01", "paid_on": "2024-09-01"}
        keyed = {**h, "Idempotency-Key": "too-much"}
        refused = await c.post(url, json=too_much, headers=keyed)
        assert refused.status_code == 422 and "idempotent-replayed" not in refused.headers
        again = await c.post(url, json=too_much, headers=keyed)
        assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true" and again.json() == refused.json()
        assert (await c.post(url, json={**too_much, "amount_eur": "10"}, headers=h)).status_code == 201
        conflicting = {**too_much, "amount_eur": "20"}  # DP-1 was recorded with other values: 409
        keyed = {**h, "Idempotency-Key": "conflict"}
        first = await c.post(url, json=conflicting, headers=keyed)
        second = await c.post(url, json=conflicting, headers=keyed)
        assert first.status_code == second.status_code == 409 and "idempotent-replayed" not in second.headers
        assert (await c.get("/v1/grants/ADEME/FV-9", headers=h)).json()["disbursed_eur"] == "10.00"


async def test_a_disbursement_needs_the_operator_to_still_run_the_grants_programme():
    async with service() as s:
        c, h = s.client, s.token()
        assert (await c.put("/v1/grants/ADEME/FV-1", json={**GRANT, "amount_eur": "1000"}, headers=h)).status_code == 201
        url = "/v1/grants/ADEME/FV-1/disbursements"
        pay = {"ref": "DP-1", "amount_eur": "100", "paid_on": "2024-09-01"}
        assert (await c.post(url, json=pay, headers=s.token("BPI"))).status_code == 403
        assert (await c.post("/v1/grants/ADEME/NOPE/disbursements", json=pay, headers=s.token("BPI"))).status_code == 403
        moved = {"label": "Fonds vert – volet Territoires d'industrie", "operators": ["ANCT"]}
        assert (await c.put("/v1/programmes/fonds_vert_ti_te", json=moved, headers=s.admin)).status_code == 200
        put = await c.put("/v1/grants/ADEME/FV-1", json={**GRANT, "amount_eur": "900"}, headers=h)
        paid = await c.post(url, json=pay, headers={**h, "Idempotency-Key": "after-the-move"})
        assert put.status_code == paid.status_code == 403 and paid.headers["content-type"] == PROBLEM
        assert paid.json()["detail"] == put.json()["detail"] == "Operator 'ADEME' does not run programme 'fonds_vert_ti_te'"
        g = (await c.get("/v1/grants/ADEME/FV-1", headers=h)).json()
        assert (g["version"], g["disbursed_eur"]) == (1, "0.00") and await s.count("grant_ledger_entry") == 1
        r = await c.post(url, json=pay, headers=s.admin)
        assert (r.status_code, r.json()["version"], r.json()["disbursed_eur"]) == (201, 2, "100.00")
