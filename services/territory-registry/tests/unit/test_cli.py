from __future__ import annotations

import socket

import httpx
from territory_registry.cli import app, media_type_of, post_import, summarize
from typer.testing import CliRunner


def test_post_import_sends_the_file_with_kind_mode_token_and_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        report = {
            "kind": "groupements", "mode": "partial", "imported": True,
            "counts": {"created": 0, "updated": 2, "unchanged": 1, "rejected": 1},
            "rows": [{"territory_id": "ti-8402", "errors": [{"loc": ["row", 3, "siren_groupement"], "msg": "bad"}]}],
        }
        return httpx.Response(200, json=report)

    with httpx.Client(base_url="http://registry", transport=httpx.MockTransport(handler)) as client:
        response = post_import(
            client, b"id_ti;lib_groupement;siren_groupement\n", media_type="text/csv",
            kind="groupements", mode="partial", token="tok", idempotency_key="k1",
        )
    request = seen[0]
    assert request.url.path == "/v1/territories/imports"
    assert dict(request.url.params) == {"kind": "groupements", "mode": "partial"}
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["idempotency-key"] == "k1"
    assert request.headers["content-type"] == "text/csv"
    assert request.content.startswith(b"id_ti;")
    lines = summarize(response)
    assert "updated 2" in lines[0] and "rejected 1" in lines[0]
    assert lines[1] == "  rejected ti-8402 (row.3.siren_groupement): bad"


def test_summary_of_a_problem_document() -> None:
    response = httpx.Response(401, json={"status": 401, "detail": "A bearer token is required"})
    assert summarize(response) == ["HTTP 401: A bearer token is required"]


def test_media_type_follows_the_extension(tmp_path) -> None:
    assert media_type_of(tmp_path / "liste.xlsx").endswith("spreadsheetml.sheet")
    assert media_type_of(tmp_path / "liste-ti.csv") == "text/csv"


def test_unreachable_registry_exits_with_3(tmp_path) -> None:
    file = tmp_path / "liste.csv"
    file.write_text("id_ti;lib_ti;code_reg\n", encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(app, ["import", str(file), "--url", f"http://127.0.0.1:{port}", "--token", "t"])
    assert result.exit_code == 3


def test_a_dry_run_is_asked_for_and_its_warnings_printed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        report = {
            "kind": "territories", "layout": "communes", "mode": "atomic", "dry_run": True, "imported": True,
            "counts": {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0},
            "warnings": [{"loc": ["file"], "msg": "the file is not UTF-8"}],
            "rows": [{"territory_id": "ti-8402", "errors": [], "warnings": [{"loc": ["row", 2, "insee_com"], "msg": "'1053' read as 01053"}]}],
        }
        return httpx.Response(200, json=report)

    with httpx.Client(base_url="http://registry", transport=httpx.MockTransport(handler)) as client:
        response = post_import(client, b"insee_com;id_ti;lib_ti\n", media_type="text/csv", kind="territories", mode="atomic", token=None, dry_run=True)
    assert dict(seen[0].url.params) == {"kind": "territories", "mode": "atomic", "dry_run": "true"}
    assert summarize(response) == [
        "communes (atomic): dry run, nothing written: would be imported — created 1, updated 0, unchanged 0, rejected 0",
        "  warning (file): the file is not UTF-8",
        "  warning ti-8402 (row.2.insee_com): '1053' read as 01053",
    ]
