"""The change feed's models: one change is the CloudEvent as published plus ``previous``, ``changed``
and its ``cursor``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ti_shared.types import IsoInstant

CHANGE_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "5d0c8c1e-7d1f-4c53-9c55-0f3a5c0c2b9e",
    "source": "/services/site-catalog",
    "type": "fr.anct.ti.site.updated.v1",
    "subject": "13004_SITE-ECO_00001",
    "time": "2024-05-02T08:00:00Z",
    "datacontenttype": "application/json",
    "entityversion": 2,
    "tiactor": "anct-import",
    "data": {"id": "13004_SITE-ECO_00001", "version": 2, "area_ha": "30.00", "status": "labelled"},
    "previous": {"id": "13004_SITE-ECO_00001", "version": 1, "area_ha": "25.00", "status": "labelled"},
    "changed": ["area_ha"],
    "cursor": "WzQyXQ",
}


class Change(BaseModel):
    """One change of the feed: the CloudEvent as it was published (its extension attributes too), the
    entity's state before it and the fields it changed."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [CHANGE_EXAMPLE]})

    specversion: Literal["1.0"]
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: str
    entityversion: int
    tiactor: str
    data: dict[str, Any] = Field(description="The entity's whole state after the change")
    previous: dict[str, Any] | None = Field(
        description="The entity's state before the change (the data of its previous version), null on creation"
    )
    changed: list[str] = Field(
        description="The fields of data that differ from previous (every field on creation), without version and updated_at"
    )
    cursor: str = Field(description="This change's position: pass it as ?after= (or Last-Event-ID) to read what follows")


SUBSCRIPTION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class SubscriptionBody(BaseModel):
    """A webhook subscription as its owner writes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://reuser.example.fr/hooks/ti", "types": ["fr.anct.ti.action.deleted.v1"], "operator": None,
                 "description": "Plans d'action, suppressions", "rotate_secret": False}
            ]
        },
    )

    url: str = Field(min_length=8, max_length=2000, description="An http(s) URL; each change is POSTed to it")
    types: list[str] = Field(default_factory=list, max_length=20, description="Event types to deliver (empty: every type)")
    operator: str | None = Field(
        default=None, pattern=r"^[A-Z][A-Z0-9_]{1,15}$", description="Only this operator's grant changes (grants need a token that reads them)"
    )
    description: str = Field(default="", max_length=500)
    rotate_secret: bool = Field(default=False, description="Generate a new secret (shown once); the old one signs 24 h more")


class Subscription(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "reuser-actions", "url": "https://reuser.example.fr/hooks/ti", "types": [], "operator": None,
                 "description": "", "state": "paused", "paused_reason": "20 failed deliveries in a row; last: HTTP 503",
                 "failures": 20, "position": "WzQyXQ", "next_attempt_at": None, "version": 3,
                 "created_at": "2026-12-01T08:00:00Z", "updated_at": "2026-12-01T09:00:00Z", "secret": None}
            ]
        }
    )

    id: str
    url: str
    types: list[str]
    operator: str | None
    description: str
    state: Literal["active", "paused"]
    paused_reason: str | None
    failures: int = Field(description="Failed deliveries in a row")
    position: str | None = Field(description="The cursor of the last change delivered (null: none yet)")
    next_attempt_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(description="The signing secret: given once, on creation and on rotation (else null)")


class DeliveryAttempt(BaseModel):
    id: int
    change_cursor: str
    event_id: str = Field(description="The change's event id: the webhook-id header, the same on every retry and replay")
    attempt: int
    attempted_at: datetime
    outcome: Literal["delivered", "failed"]
    http_status: int | None
    error: str | None
    latency_ms: int
    next_retry_at: datetime | None


class ReplayBody(BaseModel):
    """Where a replay starts: after a cursor, or at the first change at or after an instant."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"since": "2024-11-30T10:00:00Z"}]})

    after: str | None = Field(default=None, max_length=512, description="A change's cursor (null with since)")
    since: IsoInstant | None = Field(default=None, description="An RFC 3339 instant with its offset")
