"""The reporting process's CPU per small batch once caught up (live mode) alone: the live part of
``replay_reads`` (a stream replayed, then small batches published, once with what the replay left in
memory, once after a restart), without the replay's timing and the reads.

    source var/local.env && .venv/bin/python bench/live_mode.py [--events 10000] [--baseline DIR] [--py-spy DIR [--gil]]

``--baseline DIR``: the same measurement first with the services' code of another checkout of the
repository (``DIR``, e.g. ``git archive main | tar -x -C DIR``; its ``shared/src`` and
``services/*/src`` put first on the services' ``PYTHONPATH``), then with this one, in the same
command: the ratio is this code's CPU per batch over the baseline's. ``--py-spy DIR``: each live part
recorded by py-spy (speedscope JSON of the reporting process, 200 Hz); with ``--gil``, only the samples
holding the GIL (closer to the CPU: a thread waiting in the event loop's poll or a socket call has
released it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import ROOT, Platform, RssSampler, publish_raw
from replay_reads import LIVE_BATCHES, live_cpu, live_updates, stream_sizes
from ti_shared.streams import generate_stream


def _pythonpath(tree: Path | None) -> str | None:
    if tree is None:
        return None
    paths = [tree / "shared" / "src", *sorted((tree / "services").glob("*/src"))]
    return os.pathsep.join(str(p) for p in paths)


def _record(pid: int, spy: Path, label: str, gil: bool) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "speedscope",
         "--output", str(spy / f"{label}.json"), "--nonblocking", *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _measured(
    platform: Platform, updates: list[list[dict[str, Any]]], spy: Path | None, label: str, gil: bool
) -> dict[str, Any]:
    recorder = None
    if spy is not None:
        recorder = _record(platform.services["reporting"].proc.pid, spy, label, gil)
        await asyncio.sleep(1.0)
    try:
        return await live_cpu(platform, updates)
    finally:
        if recorder is not None:
            recorder.send_signal(2)
            recorder.wait(30)


async def measure(events_target: int, tree: Path | None, spy: Path | None, label: str, gil: bool = False) -> dict[str, Any]:
    run_dir = ROOT / "var" / "bench-live"
    run_dir.mkdir(parents=True, exist_ok=True)
    sampler = RssSampler()
    sampler.start()
    platform = Platform(run_dir=run_dir, sampler=sampler)
    path = _pythonpath(tree)
    env = {"PYTHONPATH": path} if path else None
    try:
        settings = await platform.prepare(["reporting"])
        events = generate_stream(2024, stream_sizes(events_target))
        await publish_raw(settings, events)
        updates = live_updates(events, 2 * LIVE_BATCHES)
        platform.start("reporting", env=env)
        await platform.wait_ready()
        await platform.wait_settled()
        result: dict[str, Any] = {"events": len(events), "code": str(tree or ROOT)}
        result["after_replay"] = await _measured(platform, updates[:LIVE_BATCHES], spy, f"{label}-after-replay", gil)
        platform.stop("reporting")
        platform.start("reporting", env=env)
        await platform.wait_ready()
        result["after_restart"] = await _measured(platform, updates[LIVE_BATCHES:], spy, f"{label}-after-restart", gil)
        result["cpu_ms_per_batch"] = max(result[k]["cpu_ms_per_batch"] for k in ("after_replay", "after_restart"))
        return result
    finally:
        await platform.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, measured first")
    parser.add_argument("--py-spy", type=Path, default=None, help="record each live part with py-spy into this folder")
    parser.add_argument("--gil", action="store_true", help="py-spy: only the samples holding the GIL")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.baseline is not None:
        out["baseline"] = await measure(args.events, args.baseline.resolve(), args.py_spy, "baseline", args.gil)
        print(f"[bench] live, baseline: {out['baseline']}", file=sys.stderr, flush=True)
    out["this"] = await measure(args.events, None, args.py_spy, "this", args.gil)
    print(f"[bench] live: {out['this']}", file=sys.stderr, flush=True)
    if "baseline" in out:
        out["ratio"] = round(out["this"]["cpu_ms_per_batch"] / out["baseline"]["cpu_ms_per_batch"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
