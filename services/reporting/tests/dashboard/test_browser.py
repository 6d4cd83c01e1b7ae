"""The dashboard and the Bilan in a real browser, on a platform loaded through its public API: each
page loads cleanly and offline, shows the API's figures for the same scope and date, the map opens
the regions, ``as_of`` and ``compare`` change what is shown, axe finds no serious violation, and the
PDF's text carries the figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from reporting.dashboard import formatting as fmt
from reporting.dashboard import model
from ti_shared.assets import asset_path
from ti_shared.auth import mint_token
from ti_shared.geo import REGIONS
from ti_shared.settings import PlatformSettings

from .conftest import SECRET, Platform, Visit, screenshot

pytestmark = pytest.mark.integration

LAUNCH = "2023-11-30"
#: a figure's link to its explanation (a JavaScript string)
EXPLAIN = "'a[href*=\"/dashboard/explain?\"]'"


def at(document: dict[str, Any], code: str, key: str) -> Any:
    value = document["indicators"][code]
    for part in key.split(".") if key else []:
        value = value[part]
    return value


def shown_figures(page: Any) -> list[dict[str, Any]]:
    return list(
        page.eval_on_selector_all(
            ".ti-figure[data-code]",
            """els => els.map(e => ({code: e.dataset.code, key: e.dataset.key, value: JSON.parse(e.dataset.value),
                compare: e.dataset.compare === undefined ? undefined : JSON.parse(e.dataset.compare),
                text: e.querySelector('.ti-figure__value').textContent.trim()}))""",
        )
    )


def assert_figures_match(page: Any, document: dict[str, Any], catalogue: dict[str, Any]) -> int:
    figures = shown_figures(page)
    assert len(figures) > 40
    for f in figures:
        expected = at(document, f["code"], f["key"])
        assert f["value"] == expected, f
        kind = fmt.kind_of_unit(catalogue[f["code"]]["unit"], f["key"])
        assert f["text"] == fmt.text(expected, kind), f
    return len(figures)


@pytest.fixture(scope="module")
def catalogue(platform: Platform) -> dict[str, Any]:
    return {item["code"]: item for item in platform.get("/v1/indicators/catalogue")["items"]}


def a_territory(platform: Platform) -> dict[str, Any]:
    return next(t for t in sorted(platform.territories, key=lambda t: t["id"]) if t["region_code"] == "53")


def test_pages_load_without_console_errors_nor_outside_requests(visit: Any, platform: Platform) -> None:
    territory = a_territory(platform)
    for name, path in (
        ("national", "/dashboard"),
        ("region-53", "/dashboard/regions/53"),
        (f"territory-{territory['id']}", f"/dashboard/territories/{territory['id']}"),
        ("national-as-of-launch-compared", f"/dashboard?as_of={LAUNCH}&compare=2023-11-01&map=actions.count"),
    ):
        v: Visit = visit(path)
        screenshot(v.page, name)
        assert v.console_errors == [], (path, v.console_errors)
        assert v.outside_requests == [], (path, v.outside_requests)
        assert v.page.locator("h1").count() == 1
    # compared: the map's table gives each region's value then and the stacked bars each region's total then
    then = {code: platform.get("/v1/indicators", scope=f"region:{code}", as_of="2023-11-01")["indicators"] for code in REGIONS}
    rows = v.page.eval_on_selector_all("tr[data-map-region]", "els => els.map(e => [e.dataset.mapRegion, JSON.parse(e.dataset.compare)])")
    assert len(rows) == 18 and all(value == then[code]["actions.count"] for code, value in rows)
    national_then = platform.get("/v1/indicators", scope="national", as_of="2023-11-01")["indicators"]["actions.by_region_status"]
    totals = v.page.eval_on_selector_all("tr[data-region] .ti-stacked-compare", "els => els.map(e => Number(e.dataset.compare))")
    assert totals == [sum(national_then[code].values()) for code in REGIONS]


def test_national_figures_are_the_apis(visit: Any, platform: Platform, catalogue: dict[str, Any]) -> None:
    v = visit("/dashboard")
    document = platform.get("/v1/indicators", scope="national")
    assert assert_figures_match(v.page, document, catalogue) > 150
    # the stacked bars: every region's count of each status
    for row in v.page.eval_on_selector_all(
        "tr[data-region]",
        "rows => rows.map(r => ({region: r.dataset.region, parts: [...r.querySelectorAll('[data-status]')].map("
        "p => [p.dataset.status, Number(p.dataset.count)])}))",
    ):
        assert dict(row["parts"]) == document["indicators"]["actions.by_region_status"][row["region"]]
    # every figure, bar and region row opens the explanation of its own code and key, as of the page's date
    links = v.page.eval_on_selector_all(
        ".ti-figure[data-code]", "els => els.map(e => [e.dataset.code, e.dataset.key, e.querySelector(EXPLAIN).href])".replace("EXPLAIN", EXPLAIN)
    )
    links += v.page.eval_on_selector_all(
        "tr[data-region]",
        "els => els.map(e => ['actions.by_region_status', e.dataset.region, e.querySelector(EXPLAIN).href])".replace("EXPLAIN", EXPLAIN),
    )
    for code, key, href in links:
        query = parse_qs(urlsplit(href).query)
        assert urlsplit(href).path == "/dashboard/explain" and query["code"] == [code] and query.get("key", [""]) == [key]
        assert query["scope"] == ["national"]


def test_region_and_territory_figures_as_of_a_date(visit: Any, platform: Platform, catalogue: dict[str, Any]) -> None:
    territory = a_territory(platform)
    for scope, path in (("region:53", "/dashboard/regions/53"), (f"territory:{territory['id']}", f"/dashboard/territories/{territory['id']}")):
        v = visit(f"{path}?as_of=2024-06-30")
        assert_figures_match(v.page, platform.get("/v1/indicators", scope=scope, as_of="2024-06-30"), catalogue)
        assert "30 juin 2024" in v.page.locator(".ti-data-date").inner_text()
    assert territory["name"] in visit(f"/dashboard/territories/{territory['id']}").page.locator("h1").inner_text()
    listed = visit("/dashboard/regions/53").page.eval_on_selector_all("[data-territory]", "els => els.map(e => e.dataset.territory)")
    assert sorted(listed) == sorted(t["id"] for t in platform.territories if t["region_code"] == "53")


def test_the_map_has_18_regions_and_a_click_opens_one(visit: Any, platform: Platform) -> None:
    v = visit("/dashboard?map=actions.count")
    regions = v.page.eval_on_selector_all(
        "a.ti-map__region", "els => els.map(e => [e.dataset.region, JSON.parse(e.dataset.value)])"
    )
    assert len(regions) == 18
    for code, value in regions:
        assert value == platform.get("/v1/indicators", scope=f"region:{code}")["indicators"]["actions.count"]
    v.page.locator('a.ti-map__region[data-region="53"]').click()
    v.page.wait_for_url("**/dashboard/regions/53*")
    assert "Bretagne" in v.page.locator("h1").inner_text()
    screenshot(v.page, "map-click-region-53")


def test_as_of_and_compare_change_what_is_shown(visit: Any, platform: Platform, catalogue: dict[str, Any]) -> None:
    now = platform.get("/v1/indicators", scope="region:53")
    launch = platform.get("/v1/indicators", scope="region:53", as_of=LAUNCH)
    assert now["indicators"]["actions.count"] != launch["indicators"]["actions.count"]  # the data has a history

    v = visit(f"/dashboard/regions/53?as_of={LAUNCH}")
    assert_figures_match(v.page, launch, catalogue)

    v = visit(f"/dashboard/regions/53?compare={LAUNCH}")
    figures = shown_figures(v.page)
    assert_figures_match(v.page, now, catalogue)
    for f in figures:
        assert f["compare"] == at(launch, f["code"], f["key"]), f
    # and the page links the API's diff between the two dates: the actions' count is among the figures that changed
    href = v.page.locator("a.ti-diff").get_attribute("href") or ""
    diff = platform.get(urlsplit(href).path, **{k: w[0] for k, w in parse_qs(urlsplit(href).query).items()})
    assert diff["from"] == LAUNCH and ("actions.count", "") in {(i["code"], i["key"]) for i in diff["items"]}
    count = v.page.locator("#f-actions-count")
    before, after = launch["indicators"]["actions.count"], now["indicators"]["actions.count"]
    assert count.locator(".ti-compare-value").inner_text() == fmt.text(before, "count")
    assert count.locator(".ti-delta").inner_text() == f"({fmt.delta(after, before, 'count')})"


@pytest.fixture(scope="module")
def edition(platform: Platform) -> dict[str, Any]:
    """An edition of a territory's Bilan as of 30 November 2024, then its plan imported late with actions
    dated 1 November 2024 (``TI-Effective-At``): a restatement."""
    territory = a_territory(platform)["id"]
    admin = {"Authorization": "Bearer " + mint_token(PlatformSettings(jwt_secret=SECRET), sub="anct-admin", scopes=["admin"])}
    created = httpx.post(platform.base + "/v1/reports/editions", headers=admin, timeout=300,
                         json={"name": "Bilan à 1 an", "scope": f"territory:{territory}", "as_of": "2024-11-30"})
    assert created.status_code == 201, created.text
    csv_text = "action_id;title;axis;themes;status;budget_eur\nLATE-1;Action tardive;innovation;tiers_lieux;realise;\n"
    imported = httpx.post(
        platform.base + f"/v1/actions/plan-imports?territory_id={territory}&mode=atomic", content=csv_text.encode(),
        headers={**admin, "Content-Type": "text/csv", "TI-Effective-At": "2024-11-01T10:00:00Z"}, timeout=60,
    )
    assert imported.status_code == 200, imported.text

    def restated() -> bool:
        return bool(platform.get(f"/v1/reports/editions/{created.json()['id']}/restatements")["items"])

    deadline = time.monotonic() + 60
    while not restated():
        assert time.monotonic() < deadline, "the late plan was not counted in 60 s"
        time.sleep(0.2)
    return dict(created.json())


def test_an_edition_shows_its_restatements(visit: Any, platform: Platform, edition: dict[str, Any]) -> None:
    v = visit(f"/dashboard/editions/{edition['id']}")
    screenshot(v.page, "edition")
    assert v.console_errors == [] and v.outside_requests == []
    restated = platform.get(f"/v1/reports/editions/{edition['id']}/restatements")["items"]
    rows = v.page.eval_on_selector_all(
        "tr.ti-restatement", "els => els.map(e => [e.dataset.code, e.dataset.key, JSON.parse(e.dataset.now), e.textContent])"
    )
    assert [(code, key, now) for code, key, now, _ in rows] == [(r["code"], r["key"], r["now"]) for r in restated]
    assert all("LATE-1" in text for *_, text in rows)
    assert v.page.locator(".ti-restated").is_visible()
    # the figures shown are the edition's as frozen, and its frozen Bilan opens from the page
    frozen = platform.get(f"/v1/reports/editions/{edition['id']}")["indicators"]
    for f in shown_figures(v.page):
        assert f["value"] == at(frozen, f["code"], f["key"]), f
    listed = visit("/dashboard/editions")
    assert listed.page.locator(f"tr[data-edition='{edition['id']}'] a").count() == 1


def test_the_quality_page_is_the_apis(visit: Any, platform: Platform) -> None:
    v = visit("/dashboard/quality?scope=region:53&as_of=2024-11-30&sort=-score")
    screenshot(v.page, "quality")
    assert v.console_errors == [] and v.outside_requests == []
    report = platform.get("/v1/quality", scope="region:53", as_of="2024-11-30", sort="-score")
    rows = v.page.eval_on_selector_all("tr.ti-quality", "els => els.map(e => [e.dataset.territory, JSON.parse(e.dataset.score)])")
    assert rows == [[q["territory_id"], q["score"]] for q in report["items"]] and len(rows) > 3
    ti = Path(sys.executable).parent / "ti"
    printed = subprocess.run([str(ti), "quality", "--url", platform.base, "--scope", "region:53", "--as-of", "2024-11-30"],
                             check=True, capture_output=True, text=True).stdout
    first = min(report["items"], key=lambda q: (q["score"], q["territory_id"]))
    assert printed.splitlines()[1].startswith(first["territory_id"]), printed


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation of WCAG 2.1 A/AA on the page."""
    page.add_script_tag(path=str(asset_path("axe/axe.min.js")))
    results = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    serious = [
        {"id": r["id"], "impact": r["impact"], "nodes": [n["target"] for n in r["nodes"][:5]]}
        for r in results["violations"]
        if r["impact"] in ("serious", "critical")
    ]
    assert serious == [], json.dumps(serious, indent=1)


@pytest.mark.parametrize(
    "path", ["/dashboard", "/dashboard/regions/53", "/dashboard/territories/{territory}", "/dashboard/quality",
             "/dashboard/editions", "/dashboard/editions/{edition}"],
)
def test_no_serious_accessibility_violation(visit: Any, platform: Platform, edition: dict[str, Any], path: str) -> None:
    v = visit(path.format(territory=a_territory(platform)["id"], edition=edition["id"]))
    assert_accessible(v.page)


@pytest.mark.parametrize("path", ["/reporting/docs", "/reporting/redoc", "/funding-ledger/docs"])
def test_api_pages_render_from_local_assets(visit: Any, path: str) -> None:
    v = visit(path)
    selector = ".swagger-ui .info .title" if path.endswith("/docs") else "h1"
    v.page.wait_for_selector(selector, timeout=20_000)
    assert "Territoires d'industrie" in v.page.locator(selector).first.inner_text()
    assert v.outside_requests == [], v.outside_requests
    # the page's Content-Security-Policy keeps ReDoc from fetching the logo of its footer from a CDN
    errors = [e for e in v.console_errors if "https://cdn.redoc.ly/" not in e]
    assert errors == [], v.console_errors


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    file = tmp_path / "bilan.pdf"
    file.write_bytes(pdf)
    return _normal(subprocess.run(["pdftotext", str(file), "-"], check=True, capture_output=True, text=True).stdout)


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u202f", " ").replace("\xa0", " "))


def test_the_bilan_pdf_carries_the_figures(visit: Any, platform: Platform, tmp_path: Path) -> None:
    response = httpx.get(platform.base + "/v1/reports/bilan", params={"scope": "region:53", "as_of": "2024-11-30", "format": "pdf"},
                         timeout=120)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = _pdf_text(response.content, tmp_path)
    html = visit("/v1/reports/bilan?scope=region:53&as_of=2024-11-30")
    figures = shown_figures(html.page)
    assert_figures_match(html.page, platform.get("/v1/indicators", scope="region:53", as_of="2024-11-30"),
                         {i["code"]: i for i in platform.get("/v1/indicators/catalogue")["items"]})
    assert "Bretagne" in text and "30 novembre 2024" in text
    missing = [f for f in figures if _normal(f["text"]) not in text]
    assert missing == []


def test_ti_report_bilan_writes_the_file(platform: Platform, tmp_path: Path) -> None:
    out = tmp_path / "national.pdf"
    ti = Path(sys.executable).parent / "ti"
    subprocess.run([str(ti), "report", "bilan", "--url", platform.base, "--as-of", "2024-11-30", "-o", str(out)], check=True)
    text = _pdf_text(out.read_bytes(), tmp_path)
    document = platform.get("/v1/indicators", scope="national", as_of="2024-11-30")
    national = document["indicators"]
    catalogue = {i["code"]: i for i in platform.get("/v1/indicators/catalogue")["items"]}
    for code in ("territories.count", "actions.count", "sites.count", "grants.amount_eur"):
        assert _normal(fmt.text(national[code], fmt.kind_of_unit("EUR" if code.endswith("_eur") else ""))) in text
    # every figure of the report's sections, as the API gives it in French
    figures = [f for s in model.sections(model.Builder(catalogue, document)) for f in s.figures()]
    assert len(figures) > 150 and [f.text for f in figures if _normal(f.text) not in text] == []
    assert "Les 18 régions" in text and "Actions recensées" in text
    # the stacked bar of statuses per region, in words: each region's count of each status
    labels = catalogue["actions.by_status"]["breakdown_labels"]
    for region, counts in national["actions.by_region_status"].items():
        line = " · ".join(f"{labels[status]} {count}" for status, count in counts.items())
        assert _normal(line) in text, (region, line)


CROSS_ORIGIN_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Indicateurs</title></head>
<body><p id="count">…</p><p id="etag">…</p><p id="write">…</p>
<script>
const api = new URLSearchParams(location.search).get("api");
(async () => {
  const r = await fetch(api + "/v1/indicators?scope=national");
  const doc = await r.json();
  document.getElementById("count").textContent = doc.indicators["territories.count"];
  document.getElementById("etag").textContent = r.headers.get("ETag");
  try {
    await fetch(api + "/v1/territories/ti-8402", {method: "PUT", headers: {"Authorization": "Bearer x", "Content-Type": "application/json"}, body: "{}"});
    document.getElementById("write").textContent = "sent";
  } catch (e) {
    document.getElementById("write").textContent = "blocked";
  }
})();
</script></body></html>"""


@pytest.fixture(scope="module")
def other_origin() -> Any:
    """A page served from another origin (another port): the ANCT site's front end, as it would call the API."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = CROSS_ORIGIN_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_reads_the_indicators_but_may_not_write(browser: Any, platform: Platform, other_origin: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{other_origin}/indicateurs.html?api={platform.base}")
        page.wait_for_function("document.getElementById('write').textContent !== '…'", timeout=30_000)
        national = httpx.get(platform.base + "/v1/indicators", params={"scope": "national"}, timeout=30)
        assert page.text_content("#count") == str(national.json()["indicators"]["territories.count"])
        assert page.text_content("#etag") == national.headers["etag"]  # an exposed header
        assert page.text_content("#write") == "blocked"  # writes need an origin of TI_CORS_WRITE_ORIGINS
        screenshot(page, "cross-origin-indicators")
    finally:
        context.close()


def explained_rows(page: Any) -> list[dict[str, Any]]:
    return list(page.eval_on_selector_all(
        "tr.ti-explained",
        """els => els.map(e => ({entity: e.dataset.entity, id: e.dataset.id, version: Number(e.dataset.version),
            event_id: e.dataset.event, contribution: JSON.parse(e.dataset.contribution)}))""",
    ))


def api_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: i[k] for k in ("entity", "id", "version", "event_id", "contribution")} for i in body["items"]]


def test_a_figure_opens_its_explanation(visit: Any, platform: Platform) -> None:
    """A tile and a breakdown bar each open the explanation page: the entities the API lists, with
    their version, event and contribution, and a way back to the figure."""
    v = visit("/dashboard/regions/53?as_of=2024-06-30")
    tile = v.page.locator('.ti-figure[data-code="actions.count"]').first
    shown = json.loads(tile.get_attribute("data-value") or "null")
    tile.locator(".ti-figure__explain a").click()
    v.page.wait_for_url("**/dashboard/explain?*")
    body = platform.get("/v1/indicators/explain", scope="region:53", code="actions.count", as_of="2024-06-30", limit="50")
    assert body["value"] == shown and json.loads(v.page.locator(".ti-explain").get_attribute("data-value") or "null") == shown
    assert explained_rows(v.page) == api_rows(body) and len(body["items"]) == min(50, shown)
    assert "30 juin 2024" in v.page.locator(".ti-data-date").inner_text()

    v.page.go_back()
    bar = v.page.locator('.ti-bar[data-code="actions.by_axis"][data-key="innovation"]')
    count = json.loads(bar.get_attribute("data-value") or "null")
    bar.locator("a.ti-figure__explain").click()
    v.page.wait_for_url("**/dashboard/explain?*key=innovation*")
    screenshot(v.page, "explain-bar")
    body = platform.get("/v1/indicators/explain", scope="region:53", code="actions.by_axis", key="innovation", as_of="2024-06-30",
                        limit="50")
    rows = explained_rows(v.page)
    assert rows == api_rows(body) and 0 < len(rows) == count == body["value"]
    assert all(r["contribution"] == {"actions.by_axis.innovation": 1} for r in rows)
    assert "Actions par axe › Innovation" in v.page.locator("#chiffre-title").inner_text()
    assert v.console_errors == [] and v.outside_requests == []
    # the same key at another date: the entities then
    v.page.fill("#as_of", LAUNCH)
    v.page.locator("#periode button[type=submit]").click()
    v.page.wait_for_url(f"**/dashboard/explain?*as_of={LAUNCH}*")
    then = platform.get("/v1/indicators/explain", scope="region:53", code="actions.by_axis", key="innovation", as_of=LAUNCH, limit="50")
    assert explained_rows(v.page) == api_rows(then) and "30 novembre 2023" in v.page.locator(".ti-data-date").inner_text()
    v.page.go_back()
    v.page.locator("a.ti-explain-back").click()
    v.page.wait_for_url("**/dashboard/regions/53?as_of=2024-06-30#f-actions-by-axis-innovation")


def test_the_explanation_pages_follow_the_apis_cursor(visit: Any, platform: Platform) -> None:
    params = {"scope": "region:53", "code": "grants.amount_eur", "limit": "3"}
    first = platform.get("/v1/indicators/explain", **params)
    assert first["next_cursor"], "the region needs more than 3 grants"
    second = platform.get("/v1/indicators/explain", **params, cursor=first["next_cursor"])
    v = visit("/dashboard/explain?" + urlencode(params))
    assert explained_rows(v.page) == api_rows(first)
    assert v.page.locator(".ti-explain__value").inner_text() == fmt.text(first["value"], "money")
    assert v.page.locator("a.fr-pagination__link--first[href]").count() == 0  # already on the first page
    v.page.locator("a.ti-explain-next").click()
    v.page.wait_for_load_state("networkidle")
    assert explained_rows(v.page) == api_rows(second)
    assert v.page.locator("a.fr-pagination__link--first[href]").count() == 1
    amounts = v.page.eval_on_selector_all("tr.ti-explained .ti-contribution strong", "els => els.map(e => e.textContent)")
    assert amounts == [fmt.full(i["contribution"]["grants.amount_eur"], "money") for i in second["items"]]
    assert v.console_errors == []
    screenshot(v.page, "explain-second-page")
    assert_accessible(v.page)
    unknown = httpx.get(platform.base + "/dashboard/explain", params={**params, "key": "nothing"}, timeout=30)
    assert unknown.status_code == 422 and unknown.headers["content-type"].startswith("application/problem+json")

