"""Prometheus metrics, labelled by service so that the embedded mode can host all five in one process."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("ti_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "ti_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PENDING = Gauge("ti_outbox_pending", "Committed events not yet published", ["service"])
EVENTS_PUBLISHED = Counter("ti_events_published_total", "Events published by the outbox relay", ["service"])
OUTBOX_PUBLISH_FAILURES = Counter("ti_outbox_publish_failures_total", "Failed publish attempts", ["service"])
CONSUMER_LAG = Gauge("ti_consumer_lag", "Published events not yet applied", ["service", "consumer"])
EVENTS_APPLIED = Counter("ti_events_applied_total", "Events applied by a consumer", ["service", "consumer"])
EVENTS_FETCHED = Counter("ti_events_fetched_total", "Messages fetched by a consumer (applied or not yet)", ["service", "consumer"])
CONSUMER_BATCHES = Counter("ti_consumer_batches_total", "Transactions a consumer committed (batches or catch-up windows)", ["service", "consumer"])
FIRST_FETCH = Gauge("ti_consumer_first_fetch_timestamp_seconds", "When the consumer first fetched a message", ["service", "consumer"])
LAST_COMMIT = Gauge("ti_consumer_last_commit_timestamp_seconds", "When the consumer last committed a transaction", ["service", "consumer"])
EVENTS_SKIPPED = Counter("ti_events_skipped_total", "Duplicate or stale events skipped", ["service", "consumer"])
DEAD_LETTERS = Counter("ti_dead_letters_total", "Events sent to the dead-letter topic", ["service", "consumer"])
EVENT_AGE = Histogram(
    "ti_consumer_event_age_seconds",
    "From an event's time to the commit of the consumer transaction that applied it",
    ["service", "consumer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.375, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)


def observe_many(histogram: Any, amounts: Iterable[float]) -> None:
    """Observe every amount of ``amounts`` on ``histogram`` (a labelled ``Histogram``), as many
    ``observe`` calls would — the same buckets, counts and sum — with one increment per bucket touched
    and one of the sum instead of two per amount."""
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bucket whose bound is >= amount (+Inf last)
        total += amount
    if not any(counts):
        return
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
