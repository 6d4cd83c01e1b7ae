"""Reference streams: ``ti_shared.streams.generate_stream`` at named sizes, with the delivery defects every
consumer must survive (CONTRACT §5).

With ``defects`` (the default) a stream carries: about 5 % of its events delivered twice (the same event
id, later in the stream), about 3 % stale redeliveries (an older version of an entity re-sent after a
newer one), and the entities' event sequences interleaved at random across the four topics (each
entity's own order kept, as Kafka keeps it per key). Besides: territories that change region or are
withdrawn, actions deleted or pointing at territories that never exist, grants amended, disbursed,
cancelled, without territory or without commune (or with a commune outside their territory's region),
withdrawn sites. The same seed and size give the same stream, byte for byte, for a given version of the
platform's packages.
"""

from __future__ import annotations

from typing import Any

from ti_shared.streams import StreamOptions, generate_stream

#: size → entity counts (events: about 2.6 per action, 2.2 per grant, 1.75 per territory or site)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"territories": 4, "actions": 30, "grants": 12, "sites": 4, "unknown_territory_actions": 2},
    "small": {"territories": 12, "actions": 150, "grants": 40, "sites": 12},
    "medium": {"territories": 40, "actions": 700, "grants": 160, "sites": 40},
    "programme": {"territories": 183, "actions": 2812, "grants": 300, "sites": 55},
}
DEFECTS: dict[str, Any] = {"duplicate_rate": 0.05, "stale_rate": 0.03, "shuffle": True}


def stream_options(size: str = "small", *, defects: bool = True) -> StreamOptions:
    """The generator's options of a named size (``tiny``, ``small``, ``medium``, ``programme``)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r}: one of {', '.join(SIZES)}")
    return StreamOptions(**SIZES[size], **(DEFECTS if defects else {}))


def reference_stream(seed: int = 1, size: str = "small", *, defects: bool = True) -> list[dict[str, Any]]:
    """The CloudEvents of the reference stream of ``seed`` and ``size``."""
    return generate_stream(seed, stream_options(size, defects=defects))
