"""The indicators of CONTRACT §6 the suite expects from what it wrote: the test kit's reference
computation (independent of reporting) over the final states the suite knows (its Model)."""

from __future__ import annotations

from typing import Any

from e2e_harness import Model
from ti_testkit.compare import differences
from ti_testkit.reference import States, indicators


def states_of(model: Model) -> States:
    """The model's final states, as the reference takes them (grants by ``OPERATOR/ref``)."""
    return States(
        territories=dict(model.territories),
        actions=dict(model.actions),
        grants={f"{op}/{ref}": g for (op, ref), g in model.grants.items()},
        sites=dict(model.sites),
    )


def expected_indicators(model: Model, scope: str) -> dict[str, Any]:
    """Every indicator of ``scope`` (``national``, ``region:<code>``, ``territory:<id>``)."""
    return indicators(states_of(model), scope)


async def assert_indicators(platform: Any, model: Model, scopes: list[str]) -> dict[str, dict[str, Any]]:
    """Compare reporting's indicators with the reference's, for each scope; returns what reporting said."""
    seen: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for scope in scopes:
        actual = await platform.indicators(scope)
        seen[scope] = actual
        problems += [f"{scope}: {d}" for d in differences(expected_indicators(model, scope), actual)]
    assert not problems, "indicators differ from the reference computation:\n" + "\n".join(problems)
    return seen
