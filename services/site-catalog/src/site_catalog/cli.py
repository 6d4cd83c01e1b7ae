"""``ti sites …``: commands of the site catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from ti_shared.http import XLSX_TYPE

app = typer.Typer(help="The site catalogue (sites clés en main)", no_args_is_help=True)


@app.callback()
def sites() -> None:
    """The site catalogue (sites clés en main)."""


def _media_type(path: Path) -> str:
    return XLSX_TYPE if path.suffix.lower() == ".xlsx" else "text/csv"


def summarize(status_code: int, body: dict[str, Any]) -> tuple[list[str], int]:
    """The lines to print for an import response, and the exit code (0 only when every row went in)."""
    report = body.get("report", body) if status_code == 422 else body
    lines: list[str] = []
    if "counts" not in report:
        lines.append(f"error {status_code}: {body.get('detail', body)}")
        for err in body.get("errors") or []:
            lines.append(f"  {'.'.join(str(p) for p in err.get('loc', []))}: {err.get('msg')}")
        return lines, 1 if status_code == 422 else 2
    counts = report["counts"]
    state = "dry run, nothing written: would be " + report["status"] if report.get("dry_run") else report["status"]
    lines.append(
        f"{state} ({report['mode']}): {report['row_count']} rows — created {counts['created']}, "
        f"updated {counts['updated']}, unchanged {counts['unchanged']}, rejected {counts['rejected']}"
    )
    if report.get("id"):
        lines.append(f"import id: {report['id']}")
    for warning in report.get("warnings") or []:
        lines.append(f"  warning {warning.get('column') or 'file'}: {warning['msg']}")
    for row in report["rows"]:
        for err in row.get("errors") or []:
            column = err.get("column") or "row"
            lines.append(f"  row {row['row']} ({row.get('site_id') or '?'}) {column}: {err['msg']}")
        for warning in row.get("warnings") or []:
            column = warning.get("column") or "row"
            lines.append(f"  warning row {row['row']} ({row.get('site_id') or '?'}) {column}: {warning['msg']}")
    return lines, 0 if status_code < 400 and counts["rejected"] == 0 else 1


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A CSV in the CNIG « sites économiques » shape (or an XLSX)", exists=True, dir_okay=False)],
    url: Annotated[str, typer.Option(help="Base URL of the site catalogue", envvar="TI_SITE_CATALOG_URL")] = "http://127.0.0.1:8004",
    token: Annotated[str, typer.Option(help="A bearer token with the scope sites:write", envvar="TI_TOKEN")] = "",
    mode: Annotated[str, typer.Option(help="atomic (all rows or none) or partial")] = "atomic",
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retry safe: same key and file → same result")] = None,
    dry_run: Annotated[bool, typer.Option(help="The report only: nothing is written")] = False,
    default: Annotated[
        list[str] | None,
        typer.Option(help="The programme's value for rows without it, NAME=VALUE (maturity=ready, labelled_on=2024-04-15, …)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds")] = 120.0,
) -> None:
    """Send FILE to POST /v1/sites/imports and print the per-row report."""
    if mode not in ("atomic", "partial"):
        raise typer.BadParameter("mode must be atomic or partial")
    if not token:
        raise typer.BadParameter("a token is required (--token or TI_TOKEN); mint one with `ti token --scope sites:write`")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": _media_type(file)}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    params = {"mode": mode, **({"dry_run": "true"} if dry_run else {})}
    for given in default or []:
        name, sep, value = given.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--default {given!r}: write NAME=VALUE, e.g. maturity=ready")
        params[name.strip()] = value.strip()
    try:
        response = httpx.post(
            url.rstrip("/") + "/v1/sites/imports",
            params=params,
            content=file.read_bytes(),
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"could not reach {url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {"detail": response.text[:500]}
    lines, code = summarize(response.status_code, body if isinstance(body, dict) else {"detail": body})
    for line in lines:
        typer.echo(line, err=code != 0 and line.startswith("error"))
    raise typer.Exit(code)
