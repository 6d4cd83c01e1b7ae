"""`ti demo run` end to end: the embedded platform in a subprocess, the demo loaded through HTTP, every
BILAN.md figure the indicators cover checked, and a restart in the middle of the load that neither
loses nor double-counts anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from ti_demo.check import compare
from ti_demo.generator import generate
from ti_shared.auth import mint_token
from ti_shared.embedded import SERVICES
from ti_shared.settings import PlatformSettings

pytestmark = pytest.mark.integration

SECRET = "demo-end-to-end-secret-0123456789abcdef"
INSTALLED = {e.name for e in entry_points(group="ti.services")}


class DemoProcess:
    """`ti demo run` in a subprocess, its output collected line by line."""

    def __init__(self, var_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
        env.update({"TI_VAR_DIR": str(var_dir), "TI_JWT_SECRET": SECRET, "TI_ENV": "development", "COLUMNS": "200"})
        ti = Path(sys.executable).parent / "ti"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(ti), "demo", "run", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output:
            if self.process.poll() is not None:
                time.sleep(0.2)
                pytest.fail(f"`ti demo run` exited with {self.process.returncode}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout_s} s:\n{self.output[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def national(client: httpx.Client, as_of: str | None = None) -> dict[str, Any]:
    params = {"scope": "national", **({"as_of": as_of} if as_of else {})}
    response = client.get("/v1/indicators", params=params)
    assert response.status_code == 200, response.text
    indicators: dict[str, Any] = response.json()["indicators"]
    return indicators


def pct(share: float) -> int:
    return round(100 * share)


@pytest.mark.skipif(not INSTALLED >= set(SERVICES), reason=f"the five services are not all installed ({sorted(INSTALLED)})")
def test_demo_runs_loads_and_reproduces_the_report(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=30.0)

    first = DemoProcess(tmp_path, port)
    try:
        first.wait_for("loading: actions", timeout_s=120)
        deadline = time.monotonic() + 60
        while national(client).get("actions.count", 0) < 300 and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        first.stop()
    assert "Demo programme ready" not in first.output  # stopped in the middle of the load

    second = DemoProcess(tmp_path, port)
    try:
        second.wait_for("Demo programme ready", timeout_s=240)
        assert "already loaded" not in second.output
        now = national(client)
        report_date = national(client, "2024-11-30")
        launch = national(client, "2023-11-30")
        admin = {"Authorization": "Bearer " + mint_token(PlatformSettings(jwt_secret=SECRET), sub="e2e", scopes=["admin"])}
        grants = client.get("/v1/grants", params={"limit": 1000}, headers=admin)
        territories_page = client.get("/v1/territories", params={"limit": 1000})
        # the change feed and the webhooks run on the embedded bus too
        registered = client.get("/v1/changes", params={"types": "fr.anct.ti.territory.registered.v1", "limit": 1000})
        subscription = client.put(
            "/v1/subscriptions/demo-check",
            json={"url": f"http://127.0.0.1:{free_port()}/hook", "types": ["fr.anct.ti.action.deleted.v1"]},
            headers=admin,
        )
    finally:
        code = second.stop()
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), second.output[-2000:]

    assert registered.status_code == 200, registered.text
    changes = registered.json()["items"]
    assert len(changes) == 183 and all(c["previous"] is None and "name" in c["changed"] for c in changes)
    assert subscription.status_code == 201 and subscription.json()["secret"].startswith("whsec_"), subscription.text
    # programme and network
    assert now["territories.count"] == 183
    assert now["territories.epci_count"] == 630
    assert now["territories.region_count"] == 18
    assert now["territories.project_leads_in_post"] == 162
    assert now["territories.project_leads_cofinanced"] == 140
    assert now["territories.launch_copil_held"] == 146
    # action plans, and their history
    assert now["actions.count"] == 2812 == report_date["actions.count"]
    assert launch["actions.count"] == 2429
    assert {k: pct(v) for k, v in now["actions.by_axis_share"].items()} == {
        "competences_attractivite": 32, "transition_ecologique": 24, "foncier": 18, "innovation": 18, "autre": 8,
    }
    assert {k: pct(v) for k, v in now["actions.by_status_share"].items()} == {
        "en_cours": 36, "amont": 20, "etude_prealable": 19, "realise": 13, "non_renseigne": 8, "en_pause": 4, "abandonne": 1,
    }
    assert now["actions.by_theme"] == {
        "valorisation_industrie": 376, "nouvelles_formations": 256, "rh_marque_employeur": 236, "besoin_formation": 181,
        "aide_installation": 148, "transition_energetique": 343, "ecologie_industrielle_territoriale": 320,
        "gestion_eau": 68, "infrastructures_numeriques": 53, "usages_numeriques": 75, "tiers_lieux": 75,
        "ecosysteme_innovation_recherche": 282, "sites_cles_en_main": 134, "requalification_friche": 193,
        "optimisation_densification_fonciere": 357,
    }
    assert launch["actions.by_status"]["realise"] < now["actions.by_status"]["realise"]
    # Fonds vert
    fv = now["grants.by_programme"]["fonds_vert_ti_te"]
    assert fv["count"] == 163
    assert round(Decimal(fv["amount_eur"]) / 1_000_000) == 63
    assert round(Decimal(fv["investment_eur"]) / 1_000_000) == 776
    assert (fv["territory_count"], fv["departement_count"]) == (106, 77)
    assert (fv["jobs_forecast"], fv["jobs_conditional"]) == (2600, 1300)
    assert pct(fv["contribution_share"]["climate_mitigation"]) == 78
    assert pct(fv["contribution_share"]["circular_economy"]) == 66
    assert [pct(fv["value_chain_share"][c]) for c in ("economie_circulaire", "relocalisation", "bioeconomie")] == [55, 22, 17]
    # Rebond industriel and engineering
    rebond = now["grants.by_programme"]["rebond_industriel"]
    assert Decimal(rebond["amount_eur"]) == Decimal("39700000.00") and rebond["territory_count"] == 26
    assert round(Decimal(now["grants.by_programme"]["ingenierie_anct"]["amount_eur"]) / 1_000_000) == 2
    assert round(Decimal(now["grants.by_programme"]["ingenierie_rebond"]["amount_eur"]) / 1_000_000) == 2
    # sites clés en main
    assert now["sites.count"] == 55
    assert Decimal(now["sites.area_ha_total"]) == Decimal("2942.00")
    assert round(Decimal(now["sites.area_ha_mean"])) == 53
    assert Decimal(now["sites.area_ha_median"]) == Decimal("39.00")
    assert now["sites.by_maturity"] == {"ready": 6, "short_term": 25, "before_2030": 24}
    assert now["sites.land_recycling_count"] == 30 and Decimal(now["sites.land_recycling_area_ha"]) > 1000
    assert round(now["sites.workshop_held_share"] * 55) == 48
    assert now["sites.roadmap_delivered_count"] == 30
    # the same, as `ti demo check` reads it
    assert [f.label for f in compare(now, launch) if not f.ok] == []
    # nothing counted twice after the restart: one version per grant, at most two per territory
    assert grants.status_code == 200, grants.text
    items = grants.json()["items"]
    assert len(items) == len(generate().grants) and {g["version"] for g in items} == {1}
    assert {t["version"] for t in territories_page.json()["items"]} <= {1, 2}
