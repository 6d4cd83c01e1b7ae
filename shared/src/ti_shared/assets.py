"""Front-end assets served by the platform itself, never from a CDN, so every page works offline.

They come from npm packages pinned in ``frontend/package-lock.json``; ``make install`` (``npm ci`` then
``node frontend/build.mjs``) copies what is served into ``frontend/dist/`` (not committed; the Docker
image builds it in a stage of its own). ``TI_ASSETS_DIR`` points elsewhere when set.

This module also gives every service its API pages: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc),
with relative URLs so that they work wherever the service is mounted (``/<service>/docs`` in the
embedded mode, ``/_services/<service>/docs`` behind the reverse proxy, ``/docs`` on its own port).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from ti_shared.problems import Problem

#: the repository's ``frontend/dist`` (the packages are installed in place: ``pip install -e``)
DEFAULT_ASSETS_DIR = Path(__file__).resolve().parents[3] / "frontend" / "dist"

#: files of the API pages, by the name they are served under (``docs/assets/<name>``)
DOCS_FILES = {
    "swagger-ui-bundle.js": "docs/swagger-ui-bundle.js",
    "swagger-ui.css": "docs/swagger-ui.css",
    "favicon.png": "docs/favicon-32x32.png",
    "redoc.standalone.js": "docs/redoc.standalone.js",
}


def assets_dir() -> Path:
    configured = os.environ.get("TI_ASSETS_DIR")
    return Path(configured) if configured else DEFAULT_ASSETS_DIR


class AssetsMissing(Problem):
    def __init__(self, what: str) -> None:
        super().__init__(503, f"The front-end assets are not built ({what} is missing): run `make install`.")


def asset_path(relative: str) -> Path:
    """The file ``relative`` (a path inside the assets directory); 404 outside it, 503 when not built."""
    root = assets_dir().resolve()
    if not (root / "manifest.json").is_file():
        raise AssetsMissing(str(root / "manifest.json"))
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Problem(404, f"No asset {relative!r}")
    return path


@functools.lru_cache(maxsize=4)
def _manifest_of(root: Path) -> tuple[dict[str, str], str]:
    text = (root / "manifest.json").read_bytes()
    return json.loads(text), hashlib.sha256(text).hexdigest()[:12]


def manifest() -> dict[str, str]:
    """The version of each front-end package the assets were built from."""
    root = assets_dir().resolve()
    if not (root / "manifest.json").is_file():
        raise AssetsMissing(str(root / "manifest.json"))
    return _manifest_of(root)[0]


def assets_version() -> str:
    """A short digest of the packages' versions, put in asset URLs so that browsers refetch after an upgrade."""
    manifest()
    return _manifest_of(assets_dir().resolve())[1]


def file_response(path: Path, *, immutable: bool = True) -> FileResponse:
    cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
    return FileResponse(path, headers={"Cache-Control": cache})


#: nothing leaves the machine from the API pages (ReDoc's footer links a logo on a CDN: it is not loaded)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _with_csp(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def docs_router(title: str) -> APIRouter:
    """``/docs`` and ``/redoc`` for the application titled ``title``, from the local assets."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        version = assets_version()
        return _with_csp(get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{title} — API",
            swagger_js_url=f"docs/assets/swagger-ui-bundle.js?v={version}",
            swagger_css_url=f"docs/assets/swagger-ui.css?v={version}",
            swagger_favicon_url=f"docs/assets/favicon.png?v={version}",
        ))

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        version = assets_version()
        return _with_csp(get_redoc_html(
            openapi_url="openapi.json",
            title=f"{title} — API",
            redoc_js_url=f"docs/assets/redoc.standalone.js?v={version}",
            redoc_favicon_url=f"docs/assets/favicon.png?v={version}",
            with_google_fonts=False,
        ))

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_FILES:
            raise Problem(404, f"No asset {name!r}")
        return file_response(asset_path(DOCS_FILES[name]))

    return router


def install_docs(app: FastAPI) -> None:
    app.include_router(docs_router(app.title))
