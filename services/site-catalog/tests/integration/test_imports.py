"""The CNIG import (HTTP and `ti sites import`) against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from site_catalog.cli import app as sites_cli
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

CSV = {"Content-Type": "text/csv"}
TERRITORIES = (("ti-9303", "93"), ("ti-8402", "84"), ("ti-2705", "27"), ("ti-3201", "32"))


async def all_sites(client: Any) -> list[dict[str, Any]]:
    return (await client.get("/v1/sites", params={"limit": 1000})).json()["items"]


async def test_atomic_import_refuses_a_file_with_bad_rows_then_partial_applies_the_good_ones(
    service: Any, site_file: Callable[..., Any]
) -> None:
    client, writer = service.client, service.writer("anct-import")
    await service.feed_territories(*TERRITORIES)
    generated = site_file()

    refused = await client.post("/v1/sites/imports", content=generated.content, headers={**writer, **CSV})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["report"]["status"] == "refused" and problem["report"]["counts"]["rejected"] == 6
    assert {(e["loc"][1], e["loc"][2]) for e in problem["errors"]} == set(generated.bad_rows.items())
    assert await all_sites(client) == []
    assert (await client.get("/readyz")).json()["outbox_pending"] == 0

    applied = await client.post("/v1/sites/imports?mode=partial", content=generated.content, headers={**writer, **CSV})
    assert applied.status_code == 201, applied.text
    report = applied.json()
    assert report["counts"] == {"created": 49, "updated": 0, "unchanged": 0, "rejected": 6}
    assert report["row_count"] == 55 and report["status"] == "applied"
    rejected = {r["row"]: r["errors"][0]["column"] for r in report["rows"] if r["outcome"] == "rejected"}
    assert rejected == generated.bad_rows
    assert applied.headers["location"] == f"/v1/sites/imports/{report['id']}"
    assert (await client.get(applied.headers["location"])).json() == report

    sites = {s["id"]: s for s in await all_sites(client)}
    assert sorted(sites) == sorted(generated.good_ids)
    first = sites["84007_SITE-ECO_00001"]
    assert first["name"] == "Zone d'activités n°1 de l'Étang - Avignon"
    assert first["region_code"] == "93" and first["territory_id"] == "ti-9303" and first["owner_kind"]
    assert sites["97411_SITE-ECO_00009"]["departement_code"] == "974"
    assert sites["29019_SITE-ECO_00011"]["status"] == "withdrawn"
    assert all(s["area_ha"].count(".") == 1 and len(s["area_ha"].split(".")[1]) == 2 for s in sites.values())

    again = await client.post("/v1/sites/imports?mode=partial", content=generated.content, headers={**writer, **CSV})
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 49, "rejected": 6}

    events = await service.site_events(49)
    assert len(events) == 49
    assert {e["type"] for e in events} == {"fr.anct.ti.site.labelled.v1"}
    assert {e["tiactor"] for e in events} == {"anct-import"}
    assert {e["subject"] for e in events} == set(generated.good_ids)


async def test_import_updates_and_idempotency_key(service: Any, site_file: Callable[..., Any]) -> None:
    client, writer = service.client, service.writer()
    await service.feed_territories(*TERRITORIES)
    clean = site_file(12, bad=False).content
    key = {"Idempotency-Key": "import-2024-06-01"}
    first = await client.post("/v1/sites/imports", content=clean, headers={**writer, **CSV, **key})
    assert first.status_code == 201 and first.json()["counts"]["created"] == 12
    replay = await client.post("/v1/sites/imports", content=clean, headers={**writer, **CSV, **key})
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    reused = await client.post("/v1/sites/imports", content=clean + b"\n", headers={**writer, **CSV, **key})
    assert reused.status_code == 422

    text = clean.decode("latin-1").splitlines()
    cells = text[3].split(";")
    cells[8] = "avant 2030"
    text[3] = ";".join(cells)
    changed = ("\n".join(text) + "\n").encode("latin-1")
    multipart = await client.post(
        "/v1/sites/imports", files={"file": ("sites.csv", changed, "text/csv")}, headers=writer
    )
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["counts"] == {"created": 0, "updated": 1, "unchanged": 11, "rejected": 0}
    updated = next(r for r in multipart.json()["rows"] if r["outcome"] == "updated")
    assert updated["row"] == 4 and updated["version"] == 2
    assert (await client.get(f"/v1/sites/{updated['site_id']}")).json()["maturity"] == "before_2030"
    events = await service.site_events(13)
    assert sorted(e["type"].split(".")[4] for e in events) == ["labelled"] * 12 + ["updated"]


async def test_import_refuses_bad_files_and_tokens(service: Any) -> None:
    client, writer = service.client, service.writer()
    ok_header = "site_id;site_nom;site_comm_insee\nS-1;Nom;13004\n"
    assert (await client.post("/v1/sites/imports", content=b"x", headers=CSV)).status_code == 401
    reader = {"Authorization": writer["Authorization"].replace("Bearer ", "Bearer x")}
    assert (await client.post("/v1/sites/imports", content=b"x", headers={**reader, **CSV})).status_code == 401
    missing = await client.post("/v1/sites/imports", content=ok_header.encode(), headers={**writer, **CSV})
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["header", "site_surf_brute"]
    empty = await client.post("/v1/sites/imports", content=b"", headers={**writer, **CSV})
    assert empty.status_code == 422
    as_json = await client.post("/v1/sites/imports", json={"rows": []}, headers=writer)
    assert as_json.status_code == 415
    bad_mode = await client.post("/v1/sites/imports?mode=sometimes", content=ok_header.encode(), headers={**writer, **CSV})
    assert bad_mode.status_code == 422 and bad_mode.json()["errors"][0]["loc"] == ["query", "mode"]
    no_file = await client.post("/v1/sites/imports", files={"other": ("a.csv", b"x", "text/csv")}, headers=writer)
    assert no_file.status_code == 422
    assert await all_sites(client) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cli_import(service: Any, site_file: Callable[..., Any], tmp_path: Path) -> None:
    await service.feed_territories(*TERRITORIES)
    path = tmp_path / "sites.csv"
    path.write_bytes(site_file().content)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    token = service.writer("cli")["Authorization"].removeprefix("Bearer ")
    url = f"http://127.0.0.1:{port}"
    try:
        refused = await asyncio.to_thread(
            CliRunner().invoke, sites_cli, ["import", str(path), "--url", url, "--token", token]
        )
        assert refused.exit_code == 1, refused.output
        assert "refused (atomic): 55 rows" in refused.output and "row 6 (" in refused.output
        applied = await asyncio.to_thread(
            CliRunner().invoke, sites_cli, ["import", str(path), "--url", url, "--token", token, "--mode", "partial"]
        )
        assert applied.exit_code == 1 and "created 49" in applied.output
        assert len(await all_sites(service.client)) == 49
    finally:
        server.should_exit = True
        await serving


async def test_a_refused_atomic_import_is_replayed_under_its_idempotency_key(service: Any, site_file: Callable[..., Any]) -> None:
    client, writer = service.client, service.writer()
    await service.feed_territories(*TERRITORIES)
    content = site_file().content  # six bad rows
    key = {"Idempotency-Key": "refused-import-1"}
    refused = await client.post("/v1/sites/imports", content=content, headers={**writer, **CSV, **key})
    assert refused.status_code == 422 and refused.json()["report"]["status"] == "refused"
    again = await client.post("/v1/sites/imports", content=content, headers={**writer, **CSV, **key})
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == refused.json() and again.headers["content-type"] == "application/problem+json"
    assert await all_sites(client) == []
