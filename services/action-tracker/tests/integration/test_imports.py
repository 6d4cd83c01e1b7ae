"""Semester plan imports on real PostgreSQL and Kafka: atomic, partial, missing actions, formats."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import Workbook

from .conftest import Service, action_body, events_of, published, unique_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

HEADER = [
    "action_id",
    "title",
    "description",
    "axis",
    "themes",
    "status",
    "planned_start",
    "planned_end",
    "budget_eur",
    "partners",
]
AXES = ["Compétences et attractivité", "foncier", "innovation", "Transition écologique", "autre"]
THEMES = [
    "Nouvelles formations|RH / marque employeur",
    "sites_cles_en_main",
    "tiers_lieux,usages_numeriques",
    "Gestion de l'eau",
    "",
]
STATUSES = ["En cours", "amont", "etude_prealable", "Réalisé", "", "En pause / à débloquer", "abandonne"]
BAD_ROWS = {  # row index in the file (0-based among data rows) → the faulty cells
    7: {"axis": "logistique"},
    15: {"title": ""},
    23: {"planned_start": "31/02/2024"},
    31: {"budget_eur": "beaucoup"},
}


def plan_rows(prefix: str, count: int = 40) -> list[dict[str, str]]:
    rows = []
    for i in range(count):
        row = {
            "action_id": f"{prefix}-{i:02d}",
            "title": f"Action n°{i} du plan",
            "description": "Fiche action issue de GRIST" if i % 3 else "",
            "axis": AXES[i % len(AXES)],
            "themes": THEMES[i % len(THEMES)],
            "status": STATUSES[i % len(STATUSES)],
            "planned_start": f"{(i % 28) + 1:02d}/03/2024" if i % 2 else "2024-03-01",
            "planned_end": "2026-12-31" if i % 4 == 0 else "",
            "budget_eur": f"{i} {i:03d},5" if i % 5 else "",
            "partners": "Région|BPI" if i % 6 == 0 else "",
        }
        row.update(BAD_ROWS.get(i, {}))
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    lines = [";".join(HEADER)] + [";".join(r[h] for h in HEADER) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def to_xlsx(rows: list[dict[str, str]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    for r in rows:
        sheet.append([r[h] or None for h in HEADER])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def territory_actions(service: Service, territory_id: str) -> dict[str, dict[str, Any]]:
    response = await service.client.get("/v1/actions", params={"territory_id": territory_id, "limit": 1000})
    return {a["id"]: a for a in response.json()["items"]}


async def import_plan(
    service: Service, territory_id: str, content: bytes, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return await service.client.post(
        "/v1/actions/plan-imports",
        params={"territory_id": territory_id, **params},
        content=content,
        headers={"Content-Type": "text/csv", **service.admin(), **(headers or {})},
    )


async def test_semester_campaign(service: Service) -> None:
    client, admin = service.client, service.admin()
    territory, prefix = "ti-8403", unique_id("grist")
    rows = plan_rows(prefix)
    # already in the plan: one row changes it, one repeats it exactly, one is absent from the file
    same = {
        "title": rows[0]["title"],
        "description": None,
        "axis": "competences_attractivite",
        "themes": ["nouvelles_formations", "rh_marque_employeur"],
        "status": "en_cours",
        "planned_start": "2024-03-01",
        "planned_end": "2026-12-31",
        "budget_eur": None,
        "partners": ["Région", "BPI"],
    }
    assert (
        await client.put(f"/v1/actions/{prefix}-00", json=action_body(territory, **same), headers=admin)
    ).status_code == 201
    assert (
        await client.put(f"/v1/actions/{prefix}-01", json=action_body(territory, status="realise"), headers=admin)
    ).status_code == 201
    assert (
        await client.put(f"/v1/actions/{prefix}-gone", json=action_body(territory), headers=admin)
    ).status_code == 201
    before = await territory_actions(service, territory)
    events_before = len(await published(service.platform))

    refused = await import_plan(service, territory, to_csv(rows), mode="atomic")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["report"]["applied"] is False
    assert problem["report"]["summary"]["rejected"] == 4
    assert {e["loc"][1] for e in problem["errors"]} == {9, 17, 25, 33}
    assert ["body", 9, "axis"] in [e["loc"] for e in problem["errors"]]
    assert await territory_actions(service, territory) == before

    partial = await import_plan(service, territory, to_csv(rows), mode="partial")
    assert partial.status_code == 200, partial.text
    assert partial.headers["ti-event-id"] and "ti-event-id" not in refused.headers  # the import's last event
    report = partial.json()
    assert report["applied"] is True
    assert report["summary"] == {
        "rows": 40,
        "created": 34,
        "updated": 1,
        "unchanged": 1,
        "rejected": 4,
        "missing": 1,
        "deleted": 0,
    }
    by_row = {r["row"]: r for r in report["rows"]}
    assert by_row[2]["outcome"] == "unchanged" and by_row[3]["outcome"] == "updated" and by_row[3]["version"] == 2
    assert by_row[9] == {
        "row": 9,
        "action_id": f"{prefix}-07",
        "outcome": "rejected",
        "change": None,
        "version": None,
        "errors": by_row[9]["errors"],
        "warnings": [
            {"loc": ["budget_eur"], "msg": "'7 007,5' read as 7007.50"},
            {"loc": ["planned_start"], "msg": "'08/03/2024' read as 2024-03-08"},
        ],
    }
    assert by_row[9]["errors"][0]["loc"] == ["axis"]
    assert report["missing"] == [{"action_id": f"{prefix}-gone", "outcome": "missing", "version": 1}]

    plan = await territory_actions(service, territory)
    assert len(plan) == len(before) + 34
    assert f"{prefix}-07" not in plan and f"{prefix}-gone" in plan
    twelve = plan[f"{prefix}-12"]
    assert (twelve["axis"], twelve["themes"], twelve["status"]) == (
        "innovation",
        ["tiers_lieux", "usages_numeriques"],
        "en_pause",
    )
    assert (twelve["planned_start"], twelve["budget_eur"]) == ("2024-03-01", "12012.50")
    assert plan[f"{prefix}-01"]["planned_start"] == "2024-03-02"
    events = await published(service.platform)
    assert len(events) == events_before + 35
    assert (await events_of(service, f"{prefix}-01"))[-1]["type"] == "fr.anct.ti.action.status_changed.v1"

    again = await import_plan(service, territory, to_csv(rows), mode="partial")
    assert again.json()["summary"]["unchanged"] == 36
    assert len(await published(service.platform)) == len(events)

    fixed = [r for i, r in enumerate(rows) if i not in BAD_ROWS]
    pruned = await import_plan(
        service,
        territory,
        to_xlsx(fixed),
        headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        delete_missing="true",
    )
    assert pruned.status_code == 200, pruned.text
    assert pruned.json()["summary"] == {
        "rows": 36,
        "created": 0,
        "updated": 0,
        "unchanged": 36,
        "rejected": 0,
        "missing": 1,
        "deleted": 1,
    }
    assert pruned.json()["missing"] == [{"action_id": f"{prefix}-gone", "outcome": "deleted", "version": 2}]
    assert (await client.get(f"/v1/actions/{prefix}-gone")).status_code == 404
    assert (await events_of(service, f"{prefix}-gone"))[-1]["type"] == "fr.anct.ti.action.deleted.v1"


async def test_import_by_multipart_with_idempotency_and_authorization(service: Service) -> None:
    client = service.client
    territory, prefix = "ti-2705", unique_id("mp")
    content = to_csv(plan_rows(prefix, 5))
    lead = service.lead(territory, sub="lead-2705")
    key = unique_id("key")

    async def send(headers: dict[str, str], **params: Any) -> Any:
        return await client.post(
            "/v1/actions/plan-imports",
            params={"territory_id": territory, **params},
            files={"file": ("plan.csv", content, "text/csv")},
            headers=headers,
        )

    first = await send({**lead, "Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert first.json()["summary"]["created"] == 5
    replay = await send({**lead, "Idempotency-Key": key})
    assert replay.json() == first.json() and replay.headers.get("idempotent-replayed") == "true"
    assert len(await events_of(service, f"{prefix}-00")) == 1

    assert (await send(service.lead("ti-8402"))).status_code == 403
    assert (await send({})).status_code == 401
    foreign = await client.post(
        "/v1/actions/plan-imports",
        params={"territory_id": "ti-8402"},
        content=to_csv(plan_rows(prefix, 1)),
        headers={"Content-Type": "text/csv", **service.lead("ti-8402", sub="lead-8402")},
    )
    assert foreign.status_code == 422
    assert foreign.json()["report"]["rows"][0]["errors"][0]["loc"] == ["action_id"]
    assert (await client.get(f"/v1/actions/{prefix}-00")).json()["territory_id"] == territory


async def test_bad_files_change_nothing(service: Service) -> None:
    territory = "ti-1101"
    before = await territory_actions(service, territory)
    cases = [
        (b"title;axis\nT;autre\n", {}, ["header", "action_id"]),
        (b"", {}, None),
        (b"action_id;title;axis\nx;T;autre\n", {"mode": "tout"}, ["query", "mode"]),
        (b"action_id;title;axis\nx;T;autre\n", {"territory_id": "ti-9999"}, ["query", "territory_id"]),
        (b"action_id;title;axis\nx;T;autre\n", {"territory_id": "11"}, ["query", "territory_id"]),
    ]
    for content, params, loc in cases:
        response = await import_plan(service, params.pop("territory_id", territory), content, **params)
        assert response.status_code == 422, response.text
        if loc is not None:
            assert loc in [e["loc"] for e in response.json()["errors"]]
    wrong_type = await import_plan(service, territory, b"{}", headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    assert await territory_actions(service, territory) == before


async def test_a_refused_atomic_import_is_replayed_under_its_idempotency_key(service: Service) -> None:
    territory, prefix = "ti-2705", unique_id("refused")
    content = to_csv(plan_rows(prefix, 10))  # row 7 has an unknown axis
    key = {"Idempotency-Key": unique_id("key")}
    refused = await import_plan(service, territory, content, headers=key)
    assert refused.status_code == 422 and refused.json()["report"]["applied"] is False
    again = await import_plan(service, territory, content, headers=key)
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == refused.json()
    assert (await service.client.get(f"/v1/actions/{prefix}-00")).status_code == 404


GRIST_HEADER = ["ID", "Titre", "Axe", "Thématiques", "Statut", "Date de début", "Date de fin", "Budget", "Partenaires", "Pilote"]


def grist_rows(prefix: str) -> list[list[str]]:
    """A territory's plan as GRIST exports it: column labels, multi-choice cells, French money and dates."""
    return [
        [f"{prefix}-1", "Campus des métiers", "Compétences et attractivité", "Nouvelles formations, Besoin de formation",
         "En cours", "15/01/2024", "30/06/2025", "120 000,00 €", "Région, BPI", "Mme Martin"],
        [f"{prefix}-2", "Requalifier la friche Nexans", "Foncier", "Requalification de friche, Sites clés en main",
         "Étude préalable", "1er mars 2024", "", "1 500 000 €", "EPF", ""],
        [f"{prefix}-3", "Réseau de chaleur", "Transition écologique", "Transition énergétique", "À initier (amont)",
         "", "2026-12-31", "", "", ""],
    ]


def grist_csv(rows: list[list[str]]) -> bytes:
    lines = [GRIST_HEADER, *rows]
    return "\r\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in lines).encode("utf-8")


def grist_xlsx(rows: list[list[str]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(GRIST_HEADER)
    for r in rows:
        sheet.append([c.replace(", ", "; ") if i == 3 else c for i, c in enumerate(r)])  # GRIST's XLSX: "a; b"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def test_a_grist_export_in_csv_then_xlsx_loses_no_date_no_theme(service: Service) -> None:
    territory, prefix = "ti-8402", unique_id("grist-export")
    rows = grist_rows(prefix)
    dry = await import_plan(service, territory, grist_csv(rows), dry_run="true")
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["dry_run"] is True and report["summary"]["created"] == 3 and report["summary"]["rejected"] == 0
    assert report["warnings"] == [
        {"loc": ["header", "Pilote"], "msg": "column 'Pilote' is not a column of a territory's plan: its values are not imported"}
    ]
    assert not any(i.startswith(prefix) for i in await territory_actions(service, territory))

    applied = await import_plan(service, territory, grist_csv(rows))
    assert applied.status_code == 200 and applied.json()["summary"]["created"] == 3, applied.text
    assert [r["warnings"] for r in applied.json()["rows"]] == [r["warnings"] for r in report["rows"]]
    assert [w["msg"] for w in applied.json()["rows"][0]["warnings"]] == [
        "'120 000,00 €' read as 120000.00", "'15/01/2024' read as 2024-01-15", "'30/06/2025' read as 2025-06-30"
    ]
    actions = await territory_actions(service, territory)
    first, second, third = (actions[f"{prefix}-{n}"] for n in (1, 2, 3))
    assert (first["planned_start"], first["planned_end"], first["budget_eur"]) == ("2024-01-15", "2025-06-30", "120000.00")
    assert first["themes"] == ["nouvelles_formations", "besoin_formation"] and first["partners"] == ["Région", "BPI"]
    assert second["themes"] == ["requalification_friche", "sites_cles_en_main"] and second["planned_start"] == "2024-03-01"
    assert second["budget_eur"] == "1500000.00" and third["status"] == "amont" and third["planned_end"] == "2026-12-31"

    again = await import_plan(service, territory, grist_xlsx(rows), headers={"Content-Type": XLSX_TYPE})
    assert again.status_code == 200, again.text
    assert again.json()["summary"]["unchanged"] == 3 and again.json()["summary"]["created"] == 0


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
