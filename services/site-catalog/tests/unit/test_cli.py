from site_catalog.cli import summarize


def test_summary_of_an_applied_import() -> None:
    body = {
        "id": "abc", "mode": "partial", "status": "applied", "row_count": 2,
        "counts": {"created": 1, "updated": 0, "unchanged": 0, "rejected": 1},
        "rows": [
            {"row": 2, "site_id": "S-1", "outcome": "created", "errors": []},
            {"row": 3, "site_id": "S-2", "outcome": "rejected", "errors": [{"column": "site_surf_brute", "msg": "bad"}]},
        ],
    }
    lines, code = summarize(201, body)
    assert code == 1
    assert lines[0].startswith("applied (partial): 2 rows — created 1")
    assert "  row 3 (S-2) site_surf_brute: bad" in lines


def test_summary_of_a_refused_import_and_of_an_error() -> None:
    report = {
        "id": None, "mode": "atomic", "status": "refused", "row_count": 1,
        "counts": {"created": 0, "updated": 0, "unchanged": 0, "rejected": 1},
        "rows": [{"row": 2, "site_id": None, "outcome": "rejected", "errors": [{"column": "site_id", "msg": "is required"}]}],
    }
    lines, code = summarize(422, {"status": 422, "detail": "1 of 1 rows", "report": report})
    assert code == 1 and lines[0].startswith("refused (atomic)")
    lines, code = summarize(403, {"status": 403, "detail": "This token lacks the scope 'sites:write'"})
    assert code == 2 and "403" in lines[0]
    lines, code = summarize(201, {**report, "status": "applied", "counts": {**report["counts"], "rejected": 0, "created": 1}, "rows": []})
    assert code == 0
