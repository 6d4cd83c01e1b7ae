"""The event-age histogram observed once per committed batch (``observe_many``): the same buckets,
counts and sum as one ``observe`` per event."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram
from ti_shared.metrics import EVENT_AGE, observe_many

BUCKETS = EVENT_AGE._upper_bounds


def histogram() -> Histogram:
    return Histogram("age_seconds", "ages", ["consumer"], buckets=BUCKETS, registry=CollectorRegistry())


def samples(h: Histogram) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for m in h.collect() for s in m.samples if not s.name.endswith("_created")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_observe_many_counts_each_amount_in_the_bucket_observe_puts_it_in(seed: int) -> None:
    rng = random.Random(seed)
    bounds = [b for b in BUCKETS if b != float("inf")]
    # amounts on the bounds themselves (le is inclusive), between them, zero and beyond the last
    amounts = [rng.choice(bounds) for _ in range(50)] + [rng.uniform(0, 4000) for _ in range(200)] + [0.0, 1e6]
    one, many = histogram(), histogram()
    for amount in amounts:
        one.labels(consumer="c").observe(amount)
    observe_many(many.labels(consumer="c"), amounts[:100])
    observe_many(many.labels(consumer="c"), amounts[100:])
    expected, got = samples(one), samples(many)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, rel=1e-12)
        else:
            assert got[key] == value, key
    assert got[("age_seconds_count", "")] == len(amounts)


def test_observe_many_of_nothing_observes_nothing() -> None:
    h = histogram()
    observe_many(h.labels(consumer="c"), [])
    assert all(v == 0 for v in samples(h).values())
