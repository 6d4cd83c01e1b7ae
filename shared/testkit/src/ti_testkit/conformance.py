"""The conformance run: a reference stream replayed into an empty platform, then every scope's indicators
(current, and as of a few instants) compared with the reference computation.

How the stream gets in: over Kafka (``--kafka``: published straight to the contract's topics, as a
recorded stream is, so any implementation of the contract can be checked), or else into the local
durable log of our embedded mode (the file ``ti replay --bus local`` appends to). Waiting: until
``/readyz`` shows ``outbox_pending`` 0 and ``consumer_lag`` 0 (CONTRACT §7) twice in a row; a platform
whose ``/readyz`` does not give them is read once its national indicators have stopped changing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ti_testkit.compare import MISSING, Difference, differences
from ti_testkit.platform import Platform
from ti_testkit.reference import expected_indicators, scopes_of, states_of

#: as_of values checked by default: a date (the end of that day, Paris) and an instant, inside the streams' year
DEFAULT_AS_OF = ("2024-06-30", "2024-10-01T08:30:00Z")
COUNTS = ("territories.count", "actions.count", "grants.count", "sites.count")


class ConformanceError(Exception):
    """The run could not be made (platform unreachable, not empty, never caught up)."""


@dataclass
class ScopeResult:
    scope: str
    as_of: str | None
    expected: dict[str, Any]
    served: dict[str, Any]
    differences: list[Difference] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.scope + (f" as of {self.as_of}" if self.as_of else "")

    def differing_codes(self) -> list[str]:
        return sorted({next(c for c in self.expected if d.path == c or d.path.startswith(c + ".")) for d in self.differences})


@dataclass
class Report:
    results: list[ScopeResult]

    @property
    def passed(self) -> bool:
        return all(not r.differences for r in self.results)

    def summary(self) -> str:
        indicators = sum(len(r.expected) for r in self.results)
        wrong = sum(len(r.differing_codes()) for r in self.results)
        bad_scopes = [r for r in self.results if r.differences]
        current = sum(1 for r in self.results if r.as_of is None)
        line = (
            f"summary: {len(self.results)} scopes ({current} current, {len(self.results) - current} as of), "
            f"{indicators} indicators compared: {indicators - wrong} equal, {wrong} differ"
        )
        if not bad_scopes:
            return line + " — PASS"
        codes = sorted({c for r in bad_scopes for c in r.differing_codes()})
        return line + f" in {len(bad_scopes)} scopes ({', '.join(codes)}) — FAIL"


def describe_stream(events: Sequence[Mapping[str, Any]]) -> str:
    """``N events (D delivered twice, S stale redeliveries), T territories``: a redelivered event is stale
    when a newer version of its entity came before it."""
    seen: set[str] = set()
    newest: dict[str, int] = {}
    duplicates = stale = 0
    for e in events:
        if e["id"] in seen:
            if e["entityversion"] < newest[e["subject"]]:
                stale += 1
            else:
                duplicates += 1
        seen.add(e["id"])
        newest[e["subject"]] = max(newest.get(e["subject"], 0), e["entityversion"])
    territories = len(states_of(events).territories)
    return f"{len(events)} events ({duplicates} delivered twice, {stale} stale redeliveries), {territories} territories"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def wait_applied(platform: Platform, timeout_s: float) -> None:
    """``/readyz`` settled on every endpoint, or (a platform whose ``/readyz`` gives no lag) national
    indicators unchanged for three seconds."""
    states = platform.readiness()
    if all("consumer_lag" in s for s in states.values()):
        platform.settle(timeout_s)
        return
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = platform.indicators("national", wait=False)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 3:
            return
        time.sleep(0.5)
    raise ConformanceError(f"the national indicators were still changing after {timeout_s:.0f} s")


def run(
    platform: Platform,
    events: Sequence[Mapping[str, Any]],
    *,
    as_of: Sequence[str] = DEFAULT_AS_OF,
    replays: int = 1,
    timeout_s: float = 300.0,
    echo: Callable[[str], None] = print,
    verbose: bool = False,
) -> Report:
    """Replay ``events`` ``replays`` times into ``platform`` (which must be empty), wait, compare, print."""
    try:
        before = platform.indicators("national", wait=False)
    except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
        raise ConformanceError(f"cannot read the national indicators of {platform.base_url}: {exc}") from exc
    filled = {c: before.get(c) for c in COUNTS if before.get(c)}
    if filled:
        raise ConformanceError(f"the platform is not empty ({', '.join(f'{c} = {v}' for c, v in filled.items())}): run it on a fresh one")
    started = time.monotonic()
    for _ in range(replays):
        platform.replay(events, wait=False)
    wait_applied(platform, timeout_s)
    echo(f"applied in {time.monotonic() - started:.1f} s ({replays} replay{'s' if replays > 1 else ''})")

    states = states_of(events)
    plan: list[tuple[str, str | None]] = [(s, None) for s in scopes_of(states)]
    plan += [(s, a) for a in as_of for s in scopes_of(states) if not s.startswith("territory:")]
    results = []
    for scope, when in plan:
        expected = expected_indicators(events, scope, when)
        served = platform.indicators(scope, when, wait=False)
        result = ScopeResult(scope, when, expected, served, differences(expected, served))
        results.append(result)
        _print(result, echo, verbose)
    report = Report(results)
    echo(report.summary())
    return report


def _print(result: ScopeResult, echo: Callable[[str], None], verbose: bool) -> None:
    wrong = result.differing_codes()
    status = "ok" if not wrong else f"{len(wrong)} differ"
    echo(f"{result.label:<46} {len(result.expected):>3} indicators  {status}")
    for code, want in result.expected.items():
        if code in wrong:
            for d in result.differences:
                if d.path == code or d.path.startswith(code + "."):
                    echo(f"    ✗ {d.path:<58} expected {_show_leaf(d.expected)}  served {_show_leaf(d.served)}")
        elif verbose:
            echo(f"    ✓ {code:<58} expected = served = {_show(want)}")


def _show_leaf(value: Any) -> str:
    return "(missing)" if value is MISSING else _show(value)
