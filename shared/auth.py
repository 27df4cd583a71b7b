"""Bearer JWT verification and the caller's principal (DESIGN §4).

Development signs HS256 tokens with ``LINGJU_JWT_SECRET``; production verifies against an
OIDC issuer's JWKS (``LINGJU_JWT_JWKS_URL``), checking ``iss`` and ``aud`` when configured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.config import Settings
from shared.errors import Problem


class Role(StrEnum):
    resident = "resident"
    village_agent = "village_agent"  # 代办员
    village_worker = "village_worker"  # 村计生专干
    township_officer = "township_officer"
    county_officer = "county_officer"
    bureau_system = "bureau_system"  # 县卫健局
    admin = "admin"
    auditor = "auditor"  # reads the audit trail of the region it is given, nothing else


OFFICERS = (Role.township_officer, Role.county_officer, Role.admin)


@dataclass(frozen=True)
class Principal:
    sub: str
    role: Role
    region: str  # administrative division code prefix the caller is responsible for
    person_id: str | None = None

    def covers(self, region_code: str) -> bool:
        """A record's 12-digit division code must start with the caller's code."""
        if self.role is Role.admin and not self.region:
            return True
        return bool(self.region) and region_code.startswith(self.region)

    def region_scope(self) -> str:
        """The division-code prefix the caller's lists are confined to: "" for an admin whose
        token names no region (everything); any other token without a region is refused."""
        if self.role is Role.admin and not self.region:
            return ""
        if not self.region:
            raise Problem(403, "out_of_region", "令牌未指明辖区", "The token names no region")
        return self.region

    def require_region(self, region_code: str) -> None:
        if not self.covers(region_code):
            raise Problem(
                403,
                "out_of_region",
                "该记录不在您负责的辖区内",
                "This record is outside your region",
            )


def require_checker(principal: Principal, maker: str, detail_zh: str, detail_en: str) -> None:
    """Maker-checker (审核与经办分离): who prepared a record (its maker) never approves it.
    Records prepared by the system from an event name "system", which no officer is."""
    if principal.sub == maker:
        raise Problem(403, "maker_checker", detail_zh, detail_en)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The key set is cached for jwt_jwks_cache_seconds, and no key outlives it (no per-key
        # cache): a key the issuer withdraws stops working within that time. A token naming an
        # unknown key id refetches the set at most once per cooldown (a new key is picked up
        # at once; a flood of made-up key ids does not flood the issuer).
        self._jwks = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=False,
                lifespan=settings.jwt_jwks_cache_seconds,
                cooldown_duration=settings.jwt_jwks_refresh_cooldown_seconds,
                timeout=10,
            )
            if settings.jwt_jwks_url
            else None
        )

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        s = self.settings
        options: dict[str, Any] = {"require": ["exp", "sub", "role"]}
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "PS256", "EdDSA"]
            else:
                key, algorithms = s.jwt_secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options=options,
            )
            role = Role(claims["role"])
        except (jwt.PyJWTError, ValueError, KeyError) as e:
            raise Problem(
                401,
                "token_invalid",
                f"访问令牌无效：{e}",
                f"Invalid token: {e}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from e
        return Principal(
            sub=str(claims["sub"]),
            role=role,
            region=str(claims.get("region") or ""),
            person_id=claims.get("person_id"),
        )


def mint_dev_token(
    settings: Settings,
    *,
    role: str,
    region: str = "",
    sub: str | None = None,
    person_id: str | None = None,
    ttl_seconds: int = 8 * 3600,
) -> str:
    """Development only: sign a token with the shared HS256 secret."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub or person_id or f"{role}-{region or 'all'}",
        "role": Role(role).value,
        "region": region,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if person_id:
        claims["person_id"] = person_id
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


_bearer = HTTPBearer(auto_error=False, description="JWT: sub, role, region, person_id")


async def current_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None:
        raise Problem(
            401,
            "unauthenticated",
            "请提供访问令牌（Authorization: Bearer）",
            "Send a bearer token (Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.runtime.verifier
    if verifier.uses_jwks:
        # Fetching the issuer's keys is blocking I/O (cached after the first time).
        return await asyncio.to_thread(verifier.verify, creds.credentials)
    return verifier.verify(creds.credentials)


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller's role is one of ``roles``."""
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Problem(
                403,
                "forbidden",
                f"角色 {principal.role.value} 无权执行此操作",
                f"Role {principal.role.value} may not do this",
            )
        return principal

    dependency.__name__ = f"require_{'_or_'.join(r.value for r in roles)}"
    return dependency
