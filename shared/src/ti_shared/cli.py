"""The ``ti`` command: tokens, replay and record of event streams, serving; services add their own groups."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from ti_shared.auth import SCOPES, mint_token
from ti_shared.events import ALL_TOPICS, DOMAIN_TOPICS
from ti_shared.progress import progress_bar, rate_of
from ti_shared.settings import PlatformSettings

app = typer.Typer(help="Territoires d'industrie platform command line", no_args_is_help=True)


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Who acts (copied into events as tiactor)")],
    scope: Annotated[list[str], typer.Option(help="Scopes, repeatable or space-separated: " + ", ".join(SCOPES))] = [],  # noqa: B006
    operator: Annotated[str | None, typer.Option(help="ti_operator, e.g. ADEME")] = None,
    territory: Annotated[list[str], typer.Option(help="ti_territories entries, repeatable")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 3600,
) -> None:
    """Mint a local HS256 token signed with TI_JWT_SECRET."""
    scopes = [s for item in scope for s in item.split()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s): {', '.join(unknown)}")
    typer.echo(mint_token(PlatformSettings(), sub=sub, scopes=scopes, operator=operator, territories=territory, ttl_seconds=ttl))


def _platform(bus: str | None) -> PlatformSettings:
    settings = PlatformSettings()
    if bus is not None:
        if bus not in ("kafka", "local"):
            raise typer.BadParameter("--bus is kafka or local")
        settings = settings.model_copy(update={"bus": bus})
    return settings


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON lines, one CloudEvent per line")],
    bus: Annotated[str | None, typer.Option(help="kafka or local (default: TI_BUS)")] = None,
) -> None:
    """Publish a recorded stream, routing each event to its topic by type, keyed by subject."""
    from ti_shared.streams import StreamError, publish_stream, stream_messages

    settings = _platform(bus)
    try:
        messages = stream_messages(file.read_text(encoding="utf-8").splitlines())
    except StreamError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    started = time.monotonic()
    with progress_bar() as bar:
        task = bar.add_task(f"publishing {file.name}", total=len(messages), rate="")

        def report(done: int) -> None:
            bar.update(task, completed=done, rate=rate_of(done, time.monotonic() - started))

        asyncio.run(publish_stream(settings, messages, progress=report))
    seconds = time.monotonic() - started
    typer.echo(f"published {len(messages)} events in {seconds:.1f} s ({rate_of(len(messages), seconds)})")


@app.command()
def record(
    file: Annotated[Path, typer.Argument(help="Where to write the JSON lines")],
    topic: Annotated[list[str], typer.Option(help="Topics to record (default: the four domain topics)")] = [],  # noqa: B006
    bus: Annotated[str | None, typer.Option(help="kafka or local (default: TI_BUS)")] = None,
) -> None:
    """Write every event currently on the topics, in log order per partition, one per line."""
    from ti_shared.bus import make_source

    settings = _platform(bus)
    topics = topic or list(DOMAIN_TOPICS)
    bad = [t for t in topics if t not in ALL_TOPICS]
    if bad:
        raise typer.BadParameter(f"unknown topic(s): {', '.join(bad)}")

    async def _go() -> int:
        source = make_source(settings, "ti-record")
        await source.start(topics, {})
        count = 0
        with file.open("w", encoding="utf-8") as out:
            try:
                while True:
                    batch = await source.fetch(5000, 1.0)
                    for m in batch:
                        out.write(m.value.decode() + "\n")
                    count += len(batch)
                    if not batch and await source.lag() == 0:
                        break
            finally:
                await source.stop()
        return count

    typer.echo(f"recorded {asyncio.run(_go())} events to {file}")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="A service name (territory-registry, …) or 'all' for the embedded mode")] = "all",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve one service, or all five in one process (embedded mode)."""
    import uvicorn

    from ti_shared.embedded import create_embedded_app, load_service_app

    application = create_embedded_app() if service == "all" else load_service_app(service)
    uvicorn.run(application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


@app.command()
def relay(service: Annotated[str, typer.Argument(help="A service name: territory-registry, action-tracker, …")]) -> None:
    """Publish a service's outbox to the bus, in a process of its own (the services run with TI_RELAY=process)."""
    import signal

    from ti_shared.app import run_relay
    from ti_shared.embedded import load_service_spec
    from ti_shared.logging import configure_logging
    from ti_shared.settings import load_settings

    load_service_spec(service)  # an unknown name stops here, listing the installed ones
    settings = load_settings(service)
    configure_logging(json=settings.platform.log_json, level=settings.platform.log_level)

    async def _run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run_relay(settings)

    asyncio.run(_run())


schemas_app = typer.Typer(help="The committed JSON Schemas of the events")
app.add_typer(schemas_app, name="schemas")


@schemas_app.command("write")
def schemas_write(service: Annotated[str, typer.Argument(help="e.g. funding-ledger")]) -> None:
    """Write the JSON Schema of each event type the service publishes into its schemas directory."""
    from ti_shared.embedded import load_service_spec
    from ti_shared.events import write_event_schemas

    spec = load_service_spec(service)
    if spec.schemas_dir is None or not spec.events:
        typer.echo(f"{service} publishes no events")
        return
    for path in write_event_schemas(spec.schemas_dir, list(spec.events)):
        typer.echo(str(path))


@app.command("openapi")
def openapi_write(
    out: Annotated[Path, typer.Option(help="Directory to write <service>.json and platform.json into")] = Path("var/openapi"),
) -> None:
    """Write the OpenAPI document of every service and the single base URL's (platform.json)."""
    import json

    from ti_shared.openapi import documents

    out.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        (out / f"{name}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"{out / name}.json: {sum(len(ops) for ops in doc['paths'].values())} operations")


def _load_plugins() -> None:
    for ep in entry_points(group="ti.cli"):
        try:
            sub = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not disable the others
            print(f"ti: the '{ep.name}' commands are unavailable ({exc!r})", file=sys.stderr)
            continue
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=ep.name)
        else:  # a plain function: one command
            app.command(name=ep.name)(sub)


def main() -> None:
    _load_plugins()
    app(args=sys.argv[1:])
