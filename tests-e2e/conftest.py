"""Session fixtures of the end-to-end suite: the infrastructure, one isolated distributed platform, the
model of what the suite wrote, and the run report (printed and written to var/e2e-report.json)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_harness import ROOT, Infra, Model, Platform, Stats, api_of
from e2e_writes import partner_push

STATS = Stats()
_PLATFORMS: list[Platform] = []
_REPORT: dict[str, Any] = {}
_STARTED = time.monotonic()


def own_infra() -> bool:
    return os.environ.get("TI_E2E_INFRA", "own") != "shared"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    infra = Infra(own=own_infra())
    infra.start()
    try:
        yield infra
    finally:
        infra.stop()


@pytest.fixture(scope="session")
def stats() -> Stats:
    return STATS


@pytest.fixture(scope="session")
def platform(infra: Infra) -> Iterator[Platform]:
    """The five services as separate uvicorn processes (deploy/local/services.sh), fresh databases and topics."""
    p = Platform(infra=infra, name=f"platform-{os.getpid()}")
    p.create()
    started = time.monotonic()
    try:
        p.start()
    except Exception:
        p.destroy()
        raise
    _REPORT["platform"] = {"ports": p.ports, "topic_prefix": p.prefix, "start_s": round(time.monotonic() - started, 1), "notes": p.notes}
    _PLATFORMS.append(p)
    try:
        yield p
    finally:
        try:
            _REPORT.update(asyncio.run(_final_counts(p)))
        finally:
            p.destroy()


async def _final_counts(p: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        counts = await p.topic_counts()
        out["topic_messages"] = {t.removeprefix(p.prefix): n for t, n in counts.items()}
        out["events_published"] = sum(n for t, n in counts.items() if not t.endswith("dead-letters"))
        out["dead_letters"] = counts.get("ti.dead-letters", 0)
    except Exception as exc:
        out["topic_counts_error"] = repr(exc)
    return out


@pytest.fixture(scope="session")
def model() -> Model:
    """Everything the suite wrote to the session platform (final states), shared by the scenarios."""
    return Model()


@pytest.fixture(scope="session")
def pushed(platform: Platform, model: Model, stats: Stats) -> Iterator[dict[str, str]]:
    """Scenario 1's traffic, run once per session (the replay scenario records its stream)."""
    async def _go() -> dict[str, str]:
        async with api_of(platform, stats) as api:
            territories = await partner_push(api, platform, model)
        await stats.settle(platform, "partner_push")
        return territories

    yield asyncio.run(_go())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "platform" not in _REPORT:
        return  # no platform was started (e.g. only the generator tests ran)
    report = {
        "exit_status": int(exitstatus),
        "duration_s": round(time.monotonic() - _STARTED, 1),
        "write_requests": STATS.requests,
        "accepted_writes": STATS.accepted_writes,
        "catch_up_after_last_write_s": STATS.catch_up_s,
        "scenarios": STATS.scenarios,
        **_REPORT,
    }
    path = ROOT / "var" / "e2e-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "end-to-end report (var/e2e-report.json)")
        reporter.write_line(json.dumps(report, indent=2, sort_keys=True))
