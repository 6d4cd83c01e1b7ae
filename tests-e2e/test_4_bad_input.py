"""Scenario 4: bad input — every bad request gets a clear 4xx problem, changes nothing; hostile-looking
strings are stored verbatim."""

from __future__ import annotations

import random

import jwt
import pytest
from e2e_expected import assert_indicators
from e2e_harness import Model, Platform, Stats, api_of
from e2e_writes import REGIONS
from ti_shared.streams import action_payloads, grant_payloads, site_payloads

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
HOSTILE = ["'; DROP TABLE action; --", "<script>alert('ti')</script>", "=cmd|' /C calc'!A0"]


async def _topic_total(platform: Platform) -> int:
    await platform.wait_settled()
    return sum((await platform.topic_counts()).values())


def _is_problem(r: object, status: int | tuple[int, ...]) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:300])  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith(PROBLEM), r.headers  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["status"] == r.status_code and body["title"] and "type" in body  # type: ignore[attr-defined]


async def test_malformed_requests_change_nothing(platform: Platform, stats: Stats, pushed: dict[str, str]) -> None:
    tid = sorted(pushed)[0]
    admin = platform.auth("anct-admin", "admin")
    before = await _topic_total(platform)
    async with api_of(platform, stats) as api:
        big = {"territory_id": tid, "title": "x", "axis": "foncier", "description": "A" * (2 * 1024 * 1024)}
        _is_problem(await api.request("PUT", "action-tracker", "/v1/actions/BIG-1", json=big, headers=admin), 413)
        _is_problem(await api.request("PUT", "territory-registry", f"/v1/territories/{tid}", content=b"name=x",
                                      headers={**admin, "Content-Type": "application/x-www-form-urlencoded"}), 415)
        _is_problem(await api.request("PUT", "site-catalog", "/v1/sites/SITE-BAD", content=b"<site/>",
                                      headers={**admin, "Content-Type": "application/xml"}), 415)
        for service, path in (("action-tracker", "/v1/actions/BAD-JSON"), ("funding-ledger", "/v1/grants/ADEME/BAD-JSON"),
                              ("site-catalog", "/v1/sites/BAD-JSON"), ("territory-registry", f"/v1/territories/{tid}")):
            r = await api.request("PUT", service, path, content=b'{"title": "unterminated', headers={**admin, "Content-Type": "application/json"})
            _is_problem(r, (400, 422))
        r = await api.request("POST", "funding-ledger", "/v1/grant-batches", content=b"[1, 2,", headers={**admin, "Content-Type": "application/json"})
        _is_problem(r, (400, 422))
        bad = action_payloads(random.Random(41), [tid], 1, tag="BAD")
        (aid, body), = bad.items()
        r = await api.request("PUT", "action-tracker", f"/v1/actions/{aid}", json={**body, "axis": "nowhere"}, headers=admin)
        _is_problem(r, 422)
        assert any(e["loc"][-1] == "axis" for e in r.json()["errors"])
    assert await _topic_total(platform) == before


async def test_bad_tokens_are_401(platform: Platform, stats: Stats, pushed: dict[str, str]) -> None:
    tid = sorted(pushed)[0]
    settings = platform.settings
    claims = {"iss": settings.jwt_iss, "aud": settings.jwt_aud, "sub": "intruder", "exp": 4102444800, "scope": "admin"}
    forged = jwt.encode(claims, "not-the-platform-secret-0123456789abcdef", algorithm="HS256")
    expired = platform.token("anct-admin", "admin", ttl=-60)
    unsigned = jwt.encode(claims, None, algorithm="none")
    body = action_payloads(random.Random(42), [tid], 1, tag="TOK")
    (aid, action), = body.items()
    before = await _topic_total(platform)
    async with api_of(platform, stats) as api:
        for token in (forged, expired, unsigned, "garbage.token"):
            headers = {"Authorization": f"Bearer {token}"}
            _is_problem(await api.request("PUT", "action-tracker", f"/v1/actions/{aid}", json=action, headers=headers), 401)
            _is_problem(await api.request("GET", "funding-ledger", "/v1/grants", headers=headers), 401)
        _is_problem(await api.request("PUT", "action-tracker", f"/v1/actions/{aid}", json=action), 401)
    assert await _topic_total(platform) == before


async def test_forbidden_writes_are_403(platform: Platform, stats: Stats, pushed: dict[str, str]) -> None:
    tids = sorted(pushed)
    before = await _topic_total(platform)
    bpi = platform.auth("bpi-push", "grants:write", operator="BPI")
    ademe_grants = grant_payloads(random.Random(43), "ADEME", pushed, 1, tag="S4")
    (op, ref), grant = next(iter(ademe_grants.items()))
    lead = platform.auth(f"lead-{tids[0]}", "actions:write", territories=(tids[0],))
    (aid, action), = action_payloads(random.Random(44), [tids[1]], 1, tag="S4").items()
    async with api_of(platform, stats) as api:
        _is_problem(await api.request("PUT", "funding-ledger", f"/v1/grants/{op}/{ref}", json=grant, headers=bpi), 403)
        # an operator on a programme it does not run
        own = {**grant, "programme": "fonds_vert_ti_te"}
        _is_problem(await api.request("PUT", "funding-ledger", f"/v1/grants/BPI/{ref}", json=own, headers=bpi), 403)
        _is_problem(await api.request("PUT", "action-tracker", f"/v1/actions/{aid}", json=action, headers=lead), 403)
        # a lead may not move its own action to another territory either
        (aid2, mine), = action_payloads(random.Random(45), [tids[0]], 1, tag="S4M").items()
        _is_problem(await api.request("PUT", "action-tracker", f"/v1/actions/{aid2}", json={**mine, "territory_id": tids[1]}, headers=lead), 403)
        # the wrong scope
        sites_token = platform.auth("anct-sites", "sites:write")
        _is_problem(await api.request("PUT", "action-tracker", f"/v1/actions/{aid}", json=action, headers=sites_token), 403)
    assert await _topic_total(platform) == before


async def test_hostile_strings_are_stored_verbatim(platform: Platform, model: Model, stats: Stats, pushed: dict[str, str]) -> None:
    tids = sorted(pushed)
    admin = platform.auth("anct-admin", "admin")
    async with api_of(platform, stats) as api:
        for n, text in enumerate(HOSTILE):
            (aid, action), = action_payloads(random.Random(50 + n), [tids[0]], 1, tag=f"S4H{n}").items()
            action = {**action, "title": text, "description": text}
            await api.put("action-tracker", f"/v1/actions/{aid}", action, admin)
            got = (await api.request("GET", "action-tracker", f"/v1/actions/{aid}")).json()
            assert (got["title"], got["description"]) == (text, text)
            model.actions[aid] = action

            (sid, site), = site_payloads(random.Random(60 + n), pushed, 1, tag=f"S4H{n}").items()
            site = {**site, "name": text}
            await api.put("site-catalog", f"/v1/sites/{sid}", site, admin)
            assert (await api.request("GET", "site-catalog", f"/v1/sites/{sid}")).json()["name"] == text
            model.sites[sid] = site

            ((op, ref), grant), = grant_payloads(random.Random(70 + n), "ADEME", pushed, 1, tag=f"S4H{n}").items()
            grant = {**grant, "object": text, "beneficiary": {**grant["beneficiary"], "name": text}}
            await api.put("funding-ledger", f"/v1/grants/{op}/{ref}", grant, admin)
            got = (await api.request("GET", "funding-ledger", f"/v1/grants/{op}/{ref}", headers=admin)).json()
            assert (got["object"], got["beneficiary"]["name"]) == (text, text)
            model.set_grant((op, ref), grant)
    await stats.settle(platform, "bad_input")
    await assert_indicators(platform, model, ["national", *(f"region:{r}" for r in REGIONS), f"territory:{tids[0]}"])
