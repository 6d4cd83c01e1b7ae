"""Data quality per territory (no I/O): plan freshness at the semester rhythm, incomplete actions and
grants, the project lead, the score, the scope's totals and the sort."""

from __future__ import annotations

from datetime import UTC, datetime

from reporting.domain import ActionRow, GrantRow, SiteRow, TerritoryRow
from reporting.quality import domain as quality

AT = datetime(2024, 11, 30, 12, tzinfo=UTC)


def territory(tid: str, region: str = "53", *, lead: bool = True, status: str = "active") -> TerritoryRow:
    return TerritoryRow(tid, 1, region, status, (), lead, False, False)


def action(aid: str, tid: str, *, status: str = "en_cours", themes: tuple[str, ...] = ("tiers_lieux",),
           budget: bool = True, deleted: bool = False) -> ActionRow:
    return ActionRow(aid, 1, tid, "foncier", status, themes, deleted, budget)


def grant(gid: str, tid: str | None, departement: str | None, region: str | None = "53") -> GrantRow:
    return GrantRow(gid, 1, "fonds_vert_ti_te", "committed", tid, departement, region if departement else None,
                    100, 0, 0, 0, 0, (), None)


def site(sid: str, tid: str | None, region: str = "53") -> SiteRow:
    return SiteRow(sid, 1, tid, region, "labelled", 100, False, False, False, "ready")


def test_months_before_keeps_the_day_or_takes_the_months_last() -> None:
    assert quality.months_before(datetime(2024, 11, 30, tzinfo=UTC), 6) == datetime(2024, 5, 30, tzinfo=UTC)
    assert quality.months_before(datetime(2024, 8, 31, tzinfo=UTC), 6) == datetime(2024, 2, 29, tzinfo=UTC)
    assert quality.months_before(datetime(2024, 3, 15, tzinfo=UTC), 6) == datetime(2023, 9, 15, tzinfo=UTC)


def test_each_territory_of_the_scope_is_assessed() -> None:
    territories = [territory("ti-5301"), territory("ti-5302", lead=False), territory("ti-8401", "84"),
                   territory("ti-5303", status="withdrawn")]
    actions = [
        (action("A1", "ti-5301"), datetime(2024, 10, 1, tzinfo=UTC)),
        (action("A2", "ti-5301", status="non_renseigne", themes=(), budget=False), datetime(2024, 9, 1, tzinfo=UTC)),
        (action("A3", "ti-5301", deleted=True), datetime(2024, 11, 1, tzinfo=UTC)),  # a change of the plan
        (action("B1", "ti-5302"), datetime(2024, 3, 1, tzinfo=UTC)),  # older than six months
        (action("C1", "ti-8401"), datetime(2024, 11, 1, tzinfo=UTC)),
    ]
    grants = [grant("G1", "ti-5301", "29"), grant("G2", "ti-5301", None), grant("G3", None, "35"),
              grant("G4", None, "69", "84")]
    sites = [site("S1", "ti-5301"), site("S2", None), site("S3", None, "84")]
    items, totals = quality.assess("region:53", territories, actions, grants, sites, at=AT)
    by_id = {q.territory_id: q for q in items}
    assert set(by_id) == {"ti-5301", "ti-5302"}
    first, second = by_id["ti-5301"], by_id["ti-5302"]
    assert first.plan_updated_at == datetime(2024, 11, 1, tzinfo=UTC) and not first.plan_stale
    assert (first.actions, first.non_renseigne, first.without_theme, first.without_budget) == (2, 1, 1, 1)
    assert (first.grants, first.grants_without_commune, first.sites) == (2, 1, 1)
    assert first.non_renseigne_share == 0.5
    # 3 fresh + 2×½ + ½ + ½ + ½ + 2 in post, over 10
    assert first.score == 75.0
    assert second.plan_stale and not second.project_lead_in_post
    assert second.checks["grants_with_commune"] is None  # no grant: the check does not apply
    assert second.score == round(100 * 4 / 9, 1)
    assert totals == {"grants_without_territory": 1, "grants_without_commune": 1, "sites_without_territory": 1,
                      "territories": 2, "plans_stale": 1, "without_project_lead": 1}
    national, totals = quality.assess("national", territories, actions, grants, sites, at=AT)
    assert len(national) == 3 and totals["grants_without_territory"] == 2 and totals["sites_without_territory"] == 2
    alone, _ = quality.assess("territory:ti-5302", territories, actions, grants, sites, at=AT, rhythm_months=12)
    assert [q.territory_id for q in alone] == ["ti-5302"] and not alone[0].plan_stale


def test_a_territory_without_actions_has_a_stale_plan_and_fails_the_action_checks() -> None:
    items, _ = quality.assess("national", [territory("ti-5301", lead=False)], [], [], [], at=AT)
    assert items[0].plan_updated_at is None and items[0].plan_stale and items[0].score == 0.0


def test_sorting() -> None:
    items, _ = quality.assess(
        "national", [territory("ti-5301"), territory("ti-5302", lead=False), territory("ti-5303")],
        [(action("A", "ti-5301"), AT), (action("B", "ti-5303", status="non_renseigne"), AT)], [], [], at=AT,
    )
    assert [q.territory_id for q in quality.sort_items(items, "score")] == ["ti-5302", "ti-5303", "ti-5301"]
    assert [q.territory_id for q in quality.sort_items(items, "-score")] == ["ti-5301", "ti-5303", "ti-5302"]
    # nulls last, whichever the direction
    assert [q.territory_id for q in quality.sort_items(items, "-non_renseigne_share")] == ["ti-5303", "ti-5301", "ti-5302"]
    assert [q.territory_id for q in quality.sort_items(items, "-territory_id")] == ["ti-5303", "ti-5302", "ti-5301"]
