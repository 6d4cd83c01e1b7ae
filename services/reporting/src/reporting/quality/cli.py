"""``ti quality``: the data quality of a scope's territories, read from a running platform's API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:.1f}"
    return str(value)


def table(document: dict[str, Any]) -> str:
    """The report as a plain-text table, one territory per line, then the scope's totals."""
    header = ["territory", "region", "plan updated", "stale", "actions", "non renseigné", "no theme", "no budget",
              "grants no commune", "lead in post", "score"]
    rows = [header]
    for q in document["items"]:
        a = q["actions"]
        rows.append([
            q["territory_id"], q["region_code"], (q["plan_updated_at"] or "—")[:10], _cell(q["plan_stale"]),
            str(a["count"]), _cell(a["non_renseigne_share"]), str(a["without_theme"]), str(a["without_budget"]),
            str(q["grants"]["without_commune"]), _cell(q["project_lead_in_post"]), f"{q['score']:.1f}",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    s = document["summary"]
    lines.append(
        f"{s['territories']} territories, {s['plans_stale']} plans older than {document['rhythm_months']} months, "
        f"{s['without_project_lead']} without project lead, mean score {_cell(s['mean_score'])}; "
        f"{s['grants_without_territory']} grants without territory, {s['grants_without_commune']} without commune, "
        f"{s['sites_without_territory']} sites without territory"
    )
    return "\n".join(lines)


def quality(
    scope: Annotated[str, typer.Option(help="national, region:<code> or territory:<id>")] = "national",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Over the states as of this date or instant (default: now)")] = None,
    sort: Annotated[str, typer.Option(help="score, plan_updated_at, non_renseigne_share or territory_id; - first: descending")] = "score",
    rhythm_months: Annotated[int | None, typer.Option("--rhythm-months", help="A plan older than this is stale (default 6)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON document")] = False,
    url: Annotated[str, typer.Option(help="Base URL of the platform (embedded mode or reverse proxy)")] = "http://127.0.0.1:8000",
) -> None:
    """The data quality of every territory of SCOPE (GET /v1/quality), worst score first by default."""
    params = {"scope": scope, "sort": sort} | ({"as_of": as_of} if as_of else {})
    if rhythm_months is not None:
        params["rhythm_months"] = str(rhythm_months)
    try:
        response = httpx.get(url.rstrip("/") + "/v1/quality", params=params, timeout=120)
    except httpx.HTTPError as exc:
        typer.echo(f"Cannot read the quality report at {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        detail = response.json().get("detail") if response.headers.get("content-type", "").endswith("json") else response.text
        typer.echo(f"The platform refused ({response.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    document = response.json()
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2) if as_json else table(document))
