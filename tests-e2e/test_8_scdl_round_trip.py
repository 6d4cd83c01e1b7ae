"""Scenario 8: a collectivité's SCDL « subventions » file in and out, on PostgreSQL and Kafka.

The official valid example (its attributor, Antibes, registered as an operator with its SIRET) is
tried first (`dry_run=true`: the report, nothing published), then imported; the indicators count its
grants; its events carry the SCDL fields; the SCDL export validates against the official schema and
says what the file said; imported back, every row is unchanged and nothing more is published.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from e2e_harness import Api, Platform, Stats, api_of
from ti_shared.events import TOPIC_GRANTS
from ti_shared.testing import official_schemas_dir, table_schema_errors

pytestmark = pytest.mark.integration

FOLDER = official_schemas_dir() / "scdl-subventions-2.1.1"
ANTIBES = {"label": "ANTIBES", "siret": "21060004500392"}
PROGRAMME = "subventions_associations"



def _event_or_none(value: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(value)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "subject" in event else None

async def _register(api: Api, platform: Platform) -> dict[str, str]:
    admin = platform.auth("anct-admin", "admin")
    await api.put("funding-ledger", "/v1/operators/ANTIBES", ANTIBES, admin)
    await api.put("funding-ledger", f"/v1/programmes/{PROGRAMME}", {"label": "Subventions aux associations", "operators": ["ANTIBES"]}, admin)
    return platform.auth("antibes-push", "grants:write", operator="ANTIBES")


async def test_an_scdl_file_round_trips(platform: Platform, stats: Stats) -> None:
    data = (FOLDER / "exemple_valide.csv").read_bytes()
    expected = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    query = f"?programme={PROGRAMME}&beneficiary_kind=association"
    async with api_of(platform, stats) as api:
        token = await _register(api, platform)
        headers = {**token, "Content-Type": "text/csv", "Idempotency-Key": "scdl-antibes-1"}
        await platform.wait_settled()
        before = (await platform.topic_counts((TOPIC_GRANTS,)))[TOPIC_GRANTS]

        tried = await api.request("POST", "funding-ledger", "/v1/grant-batches" + query + "&dry_run=true", content=data, headers=headers)
        assert tried.status_code == 200, tried.text[:1000]
        assert tried.json()["counts"]["created"] == len(expected) and tried.json()["counts"]["rejected"] == 0

        imported = await api.request("POST", "funding-ledger", "/v1/grant-batches" + query, content=data, headers=headers)
        assert imported.status_code == 201, imported.text[:1000]  # the key was not used by the dry run
        report = imported.json()
        assert report["counts"]["created"] == len(expected) and report["counts"]["rejected"] == 0, report["counts"]
        assert [r["line"] for r in report["rows"]] == list(range(2, len(expected) + 2))
        await platform.wait_settled()

        national = await platform.indicators("national")
        programme = national["grants.by_programme"][PROGRAMME]
        assert programme["count"] == len(expected)
        assert Decimal(programme["amount_eur"]) == sum(Decimal(r["montant"]) for r in expected)

        messages = await platform.read_topic(TOPIC_GRANTS)
        # the topic also holds the poison an earlier scenario published on purpose: CloudEvents only
        events = [e for e in map(_event_or_none, messages) if e is not None]
        ours = [e for e in events if e["subject"].startswith("ANTIBES/")]
        assert len(ours) == len(expected) == len(messages) - before  # the dry run published nothing
        first = next(e for e in ours if e["data"]["beneficiary"]["name"].startswith("CEA DU PERSONNEL"))
        assert first["data"]["scdl"]["pourcentageSubvention"] == "0.05"
        assert first["data"]["scdl"]["datesPeriodeVersement"] == "2017-03-30/2017-05-24"
        assert first["data"]["scdl"]["referenceDecision"] == "CONV N° 2074-15 2015-06-19"

        exported = await api.request("GET", "funding-ledger", "/v1/grants/export.csv?profile=scdl&operator=ANTIBES", headers=token)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert table_schema_errors(exported.content, FOLDER / "schema.json") == []
        written = {(r["nomBeneficiaire"], r["referenceDecision"]): r for r in csv.DictReader(io.StringIO(exported.text))}
        for row in expected:
            out = written[(row["nomBeneficiaire"].strip(), row["referenceDecision"].strip())]  # cells are read trimmed
            for column in ("idAttribuant", "dateConvention", "idBeneficiaire", "rnaBeneficiaire", "nature", "conditionsVersement",
                           "datesPeriodeVersement", "notificationUE"):
                assert out[column] == row[column], (column, row["nomBeneficiaire"])
            assert Decimal(out["montant"]) == Decimal(row["montant"])
            assert Decimal(out["pourcentageSubvention"]) == Decimal(row["pourcentageSubvention"])

        again = await api.request("POST", "funding-ledger", "/v1/grant-batches", content=exported.content,
                                  headers={**token, "Content-Type": "text/csv"})
        assert again.status_code == 201, again.text[:1000]
        assert {r["outcome"] for r in again.json()["rows"]} == {"unchanged"}
        assert again.json()["warnings"] == []
        await platform.wait_settled()
        after = (await platform.topic_counts((TOPIC_GRANTS,)))[TOPIC_GRANTS]
        assert after == before + len(expected)
