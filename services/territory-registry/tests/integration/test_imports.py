from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from ti_shared.geo import REGIONS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CSV = {"Content-Type": "text/csv"}


async def post(registry, content: bytes, *, kind: str, mode: str = "atomic", dry_run: str | None = None, **headers: str) -> Any:
    params = {"kind": kind, "mode": mode, **({"dry_run": dry_run} if dry_run else {})}
    return await registry.client.post(
        "/v1/territories/imports", params=params, content=content,
        headers={**registry.writer, **CSV, **headers},
    )


async def all_territories(registry) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await registry.client.get("/v1/territories", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def test_anct_files_import_then_reimport_changes_nothing(
    registry, territories_csv, groupements_csv, territory_rows, groupement_rows
) -> None:
    assert territories_csv.decode("latin-1").startswith("id_ti;lib_ti;code_reg;codes_dep")
    assert len(territory_rows) == 183 and len({r["code_reg"] for r in territory_rows}) == 18
    assert len(groupement_rows) == 630

    first = await post(registry, territories_csv, kind="territories")
    assert first.status_code == 200, first.text[:2000]
    report = first.json()
    assert report["imported"] is True
    assert report["counts"] == {"created": 183, "updated": 0, "unchanged": 0, "rejected": 0}
    assert [r["row"] for r in report["rows"]] == list(range(2, 185))
    assert first.headers["ti-event-id"]  # the import's last event

    epcis = await post(registry, groupements_csv, kind="groupements")
    assert epcis.status_code == 200, epcis.text[:2000]
    assert epcis.json()["counts"] == {"created": 0, "updated": 183, "unchanged": 0, "rejected": 0}
    assert all(r["changed_fields"] == ["epcis"] and r["version"] == 2 for r in epcis.json()["rows"])

    stored = await all_territories(registry)
    assert len(stored) == 183
    assert Counter(t["region_code"] for t in stored).keys() == REGIONS.keys()
    assert sum(len(t["epcis"]) for t in stored) == 630
    by_id = {t["id"]: t for t in stored}
    sample = territory_rows[0]
    territory = by_id[sample["id_ti"]]
    assert territory["name"] == sample["lib_ti"]
    assert territory["departement_codes"] == sample["codes_dep"].split("|")
    day, month, year = sample["date_labellisation"].split("/")
    assert territory["labelled_on"] == f"{year}-{month}-{day}"
    assert territory["project_lead"]["email"] == sample["chef_projet_email"]
    assert territory["project_lead"]["in_post"] is (sample["chef_projet_en_poste"] == "oui")
    guadeloupe = [t for t in stored if t["region_code"] == "01"]
    assert guadeloupe and all(t["id"].startswith("ti-01") and t["departement_codes"] == ["971"] for t in guadeloupe)
    expected_sirens = [g["siren_groupement"] for g in groupement_rows if g["id_ti"] == sample["id_ti"]]
    assert [e["siren"] for e in territory["epcis"]] == expected_sirens
    accented = next(g for g in groupement_rows if "é" in g["lib_groupement"])
    assert any(e["name"] == accented["lib_groupement"] for e in by_id[accented["id_ti"]]["epcis"])

    outbox_before = await registry.outbox_count()
    again = await post(registry, territories_csv, kind="territories")
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 183, "rejected": 0}
    again_epcis = await post(registry, groupements_csv, kind="groupements")
    assert again_epcis.json()["counts"]["unchanged"] == 183
    assert await registry.outbox_count() == outbox_before

    events = await registry.events(at_least=366)
    assert Counter(e["type"] for e in events) == {
        "fr.anct.ti.territory.registered.v1": 183,
        "fr.anct.ti.territory.updated.v1": 183,
    }
    last = {e["subject"]: e for e in events}
    assert last[sample["id_ti"]]["data"] == territory
    assert {e["tiactor"] for e in events} == {"anct-import"}


async def test_atomic_rejects_everything_and_partial_keeps_the_good_rows(registry) -> None:
    text = (
        "id_ti;lib_ti;code_reg;codes_dep;date_labellisation\n"
        "ti-9451;Ajaccio;94;2A;2023-11-09\n"
        "ti-9452;Bastia;94;2B;2023-13-09\n"
        "ti-9453;Porto-Vecchio;94;2A;\n"
    ).encode("latin-1")
    outbox_before = await registry.outbox_count()
    atomic = await post(registry, text, kind="territories")
    assert atomic.status_code == 422 and atomic.headers["content-type"] == "application/problem+json"
    problem = atomic.json()
    assert problem["errors"] == [{"loc": ["row", 3, "date_labellisation"], "msg": "'2023-13-09' is not a date of the calendar (1900–2199)"}]
    assert problem["report"]["imported"] is False
    assert [r["outcome"] for r in problem["report"]["rows"]] == ["created", "rejected", "created"]
    assert await registry.outbox_count() == outbox_before
    assert (await registry.client.get("/v1/territories/ti-9451")).status_code == 404

    partial = await post(registry, text, kind="territories", mode="partial")
    assert partial.status_code == 200
    assert partial.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert (await registry.client.get("/v1/territories/ti-9451")).json()["version"] == 1
    assert (await registry.client.get("/v1/territories/ti-9452")).status_code == 404
    assert await registry.outbox_count() == outbox_before + 2


async def test_idempotency_key_replays_the_first_response(registry) -> None:
    text = b"id_ti;lib_ti;code_reg;codes_dep\nti-0651;Mayotte industrielle;06;976\n"
    first = await post(registry, text, kind="territories", **{"Idempotency-Key": "import-mayotte-1"})
    assert first.status_code == 200 and first.json()["counts"]["created"] == 1
    outbox_after_first = await registry.outbox_count()
    renamed = await registry.client.put(
        "/v1/territories/ti-0651", json={"name": "Renamed", "region_code": "06", "departement_codes": ["976"]},
        headers=registry.writer,
    )
    assert renamed.json()["version"] == 2
    replay = await post(registry, text, kind="territories", **{"Idempotency-Key": "import-mayotte-1"})
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert (await registry.client.get("/v1/territories/ti-0651")).json()["version"] == 2
    assert await registry.outbox_count() == outbox_after_first + 1
    reused = await post(registry, text.replace(b"industrielle", b"du Sud"), kind="territories", **{"Idempotency-Key": "import-mayotte-1"})
    assert reused.status_code == 422 and reused.headers["content-type"] == "application/problem+json"


async def test_multipart_upload_of_a_comma_separated_utf8_file(registry) -> None:
    text = "id_ti,lib_ti,code_reg,codes_dep\nti-0451,Réunion Est,04,974\n".encode()
    response = await registry.client.post(
        "/v1/territories/imports", params={"kind": "territories"},
        files={"file": ("liste-ti-2024.csv", text, "text/csv")}, headers=registry.writer,
    )
    assert response.status_code == 200, response.text
    assert (await registry.client.get("/v1/territories/ti-0451")).json()["name"] == "Réunion Est"
    keyed = {**registry.writer, "Idempotency-Key": "multipart-1"}
    upload = {"file": ("liste-ti-2024.csv", text.replace(b"Est", b"Nord"), "text/csv")}
    first = await registry.client.post("/v1/territories/imports", files=upload, headers=keyed)
    outbox_after_first = await registry.outbox_count()
    retry = await registry.client.post("/v1/territories/imports", files=upload, headers=keyed)
    assert first.json()["counts"]["updated"] == 1
    assert retry.headers["idempotent-replayed"] == "true" and retry.json() == first.json()
    assert await registry.outbox_count() == outbox_after_first
    missing = await registry.client.post(
        "/v1/territories/imports", files={"other": ("x.csv", text, "text/csv")}, headers=registry.writer
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["body", "file"]


async def test_a_refused_atomic_import_is_replayed_under_its_idempotency_key(registry) -> None:
    text = b"id_ti;lib_ti;code_reg;codes_dep\nti-9461;Corte;94;2B\nti-9462;Calvi;99;2B\n"
    key = {"Idempotency-Key": "refused-import-1"}
    outbox_before = await registry.outbox_count()
    refused = await post(registry, text, kind="territories", **key)
    assert refused.status_code == 422 and refused.json()["report"]["imported"] is False
    again = await post(registry, text, kind="territories", **key)
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == refused.json() and again.headers["content-type"] == "application/problem+json"
    assert await registry.outbox_count() == outbox_before
    assert (await registry.client.get("/v1/territories/ti-9461")).status_code == 404
