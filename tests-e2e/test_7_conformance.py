"""Scenario 7: `ti conformance` over Kafka against a reporting service running as a process of its own
(fresh database and topic prefix), as an outside tester would run it against any implementation."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest
from e2e_harness import ROOT, Infra, Platform, Stats

pytestmark = pytest.mark.integration

TI = str(ROOT / ".venv" / "bin" / "ti")


async def test_the_conformance_run_passes_over_kafka(infra: Infra, stats: Stats) -> None:
    fresh = Platform(infra=infra, name=f"conformance-{os.getpid()}", services=("reporting",))
    await asyncio.to_thread(fresh.create)
    try:
        await asyncio.to_thread(fresh.start)
        args = [TI, "conformance", "--base", fresh.url("reporting"), "--kafka", infra.bootstrap, "--topic-prefix", fresh.prefix,
                "--seed", "23", "--size", "medium", "--replays", "2"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
        done = await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        summary = done.stdout.splitlines()[-1]
        assert summary.startswith("summary: ") and summary.endswith("— PASS")
        stats.scenarios["conformance"] = {"summary": summary, "first_line": done.stdout.splitlines()[0]}
    finally:
        await asyncio.to_thread(fresh.destroy)
