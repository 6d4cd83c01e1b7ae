"""Scenario 1: partners push concurrently, with retries; every accepted write counts exactly once."""

from __future__ import annotations

import pytest
from e2e_expected import assert_indicators
from e2e_harness import Model, Platform

pytestmark = pytest.mark.integration


async def test_every_accepted_write_counts_once(platform: Platform, model: Model, pushed: dict[str, str]) -> None:
    first = sorted(pushed)[0]
    await platform.wait_settled()
    seen = await assert_indicators(platform, model, ["national", "region:84", "region:93", f"territory:{first}"])
    assert seen["national"]["grants.count"] == sum(1 for g in model.grants.values() if g["status"] == "committed") > 20
    assert seen["national"]["actions.count"] > 25


async def test_published_events_match_the_writes(platform: Platform, model: Model, pushed: dict[str, str]) -> None:
    """One event per real change: the topics hold exactly as many events as versions were created."""
    counts = await platform.topic_counts()
    by_topic = {t.removeprefix(platform.prefix): n for t, n in counts.items()}
    assert by_topic["ti.territories"] == len(model.territories)
    assert by_topic["ti.sites"] == len(model.sites)
    # grants: one commitment each, ADEME's amendment and payment, BPI's cancellation
    assert by_topic["ti.grants"] == len(model.grants) + 3
    # actions: one creation each, the lead's PATCH, DELETE and the import's status change
    assert by_topic["ti.actions"] == len(model.actions) + 3
    assert by_topic["ti.dead-letters"] == 0
