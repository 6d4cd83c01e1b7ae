"""Pydantic models of the reporting API's responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OperatorApplied(BaseModel):
    """What reporting has applied of one source: the events applied and the latest of them."""

    events_applied: int = Field(description="Events of this source applied to the live figures")
    last_event_time: datetime | None = Field(
        description="The time of the latest event applied (the latest by event time; null before the first)"
    )
    last_event_id: str | None = Field(description="That event's id (the `TI-Event-Id` of the write that made it)")


class SourceApplied(OperatorApplied):
    """What reporting has applied of one source service (and, for the funding ledger, of each operator)."""

    operators: dict[str, OperatorApplied] = Field(
        description="The funding ledger's events per operator (the grant's operator); empty for the other services"
    )


_LAG = Field(
    description="Seconds from that event's time to `checked_at`: how old the freshest data of this source is (it also "
    "grows while the source writes nothing; `consumer_lag` tells what is not applied yet)"
)


class OperatorFreshness(OperatorApplied):
    lag_s: float | None = _LAG


class SourceFreshness(OperatorFreshness):
    operators: dict[str, OperatorFreshness] = Field(
        description="The funding ledger's events per operator (the grant's operator); empty for the other services"
    )


SOURCES_EXAMPLE: Any = {
    "territory-registry": {"events_applied": 412, "last_event_time": "2026-01-05T07:59:58.120Z",
                           "last_event_id": "0b9f6c1e-2f4a-4c7e-9a51-3f1d2b6c8e01", "operators": {}},
    "funding-ledger": {"events_applied": 9000, "last_event_time": "2026-01-05T08:00:00.050Z",
                       "last_event_id": "5d3e…",
                       "operators": {"ADEME": {"events_applied": 9000, "last_event_time": "2026-01-05T08:00:00.050Z",
                                               "last_event_id": "5d3e…"}}},
}
FRESHNESS_EXAMPLE: Any = {
    "territory-registry": {**SOURCES_EXAMPLE["territory-registry"], "lag_s": 2.4},
    "funding-ledger": {
        **SOURCES_EXAMPLE["funding-ledger"], "lag_s": 0.43,
        "operators": {"ADEME": {**SOURCES_EXAMPLE["funding-ledger"]["operators"]["ADEME"], "lag_s": 0.43}},
    },
}


class Freshness(BaseModel):
    """How fresh the indicators are: what reporting has applied of each source, and what it has not yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"checked_at": "2026-01-05T08:00:00.480Z", "generation": 1, "consumer_lag": 0, "sources": FRESHNESS_EXAMPLE}
    ]})

    checked_at: datetime = Field(description="When this was answered (the lags are counted to it)")
    generation: int = Field(description="The live generation of the projections (a rebuild makes a new one)")
    consumer_lag: int | None = Field(
        description="Events published on the four topics and not applied yet by the indicators' consumer "
        "(null when the bus cannot tell)"
    )
    sources: dict[str, SourceFreshness] = Field(description="Per source service (CONTRACT §1)")


class IndicatorsDocument(BaseModel):
    """The indicators of one scope, current or as of a past instant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "scope": "region:84",
                    "as_of": None,
                    "generated_at": "2026-01-05T08:00:00Z",
                    "indicators": {
                        "territories.count": 27,
                        "actions.count": 412,
                        "actions.by_status": {"amont": 40, "en_cours": 150},
                        "grants.amount_eur": "12345678.00",
                        "sites.workshop_held_share": 0.875,
                    },
                    "sources": SOURCES_EXAMPLE,
                }
            ]
        }
    )

    scope: str = Field(description="national, region:<code> or territory:<id>")
    as_of: str | None = Field(description="The as_of asked for (a date or a UTC instant), null for the current figures")
    generated_at: datetime = Field(description="When these figures were computed")
    indicators: dict[str, Any] = Field(description="Indicator code → value (CONTRACT §6)")
    sources: dict[str, SourceApplied] = Field(
        description="What the figures include of each source service: as GET /v1/indicators/freshness gives it, "
        "without the lags (a response is a function of what was applied; the ETag is the figures')",
        examples=[SOURCES_EXAMPLE],
    )


class IndicatorDefinitionOut(BaseModel):
    code: str = Field(examples=["grants.amount_eur"])
    label: str = Field(examples=["Montant des subventions engagées"])
    unit: str = Field(examples=["EUR"])
    definition: str
    breakdown: list[str] = Field(description="Keys of the breakdown map (empty for a plain value)")
    breakdown_labels: dict[str, str] = Field(
        default_factory=dict,
        description="French label of each key met in the breakdown map (programmes, axes, statuses, regions, …)",
    )


class Catalogue(BaseModel):
    items: list[IndicatorDefinitionOut]


class RebuildStatus(BaseModel):
    """A rebuild: every topic replayed from offset 0 into a fresh generation, swapped in when caught up."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"generation": 2, "state": "running", "started_at": "2026-01-05T08:00:00Z", "finished_at": None,
                 "events_applied": 12000, "error": None}
            ]
        }
    )

    generation: int
    state: Literal["running", "done", "failed"]
    started_at: datetime
    finished_at: datetime | None
    events_applied: int
    error: str | None = None


class ExplainedEntity(BaseModel):
    """One entity that makes a figure: the version counted, the event that set it, what it contributes."""

    entity: Literal["territory", "action", "grant", "site"]
    id: str
    version: int
    event_id: str = Field(description="The CloudEvent id of the event that set this version")
    time: datetime = Field(description="That event's time")
    contribution: dict[str, Any] = Field(
        description="What the entity adds to the figure's inputs: counters by name (money and areas as decimal "
        "strings), the values it brings to a distinct count by kind (epci, region…), its area for a median",
        examples=[{"grants.amount_eur": "1500000.00"}, {"epci": ["200071751"]}],
    )


class Explanation(BaseModel):
    """The entities whose contribution makes one figure of a scope, as of an instant (null: now)."""

    scope: str
    code: str
    key: str | None = Field(default=None, description="The breakdown key explained (null: the whole figure)")
    as_of: str | None
    value: Any = Field(description="The figure itself (its value at key), as GET /v1/indicators gives it")
    items: list[ExplainedEntity]
    next_cursor: str | None


class EventBetween(BaseModel):
    """An event applied between the two instants that changed an entity counted in the figure."""

    entity: Literal["territory", "action", "grant", "site"]
    id: str
    version: int
    event_id: str
    time: datetime


class ChangedFigure(BaseModel):
    code: str
    key: str = Field(description="The breakdown path inside the indicator ('' for a plain value)")
    before: Any = Field(description="The value as of `from`")
    after: Any = Field(description="The value as of `to`")
    events: list[EventBetween] = Field(description="The events in between that changed the entities counted in it")


class IndicatorsDiff(BaseModel):
    """Every figure of a scope that differs between two instants, with the events in between."""

    scope: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    items: list[ChangedFigure]

    model_config = ConfigDict(populate_by_name=True)
