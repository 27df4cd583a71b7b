"""Production refuses to start with development or weak secrets, or with the HS256 development
token mode (Settings.check); integration clients come from JSON in the environment."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shared.config import DEV_BUREAU_HMAC_SECRET, Settings

BUREAU_SECRET = "b" * 32
IDP = {
    "jwt_jwks_url": "https://idp.example.gov.cn/jwks",
    "jwt_issuer": "https://idp.example.gov.cn",
    "jwt_audience": "lingju",
}
KEYS = {
    "data_keys": "k2:" + base64.b64encode(b"k" * 32).decode(),
    "blind_index_key": base64.b64encode(b"b" * 32).decode(),
    "certificate_signing_key": "a real certificate signing key",
    "integration_clients": {"county-bureau": [BUREAU_SECRET]},
    "metrics_token": "m" * 32,
}


def production(**fields: Any) -> Settings:
    return Settings(env="production", **{**IDP, **KEYS, **fields})


def test_a_production_with_real_secrets_starts() -> None:
    for service in ("registry", "benefits", "visits", "notify", None):
        production().check(service)
    production(integration_clients={}).check("registry")  # no integration: every call refused


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # HS256 is refused outside development whatever its secret: the IdP's tokens only.
        ({"jwt_jwks_url": None}, "LINGJU_JWT_JWKS_URL"),
        ({"jwt_jwks_url": None, "jwt_secret": "s" * 64}, "HS256"),
        ({"jwt_issuer": None}, "LINGJU_JWT_ISSUER"),
        ({"metrics_token": None}, "LINGJU_METRICS_TOKEN"),
        ({"metrics_token": "m" * 31}, "LINGJU_METRICS_TOKEN"),
        ({"jwt_audience": None}, "LINGJU_JWT_AUDIENCE"),
        ({"data_keys": Settings().data_keys}, "LINGJU_DATA_KEYS"),
        ({"certificate_signing_key": Settings().certificate_signing_key}, "SIGNING_KEY"),
        # the development default maps the dev bureau tokens to the dev secret
        ({"integration_clients": Settings().integration_clients}, "development secret"),
        (
            {"integration_clients": {"county-bureau": [BUREAU_SECRET, DEV_BUREAU_HMAC_SECRET]}},
            "development secret",
        ),
        ({"integration_clients": {"county-bureau": ["s" * 31]}}, "at least 32 bytes"),
    ],
)
def test_development_or_weak_secrets_stop_a_production_start(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuntimeError, match=message):
        production(**fields).check("registry")


def test_only_registry_needs_integration_secrets() -> None:
    weak = production(integration_clients={"county-bureau": ["short"]})
    for service in ("benefits", "visits", "notify"):
        weak.check(service)
    with pytest.raises(RuntimeError, match="at least 32 bytes"):
        weak.check(None)  # all services


def test_development_and_test_runs_are_not_checked() -> None:
    Settings(env="development", jwt_secret="x").check("registry")
    Settings(env="test", jwt_secret="x").check("registry")


def test_development_bureau_tokens_are_clients_with_the_development_secret() -> None:
    clients = Settings().integration_clients
    # What ``lingju token --role bureau_system [--region 330102]`` and the tests mint.
    for sub in ("bureau_system-330102", "bureau_system-all", "county-bureau"):
        assert clients[sub] == [DEV_BUREAU_HMAC_SECRET]


def test_integration_clients_are_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "LINGJU_INTEGRATION_CLIENTS", '{"county-bureau": ["new-secret", "old-secret"]}'
    )
    assert Settings().integration_clients == {"county-bureau": ["new-secret", "old-secret"]}


@pytest.mark.parametrize("service", ["registry", "benefits", "visits", "notify"])
def test_every_service_refuses_the_development_data_keys(service: str) -> None:
    # Each encrypts personal data with them (ENCRYPTED_COLUMNS in its models.py).
    with pytest.raises(RuntimeError, match="LINGJU_DATA_KEYS"):
        production(data_keys=Settings().data_keys).check(service)
    with pytest.raises(RuntimeError, match="LINGJU_BLIND_INDEX_KEY"):
        production(blind_index_key=Settings().blind_index_key).check(service)
