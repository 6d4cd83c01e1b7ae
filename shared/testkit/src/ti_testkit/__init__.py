"""The platform's test kit: a pytest plugin (fixtures ``ti_platform`` and ``ti_remote_platform``),
reference streams and a reference computation of their indicators, and the conformance run.
See docs/testing-against-the-platform.md.

Names are imported on first use, so that loading the pytest plugin costs nothing to test suites that
do not use it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ti_testkit.compare import Difference, differences
    from ti_testkit.embedded import EmbeddedPlatform, start_embedded
    from ti_testkit.platform import ROLES, Platform, connect
    from ti_testkit.reference import expected_indicators, indicators, scopes_of, states_of

_WHERE = {
    "Difference": "compare", "differences": "compare",
    "EmbeddedPlatform": "embedded", "start_embedded": "embedded",
    "ROLES": "platform", "Platform": "platform", "connect": "platform",
    "expected_indicators": "reference", "indicators": "reference", "scopes_of": "reference", "states_of": "reference",
}  # fmt: skip

__all__ = [
    "ROLES",
    "Difference",
    "EmbeddedPlatform",
    "Platform",
    "connect",
    "differences",
    "expected_indicators",
    "indicators",
    "scopes_of",
    "start_embedded",
    "states_of",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"ti_testkit.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ti_testkit' has no attribute {name!r}")
