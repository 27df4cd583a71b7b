"""HMAC-SHA256 request signatures for integration calls (the county health bureau, webhooks).

The caller sends two headers::

    X-Lingju-Timestamp: <unix seconds>
    X-Lingju-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{raw body}" with the secret>

The receiver recomputes the HMAC over the exact bytes it received, compares in constant time,
and refuses a timestamp further than ``max_age_seconds`` from its clock (a captured request
cannot be replayed later). Senders and receivers, and the tests, use these same functions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

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


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Lingju-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return SCHEME + _digest(secret, str(timestamp), body)


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both headers a sender attaches to ``body`` (now, unless ``timestamp`` is given)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(
    secret: str,
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
    if not secret:
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
    hex_part = signature[len(SCHEME) :].lower() if signature.startswith(SCHEME) else ""
    if not _HEX_DIGEST.match(hex_part):
        raise SignatureInvalid(
            f"{SIGNATURE_HEADER} 格式应为 sha256=<64 位十六进制>",
            f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>",
        )
    expected = _digest(secret, timestamp, body)
    if not hmac.compare_digest(expected, hex_part):
        raise SignatureInvalid("请求签名不正确", "The request signature does not match")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_age_seconds:
        raise SignatureExpired(
            f"请求时间戳超出 {max_age_seconds} 秒有效期",
            f"The request timestamp is more than {max_age_seconds} s from the server's clock",
        )
