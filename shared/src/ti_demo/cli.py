"""``ti demo …``: run the platform in one process with the demo programme, load, generate, check."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from ti_shared.embedded import SERVICES
from ti_shared.settings import DEFAULT_JWT_SECRET, PlatformSettings, env_prefix

from ti_demo import figures as F
from ti_demo.check import compare
from ti_demo.generator import DemoProgramme, generate
from ti_demo.loader import (
    Endpoints,
    LoadError,
    LoadReport,
    already_loaded,
    load_programme,
    national_indicators,
    wait_ready,
)

app = typer.Typer(help="The demo programme (synthetic, calibrated on the « Bilan à 1 an du temps II »)", no_args_is_help=True)
console = Console(soft_wrap=True)

SeedOption = Annotated[int, typer.Option(help="Seed of the generator (the same seed gives the same programme)")]
ConcurrencyOption = Annotated[int, typer.Option(min=1, max=32, help="Requests in flight while loading")]


def _quiet_libraries() -> None:
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def _load(programme: DemoProgramme, endpoints: Endpoints, settings: PlatformSettings, concurrency: int) -> LoadReport:
    if await already_loaded(programme, endpoints):
        return LoadReport(skipped=True)
    with _progress() as progress:
        tasks = {
            "territories": progress.add_task("territories", total=len(programme.territories)),
            "actions": progress.add_task("actions", total=len(programme.actions)),
            "grants": progress.add_task("grants", total=len(programme.grants)),
            "sites": progress.add_task("sites", total=len(programme.sites)),
        }

        def advance(phase: str, n: int) -> None:
            progress.advance(tasks[phase], n)

        def on_phase(phase: str) -> None:
            progress.console.log(f"loading: {phase}")

        return await load_programme(programme, endpoints, settings, concurrency=concurrency, advance=advance, on_phase=on_phase)


def _print_report(report: LoadReport) -> None:
    if report.skipped:
        console.print("The demo programme is already loaded: nothing to do.")
    else:
        console.print(
            f"Demo programme loaded in {report.seconds:.0f} s: {report.sent} requests accepted"
            + (f", {report.superseded} already superseded by later versions." if report.superseded else ".")
        )


def _print_urls(base: str, settings: PlatformSettings) -> None:
    console.print(f"\n[bold]Territoires d'industrie platform[/bold] on {base}")
    for name in SERVICES:
        console.print(f"  {name:<19} API docs  {base}/{name}/docs")
    console.print(f"  national indicators    {base}/v1/indicators?scope=national")
    console.print(f"  at the launch          {base}/v1/indicators?scope=national&as_of={F.LAUNCH_AS_OF}")
    console.print(f"  indicator catalogue    {base}/v1/indicators/catalogue")
    console.print(f"  figures vs BILAN.md    ti demo check --url {base}")
    secret = "the development default" if settings.jwt_secret == DEFAULT_JWT_SECRET else "TI_JWT_SECRET"
    console.print(f"  tokens (signed with {secret}): ti token --sub me --scope admin")
    console.print("Demo programme ready. Ctrl-C stops the platform; its data stays under " + str(settings.var_dir) + "/.")


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping a bind-all address to loopback


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    seed: SeedOption = F.SEED,
    concurrency: ConcurrencyOption = 6,
) -> None:
    """Serve the five services in one process (SQLite under TI_VAR_DIR), load the demo if needed, keep serving."""
    import uvicorn
    from ti_shared.embedded import create_embedded_app

    for service in SERVICES:  # the embedded mode keeps its SQLite files under TI_VAR_DIR and its bus local
        os.environ.pop(env_prefix(service) + "DATABASE_URL", None)
    os.environ["TI_BUS"] = "local"
    settings = PlatformSettings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.jwt_secret == DEFAULT_JWT_SECRET:
        console.print(f"TI_JWT_SECRET is not set: tokens are signed with the development default {DEFAULT_JWT_SECRET!r}.")
    _quiet_libraries()
    application = create_embedded_app()
    _quiet_libraries()
    config = uvicorn.Config(
        application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10, lifespan="on"
    )
    server = uvicorn.Server(config)
    base = f"http://{_client_host(host)}:{port}"

    async def _serve() -> int:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving
                return 1
            await asyncio.sleep(0.05)
        loading = asyncio.create_task(_load(generate(seed), Endpoints.single(base), settings, concurrency))
        await asyncio.wait({serving, loading}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if loading.done():
            error = loading.exception()
            if error is None:
                _print_report(loading.result())
                _print_urls(base, settings)
            else:
                console.print(f"[red]The demo could not be loaded:[/red] {error}")
                code = 1
                server.should_exit = True
        else:
            loading.cancel()
        await serving
        return code

    code = asyncio.run(_serve())
    raise typer.Exit(code)


@app.command()
def load(
    url: Annotated[str, typer.Option(help="Base URL of the platform (embedded mode or reverse proxy)")] = "http://127.0.0.1:8000",
    distributed: Annotated[bool, typer.Option(help="Talk to the five services on ports 8001-8005 of --host")] = False,
    host: Annotated[str, typer.Option(help="Host of the services with --distributed")] = "127.0.0.1",
    seed: SeedOption = F.SEED,
    concurrency: ConcurrencyOption = 6,
) -> None:
    """Load the demo programme into a running platform (skipped when it is already there)."""
    endpoints = Endpoints.distributed(host) if distributed else Endpoints.single(url)
    _quiet_libraries()
    try:
        report = asyncio.run(_load(generate(seed), endpoints, PlatformSettings(), concurrency))
    except (LoadError, TimeoutError, httpx.HTTPError) as exc:
        console.print(f"[red]The demo could not be loaded:[/red] {exc}")
        raise typer.Exit(1) from exc
    _print_report(report)


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option(help="Directory to write the JSON files into")],
    seed: SeedOption = F.SEED,
) -> None:
    """Write the demo's payloads as JSON files, and the files it imports (plans, the CNIG inventory, ANCT's
    SCDL « subventions » files) as it sends them under ``files/``, for inspection or a dry run."""
    programme = generate(seed)
    out.mkdir(parents=True, exist_ok=True)
    imported = [w for w in (*programme.actions, *programme.grant_batches, *programme.site_files()) if w.media_type == "text/csv"]
    (out / "files").mkdir(exist_ok=True)
    for write in imported:
        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in write.entity)
        kind = "plan" if "actions" in write.body else "scdl" if "items" in write.body else "cnig"
        path = out / "files" / f"{kind}-{name}-{write.effective_at:%Y%m%d%H%M}.csv"
        path.write_bytes(write.content())
    console.print(f"{out / 'files'}  ({len(imported)} files as the load sends them)")
    files: dict[str, Any] = {
        "territories.json": [w.as_json() for w in programme.territories],
        "actions.json": [w.as_json() for w in programme.actions],
        "grant-batches.json": [w.as_json() for w in programme.grant_batches],
        "sites.json": [w.as_json() for w in programme.sites],
    }
    for name, content in files.items():
        path = out / name
        path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        console.print(f"{path}  ({len(content)} writes)")


@app.command()
def check(
    url: Annotated[str, typer.Option(help="Base URL of the platform, or of the reporting service")] = "http://127.0.0.1:8000",
    as_of: Annotated[str | None, typer.Option(help="Read the indicators as of this date or instant")] = None,
) -> None:
    """Print each figure of BILAN.md next to the national indicator's value."""

    async def _fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        endpoints = Endpoints.single(url)
        async with httpx.AsyncClient(timeout=30.0) as client:
            await wait_ready(client, endpoints, timeout_s=10)
            return (
                await national_indicators(client, endpoints, as_of),
                await national_indicators(client, endpoints, F.LAUNCH_AS_OF),
            )

    try:
        national, launch = asyncio.run(_fetch())
    except (TimeoutError, httpx.HTTPError) as exc:
        console.print(f"[red]Cannot read the indicators at {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title="BILAN.md vs /v1/indicators?scope=national" + (f"&as_of={as_of}" if as_of else ""))
    for column in ("section", "figure", "BILAN", "indicator", ""):
        table.add_column(column)
    figures = compare(national, launch)
    for f in figures:
        table.add_row(f.section, f.label, f.printed, f.actual, "[green]ok[/green]" if f.ok else "[red]differs[/red]")
    console.print(table)
    wrong = sum(not f.ok for f in figures)
    console.print(f"{len(figures) - wrong} of {len(figures)} figures match.")
    raise typer.Exit(1 if wrong else 0)
