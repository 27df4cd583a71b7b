"""HMAC-SHA256 request signatures for integration calls (the county health bureau, webhooks).

The caller sends two headers::

    X-Lingju-Timestamp: <unix seconds>
    X-Lingju-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{raw body}" with the secret>

The receiver recomputes the HMAC over the exact bytes it received, compares in constant time,
and refuses a timestamp further than ``max_age_seconds`` from its clock (a captured request
cannot be replayed later). Senders and receivers, and the tests, use these same functions.

Rotation without downtime: a receiver accepts any of a list of secrets (the new one first, the
old one until every sender has switched), and a sender that holds two signs with both, one
``sha256=<hex>`` per secret, comma separated; a receiver accepts the request when any one of the
signatures matches any one of its secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Lingju-Timestamp"
SIGNATURE_HEADER = "X-Lingju-Signature"
SCHEME = "sha256="

_TIMESTAMP = re.compile(r"^\d{1,12}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(Exception):
    """The request is not signed as required; ``code`` is the stable problem code."""

    code = "signature_invalid"

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


class SignatureInvalid(SignatureError):
    code = "signature_invalid"


class SignatureExpired(SignatureError):
    code = "signature_expired"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# Without a limit, a header of thousands of signatures would cost as many HMACs per secret.
MAX_SIGNATURES = 4


def _secrets(secrets: str | Sequence[str]) -> list[str]:
    return [secrets] if isinstance(secrets, str) else [s for s in secrets if s]


def sign(secrets: str | Sequence[str], timestamp: int | str, body: bytes) -> str:
    """The ``X-Lingju-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds): one
    ``sha256=<hex>`` per secret, comma separated (two while a secret is being rotated)."""
    return ",".join(SCHEME + _digest(s, str(timestamp), body) for s in _secrets(secrets))


def signed_headers(
    secrets: str | Sequence[str], body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """Both headers a sender attaches to ``body`` (now, unless ``timestamp`` is given)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secrets, ts, body)}


def verify(
    secrets: str | Sequence[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    max_age_seconds: int,
    now: float | None = None,
) -> None:
    """Raise ``SignatureInvalid`` or ``SignatureExpired`` unless the request is signed right.

    The signature is checked before the age, so an attacker learns nothing about the clock
    from a forged request; a timestamp too far in the future is refused like an old one.
    """
    keys = _secrets(secrets)
    if not keys:
        raise SignatureInvalid("未配置签名密钥", "No signing secret is configured")
    if not timestamp or not signature:
        raise SignatureInvalid(
            f"缺少签名请求头 {TIMESTAMP_HEADER} 或 {SIGNATURE_HEADER}",
            f"Missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header",
        )
    timestamp = timestamp.strip()
    signature = signature.strip()
    if not _TIMESTAMP.match(timestamp):
        raise SignatureInvalid(
            f"{TIMESTAMP_HEADER} 应为 Unix 时间戳（秒）",
            f"{TIMESTAMP_HEADER} must be unix seconds",
        )
    offered = [part.strip() for part in signature.split(",")]
    digests = [p[len(SCHEME) :].lower() if p.startswith(SCHEME) else "" for p in offered]
    if len(digests) > MAX_SIGNATURES or not all(_HEX_DIGEST.match(d) for d in digests):
        raise SignatureInvalid(
            f"{SIGNATURE_HEADER} 格式应为 sha256=<64 位十六进制>"
            f"（至多 {MAX_SIGNATURES} 个，逗号分隔）",
            f"{SIGNATURE_HEADER} must be sha256=<64 hex digits> "
            f"(at most {MAX_SIGNATURES}, comma separated)",
        )
    expected = [_digest(key, timestamp, body) for key in keys]
    # Every pair is compared, so the time taken says nothing about which one matched.
    matched = [hmac.compare_digest(e, d) for e in expected for d in digests]
    if not any(matched):
        raise SignatureInvalid("请求签名不正确", "The request signature does not match")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_age_seconds:
        raise SignatureExpired(
            f"请求时间戳超出 {max_age_seconds} 秒有效期",
            f"The request timestamp is more than {max_age_seconds} s from the server's clock",
        )
