"""The platform's benchmarks, each with its baseline run in the same command (``make bench``).

    source var/local.env && .venv/bin/python bench/run.py              # full mode
    BENCH_SCALE=small .venv/bin/python bench/run.py                   # quick mode (< 5 minutes)
    .venv/bin/python bench/run.py --only ingest,freshness              # some sections
    .venv/bin/python bench/run.py --only replay --curve 100000         # one replay size

Writes ``bench/results/<date>[-small].md`` and ``.json`` and ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT, SCALES, Platform, RssSampler, Scale, dumps, machine, scale_from_env
from freshness import measure_freshness
from ingest import measure_ingest
from replay_reads import measure_curve
from writes import markdown_rows as write_rows
from writes import measure_writes
from writes import summary_of as write_summary

RESULTS = ROOT / "bench" / "results"
SECTIONS = ("writes", "ingest", "freshness", "replay")

GOALS = {
    "put_cpu_ms": ("<=", 2.0),
    "put_p50_ms": ("<=", 3.0),
    "put_c8_ratio": (">=", 0.5),
    "ingest_ratio": (">=", 0.25),
    "freshness_p99_ms": ("<=", 500.0),
    "replay_ratio": (">=", 0.5),
    "replay_cost_per_event_growth": ("<=", 1.2),
    "live_cpu_ms_per_batch": ("<=", 3.0),
    "read_ratio": (">=", 0.7),
    "read_p99_ms": ("<=", 20.0),
    "reporting_peak_rss_mb": ("<=", 250.0),
}


def new_platform(run_dir: Path) -> Platform:
    sampler = RssSampler()
    sampler.start()
    return Platform(run_dir=run_dir, sampler=sampler)


async def section(name: str, run_dir: Path, scale: Scale) -> tuple[Any, dict[str, float]]:
    print(f"[bench] {name} ({scale.name}) …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    if name == "replay":
        points = await measure_curve(lambda: new_platform(run_dir), scale)
        peaks = {"reporting": max((p["reporting_peak_rss_mb"] or 0.0) for p in points)}
        result: Any = points
    else:
        platform = new_platform(run_dir)
        try:
            measure = {"writes": measure_writes, "ingest": measure_ingest, "freshness": measure_freshness}[name]
            result = await measure(platform, scale)
        finally:
            await platform.close()
        peaks = dict(platform.sampler.peaks_mb)
    print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return result, peaks


def summary(results: dict[str, Any], memory: dict[str, dict[str, float]], scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "writes" in results:
        out.update(write_summary(results["writes"]))
    if "ingest" in results:
        out["ingest_ratio"] = results["ingest"]["ratio"]
        out["ingest_grants_per_s"] = results["ingest"]["grants_per_s"]
    if "freshness" in results:
        out["freshness_p50_ms"] = results["freshness"]["p50_ms"]
        out["freshness_p99_ms"] = results["freshness"]["p99_ms"]
    if "replay" in results:
        points = results["replay"]
        top = max(points, key=lambda p: p["target_events"])
        out["replay_ratio"] = top["replay"]["ratio"]
        out["replay_events_per_s"] = top["replay"]["events_per_s"]
        out["read_ratio"] = top["reads"]["ratio"]
        out["read_rps"] = top["reads"]["rps"]
        out["read_p99_ms"] = top["reads"]["p99_ms"]
        out["live_cpu_ms_per_batch"] = top["live"]["cpu_ms_per_batch"]
        first = min(points, key=lambda p: p["target_events"])
        # 1.0 = linear replay (same cost per event) whatever the size
        out["replay_cost_per_event_growth"] = round(top["replay"]["us_per_event"] / first["replay"]["us_per_event"], 3)
        out["scale"] = {
            "points": [
                {
                    "events": p["events"],
                    "replay_seconds": p["replay"]["seconds_applying"],
                    "replay_events_per_s": p["replay"]["events_per_s"],
                    "replay_us_per_event": p["replay"]["us_per_event"],
                    "baseline_events_per_s": p["baseline_consumer"]["events_per_s"],
                    "replay_ratio": p["replay"]["ratio"],
                    "projection_ratio": p["replay"]["consumers"]["reporting"]["ratio"],
                    "feed_ratio": p["replay"]["consumers"]["reporting-changes"]["ratio"],
                    "live_cpu_ms_per_batch": p["live"]["cpu_ms_per_batch"],
                    "read_rps": p["reads"]["rps"],
                    "read_p99_ms": p["reads"]["p99_ms"],
                    "read_ratio_without_fast_path": p["reads"]["without_fast_path"]["ratio"],
                    "read_p99_ms_without_fast_path": p["reads"]["without_fast_path"]["p99_ms"],
                    "reporting_peak_rss_mb": p["reporting_peak_rss_mb"],
                }
                for p in sorted(points, key=lambda p: p["target_events"])
            ],
            "replay_cost_per_event_growth": out["replay_cost_per_event_growth"],
            "read_rps_growth": round(top["reads"]["rps"] / first["reads"]["rps"], 3),
        }
    peaks = [m.get("reporting", 0.0) for m in memory.values()]
    if any(peaks):
        out["reporting_peak_rss_mb"] = max(peaks)
    out["memory_peak_rss_mb"] = memory
    out["mode"] = scale.name
    return out


def verdicts(doc: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for key, (op, goal) in GOALS.items():
        if isinstance(doc.get(key), int | float):
            out[key] = doc[key] >= goal if op == ">=" else doc[key] <= goal
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results — {doc['finished_at']} ({doc['mode']} mode)",
        "",
        f"Machine: {doc['machine']['cores']} cores, {doc['machine']['memory_mb']} MB, Python {doc['machine']['python']}, "
        f"load average {doc['machine']['load_average']} at start, {doc['machine_after']['load_average']} at end.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    labels = {
        "put_cpu_ms": "PUT, service CPU per request (the most costly of the four), ms",
        "put_p50_ms": "PUT, sequential p50 (the slowest of the four), ms",
        "put_c8_ratio": "PUT, requests/s at c=8 / bare FastAPI + asyncpg INSERT (the lowest of the four)",
        "put_open_loop_p99_ms": "PUT, p99 of Poisson arrivals at the goal's rate (the slowest of the four), ms",
        "bare_put_open_loop_p99_ms": "bare PUT, p99 of the same arrivals, ms",
        "ingest_grants_per_s": "ingest, grants/s (JSON batches of 5,000)",
        "ingest_ratio": "ingest / PostgreSQL COPY",
        "freshness_p50_ms": "freshness p50 (2xx → indicator), ms",
        "freshness_p99_ms": "freshness p99, ms",
        "replay_events_per_s": "replay into reporting, events/s",
        "replay_ratio": "replay (the process: both consumers) / bare aiokafka consumer",
        "replay_cost_per_event_growth": "replay µs/event, largest / smallest size",
        "live_cpu_ms_per_batch": "reporting CPU per small live batch, ms",
        "read_rps": "indicator reads, requests/s (c=32)",
        "read_ratio": "reads / bare FastAPI endpoint",
        "read_p99_ms": "reads p99, ms",
        "reporting_peak_rss_mb": "reporting peak RSS, MB",
    }
    for key, label in labels.items():
        if key in doc:
            op, goal = GOALS.get(key, ("", None))
            met = doc["goals_met"].get(key)
            lines.append(f"| {label} | {doc[key]} | {op} {goal if goal is not None else ''} | {'' if met is None else ('yes' if met else 'NO')} |")
    if "writes" in doc["details"]:
        lines += write_rows(doc["details"]["writes"])
    if "scale" in doc:
        lines += ["", "Scale curve (replay then reads, reporting on a fresh database):", "",
                  "| events | replay s | replay events/s | µs/event | bare consumer events/s | ratio | projection's consumer alone | change feed's alone | live CPU ms/batch | reads rps | reads p99 ms | reads ratio, p99 ms without the fast path | reporting RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in doc["scale"]["points"]:
            lines.append(
                f"| {p['events']} | {p['replay_seconds']} | {p['replay_events_per_s']} | {p['replay_us_per_event']} | "
                f"{p['baseline_events_per_s']} | {p['replay_ratio']} | {p['projection_ratio']} | {p['feed_ratio']} | "
                f"{p['live_cpu_ms_per_batch']} | {p['read_rps']} | "
                f"{p['read_p99_ms']} | {p['read_ratio_without_fast_path']}, {p['read_p99_ms_without_fast_path']} | {p['reporting_peak_rss_mb']} |"
            )
    lines += ["", "Peak RSS per process and section (MB):", "", "```", json.dumps(doc["memory_peak_rss_mb"], indent=2), "```",
              "", "Details: the `.json` file of the same name.", ""]
    return "\n".join(lines)


def print_logs(run_dir: Path) -> None:
    """The end of each service log of a failed run."""
    for log in sorted(run_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)


async def main(sections: list[str], scale: Scale) -> dict[str, Any]:
    started_machine = machine()
    results: dict[str, Any] = {}
    memory: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
        run_dir = Path(tmp)
        for name in sections:
            try:
                results[name], memory[name] = await section(name, run_dir, scale)
            except Exception:
                print_logs(run_dir)
                raise
    doc = summary(results, memory, scale)
    doc["machine"] = started_machine
    doc["machine_after"] = machine()
    doc["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["goals_met"] = verdicts(doc)
    doc["details"] = results
    return doc


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    parser.add_argument("--scale", choices=sorted(SCALES), default=None, help="full or small (default: BENCH_SCALE, else full)")
    parser.add_argument("--curve", default=None, help="the replay sizes, comma-separated (default: the scale's, e.g. 10000,100000,1000000)")
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    scale = SCALES[args.scale] if args.scale else scale_from_env()
    if args.curve:
        scale = dataclasses.replace(scale, curve=tuple(int(n) for n in args.curve.split(",")))
    doc = asyncio.run(main(sections, scale))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = doc["finished_at"][:10] + ("" if doc["mode"] == "full" else "-" + doc["mode"])
    (RESULTS / f"{stem}.json").write_text(dumps(doc) + "\n", encoding="utf-8")
    (RESULTS / f"{stem}.md").write_text(markdown(doc), encoding="utf-8")
    if set(sections) == set(SECTIONS):
        (RESULTS / "latest.json").write_text(dumps(doc) + "\n", encoding="utf-8")
    print(markdown(doc))


if __name__ == "__main__":
    cli()
