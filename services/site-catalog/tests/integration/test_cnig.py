"""CNIG « sites économiques » 1.0.1 inventories as they are published, on PostgreSQL and Kafka."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from openpyxl import Workbook
from site_catalog.imports import CNIG_COLUMNS
from ti_shared.testing import official_schemas_dir, publish_events, territory_event, wait_settled

pytestmark = pytest.mark.integration

CSV = {"Content-Type": "text/csv"}
XLSX = {"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
EXAMPLE = official_schemas_dir() / "cnig-site-eco-1.0.1" / "exemple-valide.csv"
DEFAULTS = {"maturity": "short_term", "labelled_on": "2024-04-15", "workshop_held": "true", "roadmap_delivered": "false"}


async def feed(service: Any) -> None:
    await publish_events(service.platform, [
        territory_event("ti-4401", "44", departement_codes=["08", "51"]),
        territory_event("ti-3205", "32", departement_codes=["80"], communes=["80021", "80024"]),
    ])
    await wait_settled(service.client)


def warnings(report: dict[str, Any], row: int = 0) -> list[str]:
    return [w["msg"] for w in report["rows"][row]["warnings"]]


async def test_the_official_example_imports_with_the_programme_s_defaults(service: Any) -> None:
    client, writer = service.client, service.writer("cnig-import")
    await feed(service)
    data = EXAMPLE.read_bytes()
    bare = await client.post("/v1/sites/imports", content=data, headers={**writer, **CSV})
    assert bare.status_code == 422 and [e["loc"] for e in bare.json()["errors"]] == [
        ["header", "site_maturite"], ["header", "site_date_label"], ["header", "site_atelier"], ["header", "site_feuille_route"]
    ]
    params = {**DEFAULTS, "territory_id": "ti-4401"}
    key = {"Idempotency-Key": "cnig-example"}
    dry = await client.post("/v1/sites/imports", params={**params, "dry_run": "true"}, content=data, headers={**writer, **CSV, **key})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["id"] is None and dry.json()["counts"]["created"] == 1
    assert (await client.get("/v1/sites/80024_SITE-ECO_00001")).status_code == 404

    applied = await client.post("/v1/sites/imports", params=params, content=data, headers={**writer, **CSV, **key})
    assert applied.status_code == 201 and "idempotent-replayed" not in applied.headers, applied.text
    assert applied.headers["ti-event-id"] and "ti-event-id" not in dry.headers  # the import's last event; none written dry
    report = applied.json()
    assert report["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0} and report["warnings"] == []
    assert report["rows"][0]["outcome"] == dry.json()["rows"][0]["outcome"] == "created"
    # the Somme is not among ti-4401's départements: said, not refused
    assert warnings(report)[-1] == "commune 80024 (Somme, region 32) is outside the départements of ti-4401 (08, 51)"
    assert warnings(report) == warnings(dry.json())
    site = (await client.get("/v1/sites/80024_SITE-ECO_00001")).json()
    assert {k: site[k] for k in ("name", "area_ha", "owner_kind", "land_recycling", "maturity", "labelled_on", "region_code")} == {
        "name": "ZAC Les Bornes du Temps", "area_ha": "37.20", "owner_kind": "collectivite", "land_recycling": False,
        "maturity": "short_term", "labelled_on": "2024-04-15", "region_code": "32",
    }
    moved = await client.post("/v1/sites/imports", params={**params, "territory_id": "ti-3205"}, content=data, headers={**writer, **CSV})
    assert moved.json()["rows"][0]["outcome"] == "updated"
    assert not any("outside" in m or "perimeter" in m for m in warnings(moved.json()))
    again = await client.post("/v1/sites/imports", params={**params, "territory_id": "ti-3205"}, content=data, headers={**writer, **CSV})
    assert again.json()["counts"]["unchanged"] == 1
    # a territory whose perimeter is known (ANCT's commune-level list): the commune is checked against it
    await publish_events(service.platform, [territory_event("ti-3206", "32", departement_codes=["80"], communes=["80001", "80021"])])
    await wait_settled(service.client)
    outside = await client.post(
        "/v1/sites/imports", params={**params, "territory_id": "ti-3206", "dry_run": "true"}, content=data, headers={**writer, **CSV}
    )
    assert outside.status_code == 200 and outside.json()["rows"][0]["outcome"] == "updated"
    assert warnings(outside.json())[-1] == "commune 80024 is not in the perimeter of ti-3206 (2 communes)"
    # a file of the programme's columns alone keeps what the inventory gave (a present empty cell clears it)
    short = (
        b"site_id;site_nom;site_comm_insee;site_surf_brute;site_friche;site_proprietaire;pole_id\n"
        b"80024_SITE-ECO_00001;ZAC Les Bornes du Temps;80024;37,2;non;collectivite;80024_POLE-ECO_00162\n"
    )
    kept = await client.post("/v1/sites/imports", params={**params, "territory_id": "ti-3205"}, content=short, headers={**writer, **CSV})
    assert kept.status_code == 201 and kept.json()["rows"][0]["outcome"] == "unchanged", kept.text
    cleared = await client.post(
        "/v1/sites/imports", params={**params, "territory_id": "ti-3205", "dry_run": "true"},
        content=short.replace(b";80024_POLE-ECO_00162", b";"), headers={**writer, **CSV},
    )
    assert cleared.json()["rows"][0]["outcome"] == "updated"
    events = await service.site_events(2)
    assert len(events) == 2
    # the inventory's other values, as written, in GET and in every event
    assert site["cnig"]["pole_id"] == "80024_POLE-ECO_00162" and site["cnig"]["site_moa_type"] == "EPCI"
    assert all(e["data"]["cnig"] == site["cnig"] for e in events)


def inventory() -> list[dict[str, str]]:
    """An inventory in the standard's columns, with every value of its enumerations that says nothing."""
    values = [
        ("zone d'activité économique", "industrielle", "existant et actif", "extension urbaine", "commune", "12,5"),
        ("inconnu", "mixte", "en projet", "renouvellement urbain", "EPCI", "1 250,75"),
        ("autre", "entrepôts, logistique", "inconnu", "mixte", "inconnu", "3"),
        ("sans objet", "sans objet", "sans objet", "sans objet", "sans objet", "0,5"),
        ("établissement économique isolé", "autre", "autre", "autre", "autre", "7.25"),
        ("zone AU à vocation économique", "aéroportuaire, aéronautique", "déclassé", "inconnu", "privé", "40"),
    ]
    rows = []
    for n, (kind, voca, state, evol, moa, surface) in enumerate(values, start=1):
        row = dict.fromkeys(CNIG_COLUMNS, "")
        row.update(
            site_id=f"80021_SITE-ECO_{n:05d}", pole_id=f"80021_POLE-ECO_{n:05d}", site_nom=f"Zone n°{n} d'Amiens-Épagny",
            site_type=kind, site_vocadomi=voca, site_etat=state, site_surf_brute=surface, site_surf_utile="1", site_identif_date="2016-03-26",
            site_actu_date="2023-08-29", site_evol_urba=evol, site_epci_nom="Amiens Métropole", site_epci_siren="248000531",
            site_comm_nom="Amiens", site_comm_insee="80021", site_moa_type=moa, site_geomsurf='{"type": "Polygon", "coordinates": []}',
        )
        rows.append(row)
    return rows


def as_csv(rows: list[dict[str, str]], *, sep: str, encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow([h.upper() for h in rows[0]])
    writer.writerows(r.values() for r in rows)
    return out.getvalue().encode(encoding)


def as_xlsx(rows: list[dict[str, str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(list(rows[0]))
    for r in rows:
        sheet.append(list(r.values()))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_no_value_of_the_standard_loses_a_row_in_any_shape_of_file(service: Any) -> None:
    client, writer = service.client, service.writer("cnig-import")
    await feed(service)
    rows = inventory()
    params = {**DEFAULTS, "territory_id": "ti-3205"}
    shapes = {
        "windows-1252, commas, headers in capitals": (CSV, as_csv(rows, sep=",", encoding="cp1252")),
        "utf-8, semicolons": (CSV, as_csv(rows, sep=";", encoding="utf-8")),
        "xlsx": (XLSX, as_xlsx(rows)),
    }
    outcomes = []
    for shape, (media, data) in shapes.items():
        response = await client.post("/v1/sites/imports", params=params, content=data, headers={**writer, **media})
        assert response.status_code == 201, (shape, response.text[:2000])
        report = response.json()
        assert report["counts"]["rejected"] == 0, shape
        outcomes.append(report["counts"])
        if shape.startswith("windows"):
            assert report["warnings"][0]["msg"] == "the file is not UTF-8: read as Windows-1252 (check its accented letters)"
            by_row = {r["site_id"]: [w["msg"] for w in r["warnings"]] for r in report["rows"]}
            assert by_row["80021_SITE-ECO_00001"] == ["'12,5' read as 12.5"]
            assert "'mixte' does not say whether the site recycles land: stored as unknown (null; give site_friche or ?land_recycling= to say)" in by_row["80021_SITE-ECO_00003"]
            assert "'inconnu' does not name the owner: stored as unknown (null; give site_proprietaire or ?owner_kind= to say)" in by_row["80021_SITE-ECO_00003"]
            assert "'0,5' read as 0.5" in by_row["80021_SITE-ECO_00004"]
            assert all("CNIG 1.0.1" not in m for ms in by_row.values() for m in ms)  # every enumerated value known
    assert outcomes == [{"created": 6, "updated": 0, "unchanged": 0, "rejected": 0}] + [{"created": 0, "updated": 0, "unchanged": 6, "rejected": 0}] * 2
    sites = {s["id"]: s for s in (await client.get("/v1/sites", params={"territory_id": "ti-3205", "limit": 100})).json()["items"]}
    assert sites["80021_SITE-ECO_00002"]["area_ha"] == "1250.75" and sites["80021_SITE-ECO_00002"]["land_recycling"] is True
    assert sites["80021_SITE-ECO_00006"]["owner_kind"] == "entreprise"
    # what the values do not say is unknown, and the values themselves are kept
    unknown = sites["80021_SITE-ECO_00003"]
    assert (unknown["land_recycling"], unknown["owner_kind"]) == (None, None)
    assert {k: unknown["cnig"][k] for k in ("site_type", "site_vocadomi", "site_evol_urba", "site_moa_type")} == {
        "site_type": "autre", "site_vocadomi": "entrepôts, logistique", "site_evol_urba": "mixte", "site_moa_type": "inconnu"
    }
    defaulted = await client.post(
        "/v1/sites/imports", params={**params, "owner_kind": "collectivite", "land_recycling": "true"},
        content=as_csv(rows, sep=";", encoding="utf-8"), headers={**writer, **CSV},
    )
    changed = {r["site_id"] for r in defaulted.json()["rows"] if r["outcome"] == "updated"}
    # the rows whose values say nothing of the owner or of land recycling take the defaults given
    assert changed == {"80021_SITE-ECO_00003", "80021_SITE-ECO_00004", "80021_SITE-ECO_00005", "80021_SITE-ECO_00006"}


async def test_a_default_that_is_no_value_is_refused(service: Any) -> None:
    client, writer = service.client, service.writer("cnig-import")
    data = EXAMPLE.read_bytes()
    bad_date = await client.post("/v1/sites/imports", params={**DEFAULTS, "labelled_on": "15/04/2024"}, content=data, headers={**writer, **CSV})
    assert bad_date.status_code == 422 and bad_date.json()["errors"][0]["loc"] == ["query", "labelled_on"]
    bad_maturity = await client.post("/v1/sites/imports", params={**DEFAULTS, "maturity": "soon"}, content=data, headers={**writer, **CSV})
    assert bad_maturity.status_code == 422 and bad_maturity.json()["errors"][0]["loc"] == ["query", "maturity"]
