"""``ti territories …``: import ANCT's files into a running registry through its API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from territory_registry.schemas import ImportKind, ImportMode

app = typer.Typer(help="The territory registry: import ANCT's territories and groupements files", no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:8001"


@app.callback()
def territories() -> None:
    """Commands of the territory registry (``ti territories …``)."""


def media_type_of(path: Path) -> str:
    if path.suffix.lower() == ".xlsx":
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "text/csv"


def post_import(
    client: httpx.Client,
    data: bytes,
    *,
    media_type: str,
    kind: str,
    mode: str,
    token: str | None,
    idempotency_key: str | None = None,
    dry_run: bool = False,
) -> httpx.Response:
    """POST a file to ``/v1/territories/imports``."""
    headers = {"Content-Type": media_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    params = {"kind": kind, "mode": mode, **({"dry_run": "true"} if dry_run else {})}
    return client.post("/v1/territories/imports", params=params, content=data, headers=headers)


def summarize(response: httpx.Response) -> list[str]:
    """Human-readable lines for an import response."""
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return [f"HTTP {response.status_code}: {response.text[:500]}"]
    report = body.get("report", body) if isinstance(body, dict) else {}
    lines: list[str] = []
    if "counts" in report:
        counts = report["counts"]
        state = "imported" if report.get("imported") else "NOT imported"
        if report.get("dry_run"):
            state = "dry run, nothing written: would be " + state
        lines.append(
            f"{report.get('layout', report.get('kind'))} ({report.get('mode')}): {state} — created {counts['created']}, "
            f"updated {counts['updated']}, unchanged {counts['unchanged']}, rejected {counts['rejected']}"
        )
        for warning in report.get("warnings", []):
            lines.append(f"  warning ({'.'.join(str(p) for p in warning.get('loc', []))}): {warning.get('msg')}")
        for row in report.get("rows", []):
            for error in row.get("errors", []):
                loc = ".".join(str(p) for p in error.get("loc", []))
                lines.append(f"  rejected {row.get('territory_id') or '?'} ({loc}): {error.get('msg')}")
            for warning in row.get("warnings", []):
                loc = ".".join(str(p) for p in warning.get("loc", []))
                lines.append(f"  warning {row.get('territory_id') or '?'} ({loc}): {warning.get('msg')}")
    else:
        lines.append(f"HTTP {response.status_code}: {body.get('detail', body)}")
    return lines


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV (; or ,) or XLSX file")],
    kind: Annotated[ImportKind, typer.Option(help="territories (one row per territory, or ANCT's list of communes) or groupements (one row per EPCI)")] = "territories",
    mode: Annotated[ImportMode, typer.Option(help="atomic: all or nothing; partial: the valid rows")] = "atomic",
    url: Annotated[str, typer.Option(help="The registry's base URL", envvar="TI_TERRITORY_REGISTRY_URL")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(help="A bearer token with territories:write", envvar="TI_TOKEN")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retried import safe")] = None,
    dry_run: Annotated[bool, typer.Option(help="The report only: nothing is written")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds")] = 120.0,
) -> None:
    """Send FILE to the registry's import endpoint and print the report."""
    with httpx.Client(base_url=url, timeout=timeout) as client:
        try:
            response = post_import(
                client,
                file.read_bytes(),
                media_type=media_type_of(file),
                kind=kind,
                mode=mode,
                token=token or os.environ.get("TI_TOKEN"),
                idempotency_key=idempotency_key,
                dry_run=dry_run,
            )
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach {url}: {exc}", err=True)
            raise typer.Exit(3) from exc
    for line in summarize(response):
        typer.echo(line, err=response.status_code >= 400)
    if response.status_code >= 400:
        raise typer.Exit(1)
