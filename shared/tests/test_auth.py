from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from ti_shared.auth import Principal, TokenVerifier, mint_token
from ti_shared.problems import Problem
from ti_shared.settings import DEFAULT_JWT_SECRET, PlatformSettings, load_settings

SETTINGS = PlatformSettings(env="test", jwt_secret="s" * 40)


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": "ti-platform", "aud": "ti-platform", "sub": "ademe-push", "exp": now + 60, "scope": "grants:write", "ti_operator": "ADEME"}
    base.update(over)
    return base


def _status(token: str, settings: PlatformSettings = SETTINGS) -> int:
    try:
        TokenVerifier(settings).verify(token)
    except Problem as exc:
        return exc.status
    return 200


def test_valid_token_gives_the_principal() -> None:
    token = mint_token(SETTINGS, sub="lead", scopes=["actions:write"], territories=["ti-8402", "ti-8403"])
    principal = TokenVerifier(SETTINGS).verify(token)
    assert principal == Principal("lead", frozenset({"actions:write"}), None, frozenset({"ti-8402", "ti-8403"}))


def test_expired_forged_wrong_audience_and_issuer_are_refused() -> None:
    assert _status(jwt.encode(_claims(exp=int(time.time()) - 5), SETTINGS.jwt_secret, algorithm="HS256")) == 401
    assert _status(jwt.encode(_claims(), "another-secret-another-secret-12345", algorithm="HS256")) == 401
    assert _status(jwt.encode(_claims(aud="someone-else"), SETTINGS.jwt_secret, algorithm="HS256")) == 401
    assert _status(jwt.encode(_claims(iss="evil"), SETTINGS.jwt_secret, algorithm="HS256")) == 401
    no_exp = _claims()
    del no_exp["exp"]
    assert _status(jwt.encode(no_exp, SETTINGS.jwt_secret, algorithm="HS256")) == 401
    assert _status("not-a-jwt") == 401


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SETTINGS, cache_size=2)
    token = jwt.encode(_claims(exp=int(time.time()) + 2), SETTINGS.jwt_secret, algorithm="HS256")
    principal = verifier.verify(token)
    checks: list[str] = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: (checks.append(t), real(t))[1])
    assert verifier.verify(token) is principal and checks == []  # remembered: no second signature check
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(Problem):
        verifier.verify(forged)  # other bytes, checked (and refused)
    time.sleep(2.1)
    with pytest.raises(Problem) as refused:
        verifier.verify(token)  # expired: checked again, refused
    assert refused.value.status == 401 and checks == [forged, token]
    others = [mint_token(SETTINGS, sub=f"s{n}", scopes=["admin"]) for n in range(3)]
    for other in others:
        verifier.verify(other)
    assert len(verifier._verified) == 2 and others[0] not in verifier._verified  # bounded, oldest first


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(_claims(scope="admin")).encode()).rstrip(b"=").decode()
    assert _status(f"{header}.{payload}.") == 401


def test_scope_operator_and_territory_rules() -> None:
    ademe = Principal("ademe", frozenset({"grants:write"}), "ADEME")
    ademe.require_scope("grants:write")
    ademe.require_operator("ADEME")
    with pytest.raises(Problem) as missing:
        ademe.require_scope("sites:write")
    assert missing.value.status == 403
    with pytest.raises(Problem) as other:
        ademe.require_operator("BPI")
    assert other.value.status == 403
    lead = Principal("lead", frozenset({"actions:write"}), territories=frozenset({"ti-8402"}))
    lead.require_territory("ti-8402")
    with pytest.raises(Problem):
        lead.require_territory("ti-8403")
    admin = Principal("anct", frozenset({"admin"}))
    admin.require_scope("grants:write")
    admin.require_operator("BPI")
    admin.require_territory("ti-0101")


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TI_ENV", "production")
    monkeypatch.delenv("TI_JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="TI_JWT_SECRET"):
        PlatformSettings()
    monkeypatch.setenv("TI_JWT_SECRET", "x" * 48)
    assert PlatformSettings().jwt_secret == "x" * 48
    monkeypatch.setenv("TI_ENV", "development")
    monkeypatch.delenv("TI_JWT_SECRET")
    assert PlatformSettings().jwt_secret == DEFAULT_JWT_SECRET


def test_service_prefix_reads_its_own_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TI_FUNDING_LEDGER_DATABASE_URL", "postgresql+asyncpg://u:p@h/db")
    monkeypatch.delenv("TI_SITE_CATALOG_DATABASE_URL", raising=False)
    assert load_settings("funding-ledger").database_url == "postgresql+asyncpg://u:p@h/db"
    assert load_settings("site-catalog").database_url.startswith("sqlite+aiosqlite:///")


def test_rs256_tokens_are_checked_against_the_jwks() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = PlatformSettings(env="production", jwt_jwks_url=f"http://127.0.0.1:{server.server_port}/jwks.json")
        good = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"})
        assert TokenVerifier(settings).verify(good).operator == "ADEME"
        hs = jwt.encode(_claims(), "s" * 40, algorithm="HS256")
        assert _status(hs, settings) == 401
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(_claims(), other_key, algorithm="RS256", headers={"kid": "k1"})
        assert _status(forged, settings) == 401
    finally:
        server.shutdown()
