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


def test_a_dry_run_with_the_programme_s_defaults(tmp_path, monkeypatch) -> None:
    import httpx
    from site_catalog import cli
    from typer.testing import CliRunner

    seen: dict[str, object] = {}
    report = {
        "id": None, "mode": "atomic", "status": "applied", "dry_run": True, "row_count": 1,
        "counts": {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0},
        "warnings": [{"column": None, "field": None, "msg": "the file is not UTF-8"}],
        "rows": [{"row": 2, "site_id": "S-1", "outcome": "created", "errors": [],
                  "warnings": [{"column": "site_evol_urba", "field": "land_recycling", "msg": "'mixte' does not say"}]}],
    }

    def post(url: str, **kwargs: object) -> httpx.Response:
        seen.update(url=url, **kwargs)
        return httpx.Response(200, json=report)

    monkeypatch.setattr(cli.httpx, "post", post)
    file = tmp_path / "inventaire.csv"
    file.write_bytes(b"site_id;site_nom\n")
    args = ["import", str(file), "--token", "t", "--dry-run", "--default", "maturity=ready", "--default", "labelled_on=2024-04-15"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert seen["params"] == {"mode": "atomic", "dry_run": "true", "maturity": "ready", "labelled_on": "2024-04-15"}
    assert result.output.splitlines() == [
        "dry run, nothing written: would be applied (atomic): 1 rows — created 1, updated 0, unchanged 0, rejected 0",
        "  warning file: the file is not UTF-8",
        "  warning row 2 (S-1) site_evol_urba: 'mixte' does not say",
    ]
    bad = CliRunner().invoke(cli.app, ["import", str(file), "--token", "t", "--default", "maturity"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
