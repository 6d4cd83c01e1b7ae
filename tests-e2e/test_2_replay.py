"""Scenario 2: the recorded stream of scenario 1, replayed into a fresh platform, gives the same indicators;
replayed a second time into the same platform, still the same."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from e2e_expected import assert_indicators
from e2e_harness import ROOT, Infra, Model, Platform, Stats

pytestmark = pytest.mark.integration

TI = str(ROOT / ".venv" / "bin" / "ti")


def _ti(args: list[str], infra: Infra, prefix: str) -> str:
    env = {**os.environ, "TI_BUS": "kafka", "TI_KAFKA_BOOTSTRAP": infra.bootstrap, "TI_TOPIC_PREFIX": prefix}
    done = subprocess.run([TI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_replay_into_a_fresh_platform(
    infra: Infra, platform: Platform, model: Model, stats: Stats, pushed: dict[str, str], tmp_path: Path
) -> None:
    await platform.wait_settled()
    first = sorted(pushed)[0]
    scopes = ["national", "region:84", "region:93", f"territory:{first}"]
    live = {s: await platform.indicators(s) for s in scopes}

    stream = tmp_path / "scenario-1.jsonl"
    await asyncio.to_thread(_ti, ["record", str(stream)], infra, platform.prefix)
    lines = stream.read_text(encoding="utf-8").splitlines()
    assert len(lines) == await platform.events_published() > 0

    fresh = Platform(infra=infra, name=f"replay-{os.getpid()}", services=("reporting",))
    await asyncio.to_thread(fresh.create)
    try:
        await asyncio.to_thread(fresh.start)
        for attempt in (1, 2):
            out = await asyncio.to_thread(_ti, ["replay", str(stream)], infra, fresh.prefix)
            assert f"published {len(lines)} events" in out
            await fresh.wait_settled(180)
            for scope in scopes:
                assert await fresh.indicators(scope) == live[scope], f"replay {attempt}: {scope} differs"
            await assert_indicators(fresh, model, scopes)
        assert await fresh.events_published() == 2 * len(lines)
        assert (await fresh.topic_counts())["ti.dead-letters"] == 0
        stats.scenarios["replay"] = {"events": len(lines), "replayed_twice": True}
    finally:
        await asyncio.to_thread(fresh.destroy)
