"""The editions' rules (no I/O): the content hash, who may sign, which figures are restated and the
changes responsible for each."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from reporting.domain import AsOf
from reporting.editions import domain


def test_the_content_hash_is_the_hash_of_the_parts_digests() -> None:
    parts = {"indicators": b"{}", "html": "<p>é</p>".encode(), "pdf": b"%PDF-1.7"}
    lines = "".join(hashlib.sha256(parts[n]).hexdigest() + "\n" for n in ("indicators", "html", "pdf"))
    assert domain.content_hash(parts) == hashlib.sha256(lines.encode()).hexdigest()
    assert domain.content_hash({**parts, "pdf": b"%PDF-1.6"}) != domain.content_hash(parts)


def test_an_edition_is_as_of_a_past_instant() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    domain.check_freezable(AsOf(datetime(2026, 1, 5, 11, tzinfo=UTC), True, "x"), now)
    with pytest.raises(domain.EditionRefused) as refused:
        domain.check_freezable(AsOf(datetime(2026, 1, 5, 13, tzinfo=UTC), True, "x"), now)
    assert (refused.value.status, refused.value.loc) == (422, ["body", "as_of"])


def _signer(**kwargs: Any) -> domain.Signer:
    values: dict[str, Any] = {"is_admin": False, "own_territories": ["ti-5301"], "territory_id": "ti-5301",
                              "covered": ["ti-5301", "ti-5302"], "final": False}
    return domain.signer_of(**(values | kwargs))


def test_who_may_sign() -> None:
    assert _signer() == domain.Signer("territory_lead", "ti-5301")
    assert _signer(is_admin=True, territory_id=None) == domain.Signer("admin", None)
    for kwargs, status in (
        ({"territory_id": "ti-5302"}, 403),  # not its territory
        ({"own_territories": ["ti-8401"], "territory_id": "ti-8401"}, 422),  # not in the edition
        ({"territory_id": None}, 422),
        ({"is_admin": True}, 422),  # an admin signs the whole edition
        ({"final": True}, 409),
        ({"is_admin": True, "territory_id": None, "final": True}, 409),
    ):
        with pytest.raises(domain.EditionRefused) as refused:
            _signer(**kwargs)
        assert refused.value.status == status, kwargs


def test_changed_figures_are_the_leaves_that_differ() -> None:
    published = {"a.count": 3, "a.by": {"x": 1, "y": 2}, "a.share": {"x": 0.5}, "g.sum": "1.00"}
    now = {"a.count": 3, "a.by": {"x": 2, "y": 2}, "a.share": {"x": None}, "g.sum": "1.00", "n.new": 1}
    assert domain.changed_figures(published, now) == [
        ("a.by", "x", 1, 2), ("a.share", "x", 0.5, None), ("n.new", "", None, 1),
    ]
    assert domain.changed_figures(published, published) == []


def _count(rows: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """A small engine: (id, status, département) rows → a count, a breakdown and a distinct count."""
    rows = list(rows)
    return {
        "count": len(rows),
        "by_status": {s: sum(1 for r in rows if r[1] == s) for s in ("a", "b")},
        "departements": len({r[2] for r in rows}),
    }


def test_each_restated_figure_names_the_changes_that_made_it() -> None:
    published_rows = {"x": ("x", "a", "01"), "y": ("y", "a", "01")}
    now = {"x": ("x", "b", "01"), "y": ("y", "a", "01"), "z": ("z", "a", "02"), "w": ("w", "a", "03")}
    changed: dict[str, tuple[str, str, str] | None] = {"x": published_rows["x"], "z": None, "w": None}
    figures = [(c, k) for c, k, _, _ in domain.changed_figures(_count(published_rows.values()), _count(now.values()))]
    got = domain.responsible_entities(figures, now, changed, _count)
    assert got == {
        ("count", ""): ["z", "w"],
        ("by_status", "a"): ["x", "z", "w"],
        ("by_status", "b"): ["x"],
        ("departements", ""): ["z", "w"],
    }


def test_a_figure_no_single_change_explains_lists_every_change() -> None:
    def at_least_three(rows: Iterable[str]) -> dict[str, Any]:
        return {"three": len(set(rows)) >= 3}

    # one change alone neither makes nor unmakes it: three new entities together do
    now = {"p": "p", "q": "q", "r": "r", "s": "s"}
    got = domain.responsible_entities([("three", "")], now, {"q": None, "r": None, "s": None}, at_least_three)
    assert got == {("three", ""): ["q", "r", "s"]}
