"""``ti report bilan``: the Bilan of a scope at an instant, generated from a running platform's API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
import typer
from ti_shared.problems import Problem

from reporting.dashboard import render
from reporting.dashboard.client import reader_for_url
from reporting.dashboard.pages import Links, Page, scope_page

app = typer.Typer(help="Reports generated from the indicators", no_args_is_help=True)


@app.command()
def bilan(
    out: Annotated[Path, typer.Option("-o", "--out", help="File to write: .pdf for a PDF, else HTML")],
    scope: Annotated[str, typer.Option(help="national, region:<code> or territory:<id>")] = "national",
    as_of: Annotated[str | None, typer.Option("--as-of", help="The figures as of this date or instant (default: now)")] = None,
    compare: Annotated[str | None, typer.Option(help="Each figure next to its value at this date")] = None,
    url: Annotated[str, typer.Option(help="Base URL of the platform (embedded mode or reverse proxy)")] = "http://127.0.0.1:8000",
) -> None:
    """Read the indicators of SCOPE from the platform's public API and write its Bilan to OUT."""
    base = url.rstrip("/")

    async def _page() -> Page:
        async with reader_for_url(base) as api:
            return await scope_page(api, Links(root=base, as_of=as_of, compare=compare), scope)

    try:
        page = asyncio.run(_page())
    except Problem as exc:
        typer.echo(f"The platform refused: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        typer.echo(f"Cannot read the indicators at {base}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if out.suffix.lower() == ".pdf":
        out.write_bytes(render.bilan_pdf(page))
    else:
        out.write_text(render.bilan_html(page, asset_base=base), encoding="utf-8")
    typer.echo(f"{out}: Bilan of {scope}, {page.data_date[0].lower()}{page.data_date[1:]}")
