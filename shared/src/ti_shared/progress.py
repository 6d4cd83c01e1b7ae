"""The progress bar of long commands (``ti replay``, ``ti reporting rebuild``): events done / total,
rate, elapsed time and ETA, on stderr; and their summary line's rate."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar() -> Progress:
    """A bar whose tasks take a ``rate`` field (see :func:`rate_of`)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )


def rate_of(done: int, seconds: float) -> str:
    """``12,345 events/s`` (empty before any time has passed)."""
    return f"{done / seconds:,.0f} events/s" if seconds > 0 else ""
