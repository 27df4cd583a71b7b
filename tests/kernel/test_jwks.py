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


class RotatingIssuer:
    """An issuer whose published keys the test changes, as a county's IdP does on rotation."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                published = [
                    {**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "alg": "RS256"}
                    for kid, k in issuer.keys.items()
                ]
                body = json.dumps({"keys": published}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"

    def token(self, kid: str, **claims: Any) -> str:
        return jwt.encode(
            _claims(**claims), self.keys[kid], algorithm="RS256", headers={"kid": kid}
        )


@pytest.fixture
def issuer() -> Iterator[RotatingIssuer]:
    it = RotatingIssuer()
    it.keys["k1"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    yield it
    it.server.shutdown()


def test_a_rotated_key_is_picked_up_and_a_withdrawn_one_stops_working(
    issuer: RotatingIssuer,
) -> None:
    verifier = TokenVerifier(
        Settings(
            jwt_jwks_url=issuer.url,
            jwt_issuer=ISSUER,
            jwt_audience="lingju",
            jwt_jwks_cache_seconds=0.5,
            jwt_jwks_refresh_cooldown_seconds=0,
        )
    )
    old_token = issuer.token("k1")
    assert verifier.verify(old_token).sub == "officer-7"
    # The issuer publishes k2 next to k1 and signs with it: the unknown key id refetches.
    issuer.keys["k2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert verifier.verify(issuer.token("k2")).sub == "officer-7"
    # k1 withdrawn: once the cached set expires, tokens it signed are refused.
    del issuer.keys["k1"]
    time.sleep(0.6)
    with pytest.raises(Problem) as e:
        verifier.verify(old_token)
    assert e.value.code == "token_invalid"
    assert verifier.verify(issuer.token("k2")).sub == "officer-7"


def test_not_before_is_checked_within_the_bounded_leeway(issuer: RotatingIssuer) -> None:
    verifier = TokenVerifier(
        Settings(
            jwt_jwks_url=issuer.url,
            jwt_issuer=ISSUER,
            jwt_audience="lingju",
            jwt_leeway_seconds=30,
        )
    )
    now = int(time.time())
    with pytest.raises(Problem) as e:
        verifier.verify(issuer.token("k1", nbf=now + 120))
    assert e.value.code == "token_invalid"
    assert verifier.verify(issuer.token("k1", nbf=now + 10)).sub == "officer-7"  # clock skew


def test_the_leeway_cannot_be_set_wide() -> None:
    with pytest.raises(ValueError):
        Settings(jwt_leeway_seconds=3600)
