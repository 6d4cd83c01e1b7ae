"""Pydantic models of the editions' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EditionBody(_Body):
    """What to freeze: the Bilan of ``scope`` as of ``as_of``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Bilan Auvergne-Rhône-Alpes à 1 an du temps II", "scope": "region:84", "as_of": "2024-11-30"}]},
    )

    name: str = Field(min_length=1, max_length=200, description="The edition's title")
    scope: str = Field(max_length=40, description="national, region:<code> or territory:<id>")
    as_of: str = Field(
        max_length=40,
        description="A date YYYY-MM-DD (the end of that day, Europe/Paris) or an instant with an offset; in the past",
    )


class SignOffBody(_Body):
    """A sign-off: an admin signs the edition (it becomes final); a territory's project lead signs for
    one of its territories (``territory_id``, one the edition covers)."""

    territory_id: str | None = Field(default=None, pattern=r"^ti-[0-9]{4}$", description="Required for a project lead")
    comment: str | None = Field(default=None, max_length=1000)


class SignOff(BaseModel):
    role: Literal["admin", "territory_lead"]
    territory_id: str | None
    actor: str = Field(description="The signing token's sub")
    signed_at: datetime
    comment: str | None = None


class Part(BaseModel):
    """One frozen part of the edition: its bytes are returned unchanged, forever."""

    media_type: str
    sha256: str = Field(description="SHA-256 of the part's bytes (hex)")
    bytes: int
    href: str


class Source(BaseModel):
    """The high-water mark of one source when the edition was frozen: the live consumer's next offset
    in each partition of the topic (every event before it was applied)."""

    topic: str
    partitions: dict[str, int]
    events: int = Field(description="Events consumed from the topic (the sum of the next offsets)")


class Edition(BaseModel):
    """A frozen edition of the Bilan."""

    id: str
    name: str
    scope: str
    as_of: str = Field(description="As given: a date, or the instant in UTC")
    frozen_at: datetime
    frozen_by: str
    content_hash: str = Field(
        description="SHA-256 (hex) of the three parts' SHA-256 digests, hex, each followed by a newline, "
        "in the order indicators, html, pdf"
    )
    parts: dict[Literal["indicators", "html", "pdf"], Part]
    sources: list[Source]
    territories: list[str] = Field(description="The territories the scope covered as of the instant")
    sign_offs: list[SignOff]
    final: bool = Field(description="True once an admin has signed")
    final_at: datetime | None
    restatements_href: str
    indicators: dict[str, Any] = Field(description="The frozen indicators document (GET …/indicators gives its bytes)")


class EditionSummary(BaseModel):
    id: str
    name: str
    scope: str
    as_of: str
    frozen_at: datetime
    content_hash: str
    final: bool
    href: str


class EditionPage(BaseModel):
    items: list[EditionSummary]
    next_cursor: str | None


class ResponsibleEvent(BaseModel):
    """An event applied after the freeze, dated on or before ``as_of``, that changed an entity the
    figure counts (the entity's state as of the instant now comes from it)."""

    entity: Literal["territory", "action", "grant", "site"]
    subject: str
    published_version: int | None = Field(description="The version the edition counted (null: the entity was not there)")
    version: int = Field(description="The version counted now")
    time: datetime
    event_id: str | None = Field(default=None, description="The CloudEvent id, when the projection keeps it")


class Restatement(BaseModel):
    code: str = Field(examples=["actions.by_status"])
    key: str = Field(description="The breakdown path inside the figure (empty for a plain value)", examples=["en_cours"])
    published: Any = Field(description="The value in the edition")
    now: Any = Field(description="The value as of the same instant, computed now")
    events: list[ResponsibleEvent]


class Restatements(BaseModel):
    edition_id: str
    scope: str
    as_of: str
    computed_at: datetime
    items: list[Restatement]
