"""The reporting service publishes no domain events (its outbox only carries dead letters)."""

from __future__ import annotations

from ti_shared.events import EventSpec

EVENTS: list[EventSpec] = []
