"""Production refuses to start with development or weak secrets (Settings.check)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shared.config import Settings

STRONG = "s" * 32
KEYS = {
    "data_keys": "k2:" + base64.b64encode(b"k" * 32).decode(),
    "blind_index_key": base64.b64encode(b"b" * 32).decode(),
    "certificate_signing_key": "a real certificate signing key",
    "bureau_hmac_secret": "a real bureau secret",
}


def production(**fields: Any) -> Settings:
    return Settings(env="production", **{"jwt_secret": STRONG, **KEYS, **fields})


def test_a_production_with_real_secrets_starts() -> None:
    for service in ("registry", "benefits", "visits", "notify", None):
        production().check(service)
    production(
        jwt_jwks_url="https://idp.example.gov.cn/jwks",
        jwt_issuer="https://idp.example.gov.cn",
        jwt_audience="lingju",
    ).check("visits")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jwt_secret": Settings().jwt_secret}, "LINGJU_JWT_JWKS_URL"),
        ({"jwt_secret": "short-but-real"}, "at least 32 bytes"),
        ({"jwt_jwks_url": "https://idp.example.gov.cn/jwks"}, "LINGJU_JWT_ISSUER"),
        (
            {"jwt_jwks_url": "https://idp.example.gov.cn/jwks", "jwt_issuer": "https://idp"},
            "LINGJU_JWT_AUDIENCE",
        ),
        ({"data_keys": Settings().data_keys}, "LINGJU_DATA_KEYS"),
        ({"certificate_signing_key": Settings().certificate_signing_key}, "SIGNING_KEY"),
    ],
)
def test_development_or_weak_secrets_stop_a_production_start(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuntimeError, match=message):
        production(**fields).check("registry")


def test_development_and_test_runs_are_not_checked() -> None:
    Settings(env="development", jwt_secret="x").check("registry")
    Settings(env="test", jwt_secret="x").check("registry")
