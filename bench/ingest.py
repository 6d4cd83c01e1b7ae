"""1. Partner push ingest: grants through ``POST /v1/grant-batches`` (JSON) against PostgreSQL ``COPY``.

The service runs as its own uvicorn process on a fresh database. Its territory replica is fed first
(territory events published to Kafka), so every row is checked as in production. The baseline
copies the same rows into a bare table of the same columns with asyncpg ``copy_records_to_table``,
one ``COPY`` per batch, in a fresh database of the same server (median of ``COPY_RUNS`` runs).

Alone, side by side with another checkout's code (its ``shared/src`` and ``services/*/src`` first on
the service's and relay's ``PYTHONPATH``), the two measured in turn ``--runs`` times each:

    source var/local.env && .venv/bin/python bench/ingest.py [--grants 10000] [--batch-size 5000]
        [--baseline DIR] [--runs 2] [--py-spy DIR]

``--py-spy DIR``: the service process recorded by py-spy while the batches are posted (speedscope
JSON, 200 Hz, one file per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from common import SCALES, BackendCpu, Platform, RssSampler, Scale, cpu_seconds
from ti_shared.streams import grant_payloads
from ti_shared.testing import bearer, create_database, drop_database, publish_events, territory_event

#: the COPY baseline is short, hence noisy: its median over a few runs is the reference
COPY_RUNS = 3
TERRITORIES = {f"ti-{r}{n:02d}": r for r in ("84", "27", "44", "93", "11") for n in range(1, 5)}

BARE_TABLE = """
CREATE TABLE bare_grant (
  operator varchar(16), operator_ref varchar(64), programme varchar(64), beneficiary_name varchar(256),
  beneficiary_siret varchar(14), beneficiary_rna varchar(10), beneficiary_kind varchar(32), territory_id varchar(16),
  commune_insee varchar(5), action_id varchar(64), object varchar(256), amount_eur numeric(14,2),
  investment_eur numeric(14,2), decision_date date, jobs_forecast integer, jobs_conditional integer,
  contributions jsonb, value_chain varchar(32), status varchar(16), disbursed_eur numeric(14,2),
  disbursements jsonb, version integer, created_at timestamptz, updated_at timestamptz,
  PRIMARY KEY (operator, operator_ref))
"""


def batch_items(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` grant items of ADEME (distinct references), drawn by the shared e2e generator."""
    grants = grant_payloads(random.Random(seed), "ADEME", TERRITORIES, count, tag="BENCH")
    return [{"operator": op, "operator_ref": ref, **body} for (op, ref), body in grants.items()]


def bare_record(item: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    b = item["beneficiary"]
    return (
        item["operator"], item["operator_ref"], item["programme"], b["name"], b["siret"], b["rna"], b["kind"],
        item["territory_id"], item["commune_insee"], item["action_id"], item["object"], Decimal(item["amount_eur"]),
        Decimal(item["investment_eur"]) if item["investment_eur"] is not None else None,
        date.fromisoformat(item["decision_date"]), item["jobs_forecast"], item["jobs_conditional"],
        json.dumps(item["contributions"]), item["value_chain"], item["status"], Decimal("0.00"), "[]", 1, now, now,
    )


async def copy_baseline(items: list[dict[str, Any]], batch_size: int) -> dict[str, float]:
    url = await create_database("bench_copy")
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(BARE_TABLE)
        columns = [
            "operator", "operator_ref", "programme", "beneficiary_name", "beneficiary_siret", "beneficiary_rna",
            "beneficiary_kind", "territory_id", "commune_insee", "action_id", "object", "amount_eur", "investment_eur",
            "decision_date", "jobs_forecast", "jobs_conditional", "contributions", "value_chain", "status",
            "disbursed_eur", "disbursements", "version", "created_at", "updated_at",
        ]
        started = time.perf_counter()
        for i in range(0, len(items), batch_size):
            now = datetime.now(UTC)
            records = [bare_record(item, now) for item in items[i : i + batch_size]]
            async with conn.transaction():
                await conn.copy_records_to_table("bare_grant", records=records, columns=columns)
        elapsed = time.perf_counter() - started
        copied = await conn.fetchval("SELECT count(*) FROM bare_grant")
        assert copied == len(items), copied
    finally:
        await conn.close()
        await drop_database(url)
    return {"rows": len(items), "seconds": round(elapsed, 3), "rows_per_s": round(len(items) / elapsed, 1)}


async def measure_ingest(
    platform: Platform, scale: Scale, *, env: dict[str, str] | None = None, spy: Path | None = None
) -> dict[str, Any]:
    """``env``: the service's and relay's environment added (another checkout's ``PYTHONPATH``);
    ``spy``: where py-spy records the service process while the batches are posted."""
    settings = await platform.prepare(["funding-ledger"])
    await publish_events(settings, [territory_event(tid, region) for tid, region in TERRITORIES.items()])
    service = platform.start("funding-ledger", env=env)
    await platform.wait_ready()
    await platform.wait_settled()
    items = batch_items(scale.ingest_grants)
    headers = bearer(settings, "ademe-bench", "grants:write", operator="ADEME")
    batch_seconds: list[float] = []
    async with httpx.AsyncClient(base_url=service.url, timeout=600) as client:
        warm = batch_items(200, seed=99)
        for n, item in enumerate(warm):
            item["operator_ref"] = f"WARM-{n:04d}"
        r = await client.post("/v1/grant-batches", json={"mode": "atomic", "items": warm}, headers=headers)
        assert r.status_code == 201, r.text[:500]
        await platform.wait_settled()
        bodies = [
            json.dumps({"mode": "atomic", "items": items[i : i + scale.batch_size]}).encode()
            for i in range(0, len(items), scale.batch_size)
        ]
        database = platform.databases["funding-ledger"].rsplit("/", 1)[1]
        backends = BackendCpu(database)
        recorder = _record(service.proc.pid, spy) if spy is not None else None
        if recorder is not None:
            await asyncio.sleep(1.0)
        cpu0, relay0 = cpu_seconds([service.proc.pid]), cpu_seconds(service.pids[1:])
        backends.start()
        started = time.perf_counter()
        for body in bodies:
            t0 = time.perf_counter()
            r = await client.post(
                "/v1/grant-batches", content=body, headers={**headers, "Content-Type": "application/json"}
            )
            batch_seconds.append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text[:500]
            counts = r.json()["counts"]
            assert counts["created"] == counts["total"], counts
        elapsed = time.perf_counter() - started
        service_cpu = cpu_seconds([service.proc.pid]) - cpu0
        pg_cpu = backends.stop()
        if recorder is not None:
            recorder.send_signal(2)
            recorder.wait(60)
        drained = await platform.wait_settled()
        relay_cpu = cpu_seconds(service.pids[1:]) - relay0
    platform.stop("funding-ledger")
    runs = sorted([await copy_baseline(items, scale.batch_size) for _ in range(COPY_RUNS)], key=lambda r: r["rows_per_s"])
    median = runs[len(runs) // 2]
    baseline: dict[str, float | list[float]] = {**median, "runs_rows_per_s": [r["rows_per_s"] for r in runs]}
    rate = len(items) / elapsed
    return {
        "grants": len(items),
        "batch_size": scale.batch_size,
        "seconds": round(elapsed, 3),
        "grants_per_s": round(rate, 1),
        "batch_seconds": [round(s, 3) for s in batch_seconds],
        "outbox_drained_after_s": round(drained, 3),
        # CPU per 1,000 grants: the service's process while the batches were posted, its relay until the
        # outbox drained, the PostgreSQL processes of its database while the batches were posted
        "service_cpu_ms_per_1000": round(service_cpu / len(items) * 1e6, 1),
        "relay_cpu_ms_per_1000": round(relay_cpu / len(items) * 1e6, 1),
        "postgres_cpu_ms_per_1000": round(pg_cpu / len(items) * 1e6, 1),
        "baseline_copy": baseline,
        "ratio": round(rate / median["rows_per_s"], 4),
    }


def _record(pid: int, output: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "speedscope", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _pythonpath(tree: Path) -> str:
    paths = [tree / "shared" / "src", *sorted((tree / "services").glob("*/src"))]
    return os.pathsep.join(str(p) for p in paths)


async def _one(scale: Scale, tree: Path | None, spy: Path | None) -> dict[str, Any]:
    sampler = RssSampler()
    sampler.start()
    platform = Platform(run_dir=Path(tempfile.mkdtemp(prefix="bench-ingest-")), sampler=sampler)
    try:
        return await measure_ingest(platform, scale, env={"PYTHONPATH": _pythonpath(tree)} if tree else None, spy=spy)
    finally:
        await platform.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=SCALES["small"].ingest_grants)
    parser.add_argument("--batch-size", type=int, default=SCALES["small"].batch_size)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, measured before this one in each round")
    parser.add_argument("--runs", type=int, default=1, help="rounds (each: the baseline, then this checkout)")
    parser.add_argument("--code", type=Path, default=None, help="measure this checkout's code instead of this one's")
    parser.add_argument("--py-spy", type=Path, default=None, help="record the service with py-spy into this folder")
    args = parser.parse_args()
    scale = Scale("ingest", args.grants, args.batch_size, 0, 0, 0, (), 0)
    codes = ([("baseline", args.baseline.resolve())] if args.baseline else []) + [("this", args.code.resolve() if args.code else None)]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in codes}
    for n in range(args.runs):
        for label, tree in codes:
            spy = args.py_spy / f"{label}-{n + 1}.json" if args.py_spy else None
            r = await _one(scale, tree, spy)
            runs[label].append(r)
            print(
                f"[bench] ingest {label} run {n + 1}: ratio {r['ratio']}, {r['grants_per_s']} grants/s "
                f"(COPY {r['baseline_copy']['rows_per_s']}), service CPU {r['service_cpu_ms_per_1000']} ms per 1,000 grants, "
                f"relay {r['relay_cpu_ms_per_1000']}, PostgreSQL {r['postgres_cpu_ms_per_1000']}",
                file=sys.stderr, flush=True,
            )
    summary = {
        label: {key: [r[key] for r in rs] for key in ("ratio", "grants_per_s", "service_cpu_ms_per_1000", "postgres_cpu_ms_per_1000")}
        for label, rs in runs.items()
    }
    print(json.dumps({"summary": summary, "runs": runs}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
