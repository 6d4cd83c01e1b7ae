"""Pages and the Bilan as HTML (Jinja2, server side) and the Bilan as PDF (WeasyPrint)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from ti_shared.assets import asset_path, assets_version

from reporting.dashboard import geometry
from reporting.dashboard.pages import Page

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
#: the base of the assets' URLs inside the PDF (resolved by the fetcher, never requested)
PDF_BASE = "http://assets.invalid"
TEMPLATES = {
    "national": "national.html.j2", "region": "region.html.j2", "territory": "territory.html.j2",
    "edition": "edition.html.j2", "editions": "editions.html.j2", "quality": "quality.html.j2",
    "explain": "explain.html.j2",
}


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _context(page: Page, asset_base: str | None = None) -> dict[str, Any]:
    version = assets_version()
    base = asset_base if asset_base is not None else page.links.root

    def asset(path: str) -> str:
        return f"{base}/dashboard/assets/{path}?v={version}"

    def static(name: str) -> str:
        return f"{base}/dashboard/static/{name}?v={version}"

    return {
        "page": page,
        "asset": asset,
        "static": static,
        "shapes": geometry.region_shapes() if page.map_regions else {},
        "view_box": geometry.VIEW_BOX,
    }


def dashboard_html(page: Page) -> str:
    return environment().get_template(TEMPLATES[page.kind]).render(_context(page))


def bilan_html(page: Page, asset_base: str | None = None) -> str:
    return environment().get_template("bilan.html.j2").render(_context(page, asset_base))


def _resource(url: str) -> tuple[bytes, str]:
    """A resource of the PDF (stylesheet, fonts) read from the local assets; anything else is refused."""
    path = urlsplit(url).path
    if "/dashboard/static/" in path:
        file = (STATIC_DIR / path.rsplit("/dashboard/static/", 1)[1]).resolve()
        if not file.is_relative_to(STATIC_DIR) or not file.is_file():
            raise ValueError(f"no static file {path!r}")
    elif "/dashboard/assets/" in path:
        file = asset_path(path.rsplit("/dashboard/assets/", 1)[1])
    else:
        raise ValueError(f"the PDF loads nothing from {url!r}")
    mime = {".css": "text/css", ".woff2": "font/woff2", ".woff": "font/woff", ".svg": "image/svg+xml"}
    return file.read_bytes(), mime.get(file.suffix, "application/octet-stream")


def bilan_pdf(page: Page) -> bytes:
    from weasyprint import HTML  # imported on first use: it loads pango
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class LocalAssets(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            body, mime = _resource(url)
            return URLFetcherResponse(url, body=body, headers={"Content-Type": mime})

    html = bilan_html(page, asset_base=PDF_BASE)
    pdf = HTML(string=html, base_url=PDF_BASE + "/", url_fetcher=LocalAssets()).write_pdf()
    assert pdf is not None
    return bytes(pdf)
