"""``ti streams …`` (reference streams and their expected indicators) and ``ti conformance`` (a reference
stream replayed into a platform, expected against served), added to the ``ti`` command by ti-testkit (``ti.cli`` entry points)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

streams_app = typer.Typer(help="Reference streams (CONTRACT §5) and the indicators they must give (§6)", no_args_is_help=True)

SeedOption = Annotated[int, typer.Option(help="Seed of the generator: the same seed and size give the same stream")]
SizeOption = Annotated[str, typer.Option(help="tiny (~140 events), small (~570), medium (~2,500) or programme (~9,000)")]


def _read_stream(path: Path) -> list[dict[str, Any]]:
    events = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError as exc:
                raise typer.BadParameter(f"{path} line {n}: not JSON ({exc})") from exc
    return events


@streams_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="The JSON-lines file to write")],
    seed: SeedOption = 1,
    size: SizeOption = "small",
    clean: Annotated[bool, typer.Option(help="No duplicates, no stale redeliveries, events in time order")] = False,
) -> None:
    """Write a reference stream: one CloudEvent per line, with the delivery defects consumers must survive."""
    from ti_shared.streams import to_json_lines

    from ti_testkit.conformance import describe_stream
    from ti_testkit.streams import SIZES, reference_stream

    if size not in SIZES:
        raise typer.BadParameter(f"one of {', '.join(SIZES)}", param_hint="--size")
    events = reference_stream(seed, size, defects=not clean)
    out.write_text(to_json_lines(events), encoding="utf-8")
    typer.echo(f"wrote {out}: {describe_stream(events)}")


@streams_app.command("expected")
def expected(
    file: Annotated[Path, typer.Argument(help="A recorded stream (JSON lines, one CloudEvent per line)")],
    scope: Annotated[list[str], typer.Option(help="national, region:<code>, territory:<id>; repeatable")] = ["national"],  # noqa: B006
    all_scopes: Annotated[bool, typer.Option("--all-scopes", help="National, every region and every territory of the stream")] = False,
    as_of: Annotated[str | None, typer.Option(help="A date (end of that day, Europe/Paris) or an RFC 3339 instant")] = None,
    pretty: Annotated[bool, typer.Option(help="Indented JSON")] = False,
) -> None:
    """Print the indicators the stream must give, one JSON document per scope (the shape of GET /v1/indicators),
    computed by the reference implementation of CONTRACT §6."""
    from ti_testkit.reference import as_of_bound, indicators, scopes_of, states_of

    events = _read_stream(file)
    if as_of is not None:
        try:
            as_of_bound(as_of)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--as-of") from exc
    states = states_of(events, as_of)
    for one in scopes_of(states_of(events)) if all_scopes else scope:
        try:
            doc = {"scope": one, "as_of": as_of, "indicators": indicators(states, one)}
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--scope") from exc
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2 if pretty else None))


def conformance(
    base: Annotated[str, typer.Option(help="Base URL of the platform (its reporting service at least)")],
    kafka: Annotated[str | None, typer.Option(help="Kafka bootstrap HOST:PORT: publish the stream on the contract's topics")] = None,
    topic_prefix: Annotated[str, typer.Option(envvar="TI_TOPIC_PREFIX", help="Prefix of the topic names (our test isolation; none elsewhere)")] = "",
    bus_path: Annotated[Path | None, typer.Option(help="Without --kafka: the local log of the embedded platform (default $TI_VAR_DIR/bus.db)")] = None,
    service_url: Annotated[list[str], typer.Option(help="NAME=URL of a service not behind --base (its /readyz is watched too)")] = [],  # noqa: B006
    seed: SeedOption = 1,
    size: SizeOption = "small",
    stream: Annotated[Path | None, typer.Option(help="Replay this recorded stream instead of generating one")] = None,
    as_of: Annotated[list[str], typer.Option(help="as_of values to check (repeatable; default: a date and an instant)")] = [],  # noqa: B006
    replays: Annotated[int, typer.Option(min=1, max=5, help="Replay the stream this many times (the figures must not change)")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the platform to apply the stream")] = 300.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print every indicator, not only the differing ones")] = False,
) -> None:
    """Replay a reference stream into an EMPTY platform, then print, per scope and indicator, expected against
    served, and a summary line. Exit code 0: every indicator equal; 1: some differ; 2: the run could not be made."""
    from ti_shared.settings import PlatformSettings
    from ti_shared.streams import StreamError

    from ti_testkit.conformance import DEFAULT_AS_OF, ConformanceError, describe_stream, run
    from ti_testkit.platform import connect
    from ti_testkit.streams import SIZES, reference_stream

    if stream is None and size not in SIZES:
        raise typer.BadParameter(f"one of {', '.join(SIZES)}", param_hint="--size")
    services = {}
    for item in service_url:
        name, sep, url = item.partition("=")
        if not sep:
            raise typer.BadParameter("NAME=URL, e.g. reporting=http://127.0.0.1:8005", param_hint="--service-url")
        services[name] = url
    settings = PlatformSettings()
    if kafka is None:
        settings = settings.model_copy(update={"bus": "local", "local_bus_path": bus_path or settings.bus_path})
    platform = connect(base, services=services, kafka=kafka, topic_prefix=topic_prefix, settings=settings)
    platform.can_replay = True
    events = _read_stream(stream) if stream else reference_stream(seed, size)
    origin = f"{stream}" if stream else f"reference stream seed {seed}, size {size}"
    route = f"Kafka {kafka} (topic prefix {topic_prefix!r})" if kafka else f"the local log {settings.bus_path}"
    typer.echo(f"ti conformance: {origin} — {describe_stream(events)}")
    typer.echo(f"into {base} over {route}")
    try:
        report = run(platform, events, as_of=as_of or DEFAULT_AS_OF, replays=replays, timeout_s=timeout, echo=typer.echo, verbose=verbose)
    except (ConformanceError, StreamError, TimeoutError) as exc:
        typer.echo(f"summary: could not run — {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        platform.close()
    raise typer.Exit(0 if report.passed else 1)
