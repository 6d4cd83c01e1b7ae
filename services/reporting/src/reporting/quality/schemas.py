"""Pydantic models of ``GET /v1/quality``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ActionsQuality(BaseModel):
    count: int = Field(description="Actions of the territory's plan (not deleted)")
    non_renseigne: int = Field(description="Actions whose status is non_renseigne")
    non_renseigne_share: float | None = Field(description="non_renseigne / count (6 decimals), null without actions")
    without_theme: int
    without_budget: int


class GrantsQuality(BaseModel):
    count: int = Field(description="Committed grants carrying the territory")
    without_commune: int


class SitesQuality(BaseModel):
    count: int = Field(description="Labelled sites carrying the territory")


class TerritoryQuality(BaseModel):
    """One territory's data quality."""

    territory_id: str
    region_code: str
    plan_updated_at: datetime | None = Field(
        description="The latest event time of the territory's actions (creations, changes, deletions); null without any"
    )
    plan_stale: bool = Field(description="No plan update within the rhythm before the reference instant")
    actions: ActionsQuality
    grants: GrantsQuality
    sites: SitesQuality
    project_lead_in_post: bool
    checks: dict[str, float | None] = Field(description="Each check of the score in 0…1 (null: does not apply)")
    score: float = Field(description="0…100: the weighted mean of the checks that apply (docs/quality.md)")


class QualitySummary(BaseModel):
    territories: int = Field(description="Active territories of the scope")
    plans_stale: int
    without_project_lead: int
    grants_without_territory: int = Field(description="Committed grants of the scope without territory_id")
    grants_without_commune: int = Field(description="Committed grants of the scope without commune_insee")
    sites_without_territory: int = Field(description="Labelled sites of the scope without territory_id")
    mean_score: float | None


class QualityDocument(BaseModel):
    """The data quality of every active territory of a scope, current or as of an instant."""

    scope: str
    as_of: str | None
    generated_at: datetime
    reference_at: datetime = Field(description="The instant plans are judged at: the as_of instant, or now")
    rhythm_months: int = Field(description="A plan older than this many months before reference_at is stale")
    sort: str
    weights: dict[str, int] = Field(description="The weight of each check in the score")
    summary: QualitySummary
    items: list[TerritoryQuality]
