"""Expected against served indicators, value by value.

Served documents may carry more than the contract (new indicator codes, new programmes): extra codes
are ignored, extra breakdown keys are accepted when they hold nothing (0, null, or a programme block
whose ``count`` is 0). Everything the contract defines must be there and equal: integers exactly,
decimal strings exactly as written (two decimals), shares as numbers (``null`` is not ``0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Difference:
    path: str
    expected: Any
    served: Any

    def __str__(self) -> str:
        return f"{self.path}: expected {_show(self.expected)}, served {_show(self.served)}"


MISSING = type("Missing", (), {"__repr__": lambda self: "(missing)"})()


def _show(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _empty(value: Any) -> bool:
    if isinstance(value, Mapping):
        return value.get("count") in (0, None) if "count" in value else all(_empty(v) for v in value.values())
    return value in (0, None)


def _same_leaf(expected: Any, served: Any) -> bool:
    if isinstance(expected, bool) or isinstance(served, bool):
        return expected is served
    if isinstance(expected, float) and isinstance(served, int | float):
        return float(served) == expected
    return type(expected) is type(served) and expected == served


def differences(expected: Mapping[str, Any], served: Mapping[str, Any], prefix: str = "") -> list[Difference]:
    """Every value of ``expected`` that ``served`` lacks or gives otherwise (paths like
    ``grants.by_programme.fonds_vert_ti_te.amount_eur``)."""
    out: list[Difference] = []
    for key, want in expected.items():
        path = f"{prefix}.{key}" if prefix else key
        got = served.get(key, MISSING)
        if isinstance(want, Mapping):
            if not isinstance(got, Mapping):
                out.append(Difference(path, want, got))
            else:
                out += differences(want, got, path)
        elif got is MISSING or not _same_leaf(want, got):
            out.append(Difference(path, want, got))
    if prefix:  # inside a breakdown: keys the contract does not list must hold nothing
        for key, got in served.items():
            if key not in expected and not _empty(got):
                out.append(Difference(f"{prefix}.{key}", MISSING, got))
    return out
