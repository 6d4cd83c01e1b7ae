"""Scenario 4 (continued): schemathesis against each service's OpenAPI with an admin token, in its
examples, fuzzing and stateful phases (the stateful one follows the documents' links: a write, then
the operations on what it wrote) — no 5xx, and every status, media type, header and body as the
document says; afterwards the platform still settles and counts consistently."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from e2e_harness import ROOT, SERVICES, Platform, Stats

pytestmark = pytest.mark.integration

EXAMPLES = os.environ.get("TI_E2E_SCHEMATHESIS_EXAMPLES", "20")
#: the response is what the document says: status, media type, headers, body
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"


def _schemathesis(platform: Platform, service: str, report: Path) -> subprocess.CompletedProcess[str]:
    token = platform.token("schemathesis", "admin")
    cmd = [
        str(ROOT / ".venv" / "bin" / "schemathesis"), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", platform.url(service) + "/openapi.json",
        "--checks", CHECKS,
        "--max-examples", EXAMPLES, "--phases", "examples,fuzzing,stateful", "--seed", "20241126",
        "--workers", "1", "--no-shrink", "--no-color", "--generation-database", "none",
        "--request-timeout", "30", "--header", f"Authorization: Bearer {token}",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    hooks = {"SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_hooks.py"))}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env={**os.environ, **hooks})


@pytest.mark.parametrize("service", list(SERVICES))
async def test_schemathesis_finds_no_server_error(platform: Platform, stats: Stats, pushed: dict[str, str], service: str, tmp_path: Path) -> None:
    done = await asyncio.to_thread(_schemathesis, platform, service, tmp_path / "junit.xml")
    stats.scenarios.setdefault("schemathesis", {})[service] = {"exit_code": done.returncode}
    assert done.returncode == 0, f"schemathesis found failures on {service}:\n{done.stdout[-12000:]}\n{done.stderr[-2000:]}"


async def test_platform_consistent_after_fuzzing(platform: Platform, stats: Stats, pushed: dict[str, str]) -> None:
    """Whatever the fuzzers wrote, reporting counts what the registry says: the active territories."""
    stats.last_write_at = time.monotonic()  # the fuzzers' writes ended with the last schemathesis run
    async with httpx.AsyncClient(timeout=30) as client:
        # the stateful phase follows POST /v1/indicators/rebuild to its progress: a rebuild it started
        # swaps its generation in when it has caught up, which the comparison below waits for
        deadline = time.monotonic() + 300
        while True:
            r = await client.get(platform.url("reporting") + "/v1/indicators/rebuild")
            if r.status_code == 404 or r.json()["state"] != "running":
                break
            assert time.monotonic() < deadline, f"the rebuild did not finish in 300 s: {r.text[:300]}"
            await asyncio.sleep(0.5)
        assert r.status_code == 404 or r.json()["state"] == "done", r.text[:500]
    await stats.settle(platform, "schemathesis", timeout_s=180)
    active = 0
    cursor: str | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            params = {"status": "active", "limit": "1000", **({"cursor": cursor} if cursor else {})}
            r = await client.get(platform.url("territory-registry") + "/v1/territories", params=params)
            assert r.status_code == 200, r.text[:300]
            page = r.json()
            active += len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    national = await platform.indicators("national")
    assert national["territories.count"] == active
