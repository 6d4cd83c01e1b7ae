"""The platform for the dashboard's browser tests: the embedded mode in a subprocess (``ti serve all``),
loaded through the public API with the part of the demo programme that concerns three regions; and
Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ti_demo.generator import DemoProgramme, generate
from ti_demo.loader import Endpoints, load_programme, wait_settled
from ti_shared.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[4]
ARTIFACTS = ROOT / "var" / "test-results" / "dashboard"
SECRET = "dashboard-browser-tests-secret-0123456789"
#: Bretagne, Martinique, Corse: 23 territories of the demo, with their actions, grants and sites
REGIONS = ("53", "02", "94")
CHROMIUM = os.environ.get("TI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def part_of_demo(programme: DemoProgramme, regions: tuple[str, ...]) -> DemoProgramme:
    """The writes of the demo that concern the territories of ``regions`` (and nothing else)."""
    kept = {w.path.rsplit("/", 1)[1] for w in programme.territories if w.body["region_code"] in regions}
    part = DemoProgramme(seed=programme.seed)
    part.territories = [w for w in programme.territories if w.path.rsplit("/", 1)[1] in kept]
    part.actions = [w for w in programme.actions if w.body.get("territory_id") in kept]
    part.sites = [w for w in programme.sites if w.body.get("territory_id") in kept]
    for batch in programme.grant_batches:
        items = [item for item in batch.body["items"] if item.get("territory_id") in kept]
        if items:
            part.grant_batches.append(dataclasses.replace(batch, body={**batch.body, "items": items}))
    return part


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    base: str
    territories: list[dict[str, Any]]

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.base + path, params=params, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    var_dir = tmp_path_factory.mktemp("platform")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    env.update({"TI_VAR_DIR": str(var_dir), "TI_JWT_SECRET": SECRET, "TI_ENV": "development", "TI_BUS": "local"})
    ti = Path(sys.executable).parent / "ti"
    log = (var_dir / "platform.log").open("w")
    process = subprocess.Popen([str(ti), "serve", "all", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"`ti serve all` exited: {(var_dir / 'platform.log').read_text()[-3000:]}")
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the embedded platform did not get ready in 120 s")
            time.sleep(0.3)
        settings = PlatformSettings(jwt_secret=SECRET, var_dir=var_dir)
        endpoints = Endpoints.single(base)

        async def load() -> None:
            await load_programme(part_of_demo(generate(2024), REGIONS), endpoints, settings, concurrency=4)
            async with httpx.AsyncClient(timeout=30) as client:
                await wait_settled(client, endpoints, 120)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's sync API may hold this thread's loop
            pool.submit(asyncio.run, load()).result()
        territories = httpx.get(base + "/v1/territories", params={"limit": "1000"}, timeout=30).json()["items"]
        yield Platform(base, territories)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API holds an event loop on this thread while it runs, which
    the async tests of the other modules must not meet."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Visit:
    page: Any
    console_errors: list[str]
    outside_requests: list[str]


@pytest.fixture
def visit(browser: Any, platform: Platform) -> Iterator[Any]:
    """``visit(path)`` opens a page of the platform and records console errors and requests to other hosts."""
    context = browser.new_context(locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": 1280, "height": 900})
    opened: list[Visit] = []

    def _visit(path: str) -> Visit:
        page = context.new_page()
        record = Visit(page, [], [])
        page.on("console", lambda m: record.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: record.console_errors.append(str(e)))

        def route(r: Any) -> None:
            if r.request.url.startswith(platform.base) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                record.outside_requests.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        response = page.goto(platform.base + path, wait_until="networkidle")
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        opened.append(record)
        return record

    yield _visit
    context.close()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
