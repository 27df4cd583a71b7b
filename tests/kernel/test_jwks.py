"""Production tokens: verified against the identity provider's published JWKS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.auth import Role, TokenVerifier
from shared.config import Settings
from shared.errors import Problem

ISSUER = "https://id.county.example/realms/lingju"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A real HTTP endpoint on loopback publishing the public key, as an OIDC issuer does."""
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/certs"
    server.shutdown()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "officer-7",
        "role": "township_officer",
        "region": "330102001",
        "iss": ISSUER,
        "aud": "lingju",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


def _verifier(jwks_url: str) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience="lingju"))


def test_token_signed_by_the_issuer_is_accepted(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    """A token the county's identity provider signed (RS256, key id k1) yields the principal."""
    token = jwt.encode(_claims(), signing_key, algorithm="RS256", headers={"kid": "k1"})
    principal = _verifier(jwks_url).verify(token)
    assert (principal.sub, principal.role, principal.region) == (
        "officer-7",
        Role.township_officer,
        "330102001",
    )


def test_development_hs256_token_is_refused_in_jwks_mode(jwks_url: str) -> None:
    """With an issuer configured, a token signed with the shared development secret fails."""
    token = jwt.encode(_claims(), Settings().jwt_secret, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Problem) as e:
        _verifier(jwks_url).verify(token)
    assert e.value.status == 401


@pytest.mark.parametrize(
    "claims",
    [
        _claims(iss="https://someone.else"),
        _claims(aud="another-app"),
        _claims(exp=int(time.time()) - 3600),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired"],
)
def test_issuer_audience_and_expiry_are_checked(
    signing_key: rsa.RSAPrivateKey, jwks_url: str, claims: dict[str, Any]
) -> None:
    token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(Problem) as e:
        _verifier(jwks_url).verify(token)
    assert e.value.code == "token_invalid"


def test_key_the_issuer_does_not_publish_is_refused(jwks_url: str) -> None:
    """A token signed by any other key, even with a known key id, is refused."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(Problem):
        _verifier(jwks_url).verify(token)
