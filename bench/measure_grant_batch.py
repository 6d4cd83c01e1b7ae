"""Throughput of one 10,000-row grant batch, JSON then SCDL CSV, on PostgreSQL (funding-ledger in-process).

source var/local.env && .venv/bin/python bench/measure_grant_batch.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from funding_ledger.main import create_app
from ti_shared.testing import (
    bearer,
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    running,
    service_settings,
    wait_settled,
)
from ti_shared.types import luhn_complete

CSV_HEADER = (
    "nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;objet;montant;nature;"
    "conditionsVersement;datesPeriodeVersement;idRAE;notificationUE;pourcentageSubvention;dispositifAide;programme;"
    "commune_insee;investment_eur;jobs_forecast;jobs_conditional;contributions;value_chain;beneficiary_kind\n"
)


def siret(n: int) -> str:
    return luhn_complete(luhn_complete(f"{10000000 + n:08d}") + "0001")


def json_items(rows: int) -> list[dict[str, object]]:
    return [
        {
            "operator": "ADEME",
            "operator_ref": f"JSON-{n:05d}",
            "programme": "fonds_vert_ti_te",
            "beneficiary": {"name": f"Entreprise {n}", "siret": siret(n), "rna": None, "kind": "entreprise"},
            "territory_id": None,
            "commune_insee": "71076",
            "action_id": None,
            "object": "Décarbonation de la ligne de production",
            "amount_eur": f"{10000 + n}.50",
            "investment_eur": f"{40000 + 4 * n}.00",
            "decision_date": "2024-06-12",
            "jobs_forecast": n % 20,
            "jobs_conditional": n % 5,
            "contributions": ["climate_mitigation"],
            "value_chain": "economie_circulaire",
            "status": "committed",
        }
        for n in range(rows)
    ]


def csv_body(rows: int) -> bytes:
    lines = [
        f"ADEME;;12/06/2024;CSV-{n:05d};Société {n};{siret(n)};Modernisation de l'outil industriel;{10000 + n:,}".replace(
            ",", " "
        )
        + ",50;aide en numéraire;unique;;;non;0,25;Fonds vert;fonds_vert_ti_te;71076;"
        + f"{40000 + 4 * n},00"
        + ";3;1;circular_economy|water;economie_circulaire;entreprise\n"
        for n in range(rows)
    ]
    return (CSV_HEADER + "".join(lines)).encode("cp1252")


async def main(rows: int) -> None:
    url = await create_database("bench_fl")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    try:
        app = create_app(service_settings("funding-ledger", url, platform))
        async with running(app) as client:
            client.timeout = 300
            headers = bearer(platform, "ademe-bench", "grants:write", operator="ADEME")
            body = {"mode": "atomic", "items": json_items(rows)}
            started = time.perf_counter()
            r = await client.post("/v1/grant-batches", json=body, headers=headers)
            elapsed = time.perf_counter() - started
            assert r.status_code == 201 and r.json()["counts"]["created"] == rows, r.text[:500]
            print(f"JSON batch: {rows} rows in {elapsed:.2f} s → {rows / elapsed:,.0f} rows/s")
            data = csv_body(rows)
            started = time.perf_counter()
            r = await client.post(
                "/v1/grant-batches?mode=atomic", content=data, headers={**headers, "Content-Type": "text/csv"}
            )
            elapsed = time.perf_counter() - started
            assert r.status_code == 201 and r.json()["counts"]["created"] == rows, r.text[:500]
            print(f"CSV batch:  {rows} rows in {elapsed:.2f} s → {rows / elapsed:,.0f} rows/s")
            started = time.perf_counter()
            await wait_settled(client, timeout_s=300)
            print(f"outbox drained to Kafka ({2 * rows} events) in {time.perf_counter() - started:.2f} s more")
    finally:
        await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().rows))
