"""``ti reporting …``: rebuild the projections from the event log."""

from __future__ import annotations

import asyncio
import time

import typer
from rich.progress import Progress
from ti_shared.db import Database
from ti_shared.migrations import upgrade
from ti_shared.progress import progress_bar, rate_of
from ti_shared.settings import load_settings

from reporting.rebuild import RebuildRunning, prepare_rebuild, run_rebuild
from reporting.repository import generations

app = typer.Typer(help="The reporting service: projections and indicators", no_args_is_help=True)


@app.command()
def rebuild() -> None:
    """Replay every topic from offset 0 into fresh tables and swap them in when caught up."""
    from reporting.main import SPEC

    settings = load_settings("reporting")
    started = time.monotonic()

    async def _go(bar: Progress) -> dict[str, object] | None:
        db = Database(settings.database_url)
        try:
            await upgrade(db, SPEC.migrations_dir)
            generation = await prepare_rebuild(db)
            task = bar.add_task(f"rebuilding generation {generation}", total=None, rate="")

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None, rate=rate_of(done, time.monotonic() - started))

            await run_rebuild(db, settings.platform, generation, progress=report)
            async with db.read_session() as session:
                return await generations.latest_run(session)
        finally:
            await db.dispose()

    try:
        with progress_bar() as bar:
            run = asyncio.run(_go(bar))
    except RebuildRunning as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if run is None or run["state"] != "done":
        typer.echo(f"rebuild failed: {run and run['error']}", err=True)
        raise typer.Exit(1)
    seconds = time.monotonic() - started
    applied = int(str(run["events_applied"]))
    typer.echo(
        f"generation {run['generation']} is live ({applied} events applied in {seconds:.1f} s, {rate_of(applied, seconds)})"
    )
