"""The change feed's models: one change is the CloudEvent as published plus ``previous``, ``changed``
and its ``cursor``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
