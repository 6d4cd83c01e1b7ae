"""ANCT's commune-level list (``insee_com, lib_com, id_ti, lib_ti``) imported on PostgreSQL and Kafka."""

from __future__ import annotations

import io
import random
from collections import defaultdict

import pytest
from openpyxl import Workbook
from ti_shared.geo import REGIONS

from ..conftest import cog_communes
from .test_imports import all_territories, post

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

COLUMNS = ["insee_com", "lib_com", "id_ti", "lib_ti"]


def csv_of(rows: list[dict[str, str]], header: list[str], *, sep: str, encoding: str, bom: bool = False) -> bytes:
    """A CSV as a spreadsheet saves it: ``header`` written as given, the values of ``COLUMNS`` under it."""
    lines = [sep.join(header)] + [sep.join(r[c] for c in COLUMNS[: len(header)]) for r in rows]
    return ("\ufeff" if bom else "").encode(encoding) + ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_of(rows: list[dict[str, str]], header: list[str]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append([row[c] for c in COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def perimeters(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        out[row["id_ti"]].append(row["insee_com"])
    return {i: sorted(c) for i, c in out.items()}


async def test_anct_commune_list_gives_one_territory_per_id_from_the_cog(registry, commune_list_rows) -> None:
    rows = commune_list_rows
    assert len(rows) > 9000 and len({r["id_ti"] for r in rows}) == 183
    cog = {c["code"]: c for c in cog_communes()}
    data = csv_of(rows, COLUMNS, sep=";", encoding="cp1252")
    # a dry run first: the whole report, nothing written, no event
    outbox_before = await registry.outbox_count()
    dry = await post(registry, data, kind="territories", dry_run="true")
    assert dry.status_code == 200, dry.text[:2000]
    assert dry.json()["dry_run"] is True and dry.json()["layout"] == "communes"
    assert dry.json()["counts"] == {"created": 183, "updated": 0, "unchanged": 0, "rejected": 0}
    assert await registry.outbox_count() == outbox_before and await all_territories(registry) == []

    first = await post(registry, data, kind="territories")
    assert first.status_code == 200, first.text[:2000]
    report = first.json()
    assert report["counts"] == {"created": 183, "updated": 0, "unchanged": 0, "rejected": 0}
    assert dry.json()["rows"] == report["rows"]  # the dry run said exactly what the import did
    assert report["warnings"] == [{"loc": ["file"], "msg": "the file is not UTF-8: read as Windows-1252 (check its accented letters)"}]
    assert all(r["warnings"] == [] for r in report["rows"])
    assert sum(len(r["rows"]) for r in report["rows"]) == len(rows)

    stored = {t["id"]: t for t in await all_territories(registry)}
    expected = perimeters(rows)
    assert stored.keys() == expected.keys()
    for territory_id, communes in expected.items():
        territory = stored[territory_id]
        assert territory["communes"] == communes
        # what the COG itself says of these communes: their départements, and the territory's region
        assert territory["departement_codes"] == sorted({cog[c]["departement_code"] for c in communes})
        assert {cog[c]["region_code"] for c in communes} == {territory["region_code"]} == {territory_id[3:5]}
    assert {t["region_code"] for t in stored.values()} == REGIONS.keys()
    sample = rows[0]
    assert stored[sample["id_ti"]]["name"] == sample["lib_ti"]
    events = await registry.events(sample["id_ti"], at_least=1)
    assert events[-1]["data"]["communes"] == expected[sample["id_ti"]] == stored[sample["id_ti"]]["communes"]

    outbox_after = await registry.outbox_count()
    again = await post(registry, data, kind="territories")
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 183, "rejected": 0}
    assert await registry.outbox_count() == outbox_after


async def test_every_shape_of_the_file_reads_the_same(registry) -> None:
    rng = random.Random(16)
    base = [c for c in cog_communes() if c["departement_code"] in ("2A", "2B", "971")]
    rows = [
        {"insee_com": c["code"], "lib_com": c["name"], "id_ti": {"971": "ti-0111"}.get(c["departement_code"], "ti-9411"),
         "lib_ti": "Basse-Terre et Grande-Terre" if c["departement_code"] == "971" else "Corse d'industrie"}
        for c in base
    ]
    rng.shuffle(rows)
    expected = perimeters(rows)
    shapes = {
        "utf-8 with BOM, commas": ("text/csv", csv_of(rows, COLUMNS, sep=",", encoding="utf-8", bom=True)),
        "windows-1252, semicolons, headers in capitals": (
            "text/csv", csv_of(rows, ["INSEE_COM", "LIB_COM", "ID_TI", "LIB_TI"], sep=";", encoding="cp1252")
        ),
        "tabs, spaced headers": ("text/csv", csv_of(rows, ["insee com", "lib com", "Id TI", "Lib TI"], sep="\t", encoding="utf-8")),
        "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx_of(rows, COLUMNS)),
    }
    first = None
    for shape, (media, data) in shapes.items():
        response = await registry.client.post(
            "/v1/territories/imports", params={"kind": "territories"}, content=data,
            headers={**registry.writer, "Content-Type": media},
        )
        assert response.status_code == 200, (shape, response.text[:1000])
        counts = response.json()["counts"]
        assert counts == ({"created": 2, "updated": 0, "unchanged": 0, "rejected": 0} if first is None
                          else {"created": 0, "updated": 0, "unchanged": 2, "rejected": 0}), shape
        first = first or shape
    for territory_id, communes in expected.items():
        territory = (await registry.client.get(f"/v1/territories/{territory_id}")).json()
        assert territory["communes"] == communes and territory["version"] == 1
    corsica = (await registry.client.get("/v1/territories/ti-9411")).json()
    assert corsica["departement_codes"] == ["2A", "2B"] and corsica["name"] == "Corse d'industrie"


async def test_a_known_territory_keeps_its_other_fields_and_a_put_keeps_its_perimeter(registry) -> None:
    body = {
        "name": "Vallée de la Bresle", "region_code": "28", "departement_codes": ["76"], "phase": "temps-2",
        "epcis": [{"siren": "200070464", "name": "CC des Villes Sœurs"}], "labelled_on": "2019-01-15",
    }
    put = await registry.client.put("/v1/territories/ti-2891", json=body, headers=registry.writer)
    assert put.status_code == 201, put.text
    text = "id_ti;insee_com;lib_ti\nti-2891;76255;Vallée de la Bresle\nti-2891;80001;Vallée de la Bresle\n"
    response = await post(registry, text.encode(), kind="territories")
    assert response.status_code == 200, response.text
    [row] = response.json()["rows"]
    assert (row["outcome"], row["version"]) == ("updated", 2)
    assert row["changed_fields"] == ["departement_codes", "communes"]
    assert [w["msg"] for w in row["warnings"]] == [
        "communes of Somme (80, region 32) are in the perimeter of ti-2891, whose region is 28: kept (a territory may span regions)"
    ]
    territory = (await registry.client.get("/v1/territories/ti-2891")).json()
    assert territory["epcis"] == body["epcis"] and territory["phase"] == "temps-2" and territory["labelled_on"] == "2019-01-15"
    assert territory["communes"] == ["76255", "80001"] and territory["departement_codes"] == ["76", "80"]
    # a PUT from a client that does not know the perimeter keeps it; [] clears it
    body["departement_codes"] = ["76", "80"]
    renamed = await registry.client.put("/v1/territories/ti-2891", json={**body, "name": "Bresle"}, headers=registry.writer)
    assert renamed.json()["communes"] == ["76255", "80001"] and renamed.json()["version"] == 3
    cleared = await registry.client.put("/v1/territories/ti-2891", json={**body, "communes": []}, headers=registry.writer)
    assert cleared.json()["communes"] == [] and cleared.json()["version"] == 4
    history = (await registry.client.get("/v1/territories/ti-2891/history")).json()["items"]
    assert [v["changed_fields"] for v in history[1:]] == [["departement_codes", "communes"], ["name"], ["name", "communes"]]


async def test_atomic_refuses_a_list_with_an_unreadable_territory_and_partial_imports_the_rest(registry) -> None:
    text = (
        "insee_com;lib_com;id_ti;lib_ti;code_reg\n"
        "59350;Lille;ti-3221;Métropole lilloise;32\n"
        "59350;Lille;ti-9921;Nulle part;99\n"
        "62041;Arras;ti-3222;Artois;32\n"
        "620;Arras;ti-3222;Artois;32\n"
    ).encode()
    outbox_before = await registry.outbox_count()
    atomic = await post(registry, text, kind="territories", **{"Idempotency-Key": "communes-atomic"})
    assert atomic.status_code == 422 and atomic.headers["content-type"] == "application/problem+json"
    problem = atomic.json()
    assert [e["loc"] for e in problem["errors"]] == [["row", 3, "id_ti"], ["row", 5, "insee_com"]]
    assert problem["report"]["warnings"] == [
        {"loc": ["header", "code_reg"], "msg": "column 'code_reg' is not a column of ANCT's commune-level list: its values are not imported"}
    ]
    assert [r["outcome"] for r in problem["report"]["rows"]] == ["created", "rejected", "rejected"]
    assert await registry.outbox_count() == outbox_before

    dry = await post(registry, text, kind="territories", mode="partial", dry_run="true", **{"Idempotency-Key": "communes-partial"})
    assert dry.status_code == 200 and dry.json()["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "rejected": 2}
    assert (await registry.client.get("/v1/territories/ti-3221")).status_code == 404
    partial = await post(registry, text, kind="territories", mode="partial", **{"Idempotency-Key": "communes-partial"})
    assert partial.status_code == 200 and "idempotent-replayed" not in partial.headers
    assert partial.json()["counts"] == dry.json()["counts"] and partial.json()["dry_run"] is False
    assert (await registry.client.get("/v1/territories/ti-3221")).json()["communes"] == ["59350"]
    assert (await registry.client.get("/v1/territories/ti-3222")).status_code == 404
    assert await registry.outbox_count() == outbox_before + 1


async def test_a_file_without_the_columns_of_the_list_is_refused(registry) -> None:
    response = await post(registry, b"insee_com;lib_com\n01053;Bourg-en-Bresse\n", kind="territories")
    assert response.status_code == 422
    assert [e["msg"] for e in response.json()["errors"]] == [
        "column id_ti is missing", "column lib_ti is missing (also read as: nom_ti)"
    ]
