"""``ti reporting …``: rebuild the projections from the event log."""

from __future__ import annotations

import asyncio

import typer
from ti_shared.db import Database
from ti_shared.migrations import upgrade
from ti_shared.settings import load_settings

from reporting import repository
from reporting.rebuild import RebuildRunning, prepare_rebuild, run_rebuild

app = typer.Typer(help="The reporting service: projections and indicators", no_args_is_help=True)


@app.command()
def rebuild() -> None:
    """Replay every topic from offset 0 into fresh tables and swap them in when caught up."""
    from reporting.main import SPEC

    settings = load_settings("reporting")

    async def _go() -> dict[str, object] | None:
        db = Database(settings.database_url)
        try:
            await upgrade(db, SPEC.migrations_dir)
            generation = await prepare_rebuild(db)
            typer.echo(f"rebuilding generation {generation} from offset 0…")
            await run_rebuild(db, settings.platform, generation)
            async with db.read_session() as session:
                return await repository.latest_run(session)
        finally:
            await db.dispose()

    try:
        run = asyncio.run(_go())
    except RebuildRunning as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if run is None or run["state"] != "done":
        typer.echo(f"rebuild failed: {run and run['error']}", err=True)
        raise typer.Exit(1)
    typer.echo(f"generation {run['generation']} is live ({run['events_applied']} events applied)")
