"""The change feed's pure rules."""

from __future__ import annotations

import json

from reporting.feed.domain import Reader, changed_fields, operator_of, sse_frame, unknown_types


def test_a_creation_changes_every_field_but_the_bookkeeping() -> None:
    assert changed_fields(None, {"id": "a", "version": 1, "updated_at": "t", "status": "x", "note": None}) == ["id", "note", "status"]


def test_an_update_lists_what_differs_a_field_gone_or_added_included() -> None:
    before = {"id": "a", "version": 1, "status": "x", "gone": 1, "same": [1, 2]}
    after = {"id": "a", "version": 2, "status": "y", "new": None, "same": [1, 2]}
    assert changed_fields(before, after) == ["gone", "new", "status"]
    assert changed_fields(after, {**after, "version": 3, "updated_at": "later"}) == []


def test_readers_of_grant_changes_follow_the_grant_read_rules() -> None:
    assert Reader.of(authenticated=False, is_admin=False, operator=None) == Reader(grants=False)
    assert Reader.of(authenticated=True, is_admin=False, operator=None) == Reader(grants=False)
    assert Reader.of(authenticated=True, is_admin=False, operator="ADEME") == Reader(grants=True, operator="ADEME")
    assert Reader.of(authenticated=True, is_admin=True, operator="ADEME") == Reader(grants=True)
    assert operator_of("ti.grants", {"operator": "BPI"}) == "BPI" and operator_of("ti.sites", {"operator": "BPI"}) is None


def test_unknown_types_and_the_sse_frame() -> None:
    assert unknown_types({"fr.anct.ti.site.updated.v1", "fr.anct.ti.site.sold.v1"}) == ["fr.anct.ti.site.sold.v1"]
    frame = sse_frame("WzFd", "fr.anct.ti.site.updated.v1", {"a": "é\nb"}).decode()
    lines = frame.split("\n")
    assert lines[:2] == ["id: WzFd", "event: fr.anct.ti.site.updated.v1"] and json.loads(lines[2].removeprefix("data: ")) == {"a": "é\nb"}
    assert frame.endswith("\n\n") and frame.count("\n") == 4
