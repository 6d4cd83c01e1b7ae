"""JWT bearer authentication and the platform's authorization rules (CONTRACT §3)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ti_shared.logging import bind_actor
from ti_shared.problems import Problem
from ti_shared.settings import PlatformSettings

SCOPES = ("territories:write", "actions:write", "grants:write", "sites:write", "admin")
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is acting, as the token says."""

    sub: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    operator: str | None = None
    territories: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def has_scope(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    def require_scope(self, scope: str) -> None:
        if not self.has_scope(scope):
            raise Problem(403, f"This token lacks the scope '{scope}'")

    def require_operator(self, operator: str) -> None:
        """A non-admin token acts only for its own ``ti_operator``."""
        if self.is_admin:
            return
        if self.operator is None or self.operator != operator:
            raise Problem(403, f"This token may not act for operator '{operator}'")

    def require_territory(self, territory_id: str) -> None:
        """A non-admin token writes only the territories listed in ``ti_territories``."""
        if self.is_admin:
            return
        if territory_id not in self.territories:
            raise Problem(403, f"This token may not write the plan of territory '{territory_id}'")


def unauthorized(detail: str) -> Problem:
    """The 401 of a missing or invalid token (with its `WWW-Authenticate` challenge)."""
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="ti-platform"'})


class TokenVerifier:
    """Verifies bearer tokens: HS256 with a shared secret, or RS256 against a JWKS URL.

    A verified token is remembered until it expires (the same bytes are the same signed claims), so a
    client that writes with one token pays the signature check once; at most ``cache_size`` tokens are
    remembered, the oldest forgotten first. A key withdrawn from the JWKS stops new tokens at once, the
    ones already seen at their ``exp``."""

    def __init__(self, settings: PlatformSettings, *, cache_size: int = 4096) -> None:
        self._settings = settings
        self._jwks: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None
        )
        self._cache_size = cache_size
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]
        principal, expires_at = self._verify(token)
        while len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, expires_at)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("The bearer token is malformed") from exc
        alg = header.get("alg")
        key: Any
        if self._jwks is not None:
            if alg != "RS256":
                raise unauthorized("Only RS256 tokens are accepted")
            try:
                key = self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWTError as exc:
                raise unauthorized("The token's signing key is unknown") from exc
            algorithms = ["RS256"]
        else:
            if alg != "HS256":
                raise unauthorized("Only HS256 tokens are accepted here")
            key = self._settings.jwt_secret
            algorithms = ["HS256"]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._settings.jwt_aud,
                issuer=self._settings.jwt_iss,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("The token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise unauthorized("The token's audience is not this platform") from exc
        except jwt.InvalidIssuerError as exc:
            raise unauthorized("The token's issuer is not trusted") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized("The token is invalid: " + str(exc)) from exc
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset(str(s) for s in scope or [])
    territories = claims.get("ti_territories") or []
    if isinstance(territories, str):
        territories = territories.split()
    operator = claims.get("ti_operator")
    return Principal(
        sub=str(claims["sub"]),
        scopes=scopes,
        operator=str(operator) if operator else None,
        territories=frozenset(str(t) for t in territories),
    )


def mint_token(
    settings: PlatformSettings,
    *,
    sub: str,
    scopes: list[str] | tuple[str, ...] = (),
    operator: str | None = None,
    territories: list[str] | tuple[str, ...] = (),
    ttl_seconds: int = 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign a local HS256 token (development and tests; production tokens come from the IdP)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_iss,
        "aud": settings.jwt_aud,
        "sub": sub,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": " ".join(scopes),
    }
    if operator:
        claims["ti_operator"] = operator
    if territories:
        claims["ti_territories"] = list(territories)
    if extra:
        claims.update(extra)
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


#: where the rate limiter leaves the (token, principal) it verified, so that a request verifies once
PRINCIPAL_STATE_KEY = "ti_principal"

_bearer = HTTPBearer(auto_error=False, description="A JWT issued for the platform (CONTRACT §3)")


def _verifier(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("the application has no token verifier")
    return verifier


def _principal_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    """The principal of the request's bearer token (None without one), verified once per request (the
    rate limiter's verification reused) and per token until it expires (:class:`TokenVerifier`)."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise unauthorized("The Authorization header must be 'Bearer <token>'")
        return None
    verified = request.scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    if verified is not None and verified[0] == credentials.credentials:
        principal: Principal = verified[1]
    else:
        principal = _verifier(request).verify(credentials.credentials)
    bind_actor(principal.sub)
    return principal


async def optional_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal | None:
    return _principal_of(request, credentials)


async def require_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The principal of a required token: one dependency over the bearer scheme (each level of
    dependencies is solved on every request)."""
    return _required_principal(request, credentials)


def _required_principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    principal = _principal_of(request, credentials)
    if principal is None:
        raise unauthorized("A bearer token is required")
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


def scoped(scope: str) -> Any:
    """A dependency giving the principal after checking it holds ``scope`` (or ``admin``): one level over
    the bearer scheme, as :func:`require_principal` (which ``ti_shared.openapi`` tells by ``ti_auth``)."""

    async def _dep(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        principal = _required_principal(request, credentials)
        principal.require_scope(scope)
        return principal

    _dep.ti_scope = scope  # type: ignore[attr-defined]  # read by ti_shared.openapi (the operation's description)
    _dep.ti_auth = "required"  # type: ignore[attr-defined]  # a required token (ti_shared.openapi: 401, 403)
    return Depends(_dep)
