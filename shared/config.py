"""Every setting of every service, in one place (environment variables prefixed ``LINGJU_``)."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "benefits", "visits", "notify")
ServiceName = Literal["registry", "benefits", "visits", "notify"]

# Only for development and tests: production refuses to start with these (see ``check``).
DEV_JWT_SECRET = "lingju-development-secret-change-me-0123456789"
DEV_DATA_KEY = "dev1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
DEV_CERTIFICATE_SIGNING_KEY = "lingju-development-certificate-signing-key"
DEV_BUREAU_HMAC_SECRET = "lingju-development-bureau-secret"
DEV_BLIND_INDEX_KEY = "bGluZ2p1LWRldmVsb3BtZW50LWJsaW5kLWluZGV4LWtleQ=="


# HS256 keys shorter than the hash (256 bits) are guessable offline from any token.
MIN_HS256_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINGJU_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True

    # Databases: one per service. Unset means SQLite under var_dir.
    registry_database_url: str | None = None
    benefits_database_url: str | None = None
    visits_database_url: str | None = None
    notify_database_url: str | None = None
    db_pool_size: int = 10
    # SQLite's page cache, all of a process's connections to one database together: each of
    # the pool's 2 x db_pool_size connections gets its share (shared/db.py).
    db_sqlite_cache_mib: int = 256

    # Where `lingju run` listens (127.0.0.1 by default: a laptop is not a server).
    host: str = "127.0.0.1"
    registry_port: int = 8001
    benefits_port: int = 8002
    visits_port: int = 8003
    notify_port: int = 8004
    # Port of the nats-server `lingju run` starts when LINGJU_NATS_URL is not set.
    nats_port: int = 4222

    # Messaging
    nats_url: str = "nats://127.0.0.1:4222"
    stream_max_age_days: float = 30
    stream_duplicate_window_seconds: float = 120
    relay_batch_size: int = 200
    relay_poll_seconds: float = 1.0
    relay_max_backoff_seconds: float = 10.0
    publish_timeout_seconds: float = 5.0
    outbox_retention_days: float = 7
    consumer_fetch_batch: int = 50
    consumer_fetch_timeout_seconds: float = 1.0
    consumer_ack_wait_seconds: float = 30
    consumer_max_deliver: int = 5
    # Delay before redelivery after the n-th failed attempt (the last value repeats).
    consumer_backoff_seconds: list[float] = Field(default_factory=lambda: [1.0, 5.0, 30.0, 120.0])
    consumer_lag_poll_seconds: float = 5.0

    # Auth: HS256 in development; JWKS from an OIDC issuer in production.
    jwt_secret: str = DEV_JWT_SECRET
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30

    # The county health bureau signs its calls (HMAC-SHA256) with this shared secret.
    bureau_hmac_secret: str = DEV_BUREAU_HMAC_SECRET
    bureau_signature_max_age_seconds: int = 300

    # Personal data: "kid:base64key" pairs, comma separated; the first encrypts new values.
    data_keys: str = DEV_DATA_KEY
    blind_index_key: str = DEV_BLIND_INDEX_KEY

    # registry: the key that signs certificate verification codes, and the public endpoints
    # rate per client and minute.
    certificate_signing_key: str = DEV_CERTIFICATE_SIGNING_KEY
    public_rate_per_minute: int = 20
    # registry: this many wrong phone endings for one application number (known or not) within
    # the window lock its public progress query for everyone, right digits included, until
    # the oldest of them leaves the window. Counted in the database: holds across replicas.
    progress_lockout_failures: int = Field(default=5, ge=1)
    progress_lockout_window_seconds: float = Field(default=900, gt=0)

    # Every service: the largest request body in bytes (413 payload_too_large beyond it). A
    # route that takes more names its own setting (shared/limits.py ``larger_body``).
    max_body_bytes: int = Field(default=1 << 20, ge=0)
    # benefits: a bank return file (POST /payment-runs/{id}/reconciliation), about 60 bytes a
    # line: a million lines fit.
    max_return_file_bytes: int = Field(default=64 << 20, ge=0)
    # visits: a phone's offline push (POST /sync), up to 200 records of 8,000 characters.
    max_sync_push_bytes: int = Field(default=16 << 20, ge=0)

    # registry: how often open applications are checked against their due dates.
    registry_overdue_sweep_seconds: float = 300

    # notify's development provider writes every outgoing message to this file.
    notify_file_provider_path: Path | None = None
    # notify: quiet hours (Asia/Shanghai) for SMS and WeChat unless a recipient chose others;
    # a critical category ignores them. The start may be after the end (across midnight).
    notify_quiet_start: time = time(21, 0)
    notify_quiet_end: time = time(8, 0)
    # notify: the hour (Asia/Shanghai) workers' morning digests go out.
    notify_digest_hour: int = Field(default=8, ge=0, le=23)
    # notify: an important inbox message still unread after this long also goes out by SMS.
    notify_escalate_after_hours: float = 24
    # notify: how many messages one channel hands to its providers at once, and how long one
    # hand-over may take before it counts as a timeout.
    notify_channel_concurrency: int = Field(default=8, ge=1)
    notify_send_timeout_seconds: float = 10
    # notify: the retry budget of one delivery (attempts over every provider of its channel),
    # and the backoff between rounds (exponential with full jitter, capped).
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_backoff_base_seconds: float = 5
    notify_backoff_cap_seconds: float = 900
    # notify: the secret a provider's receipt callback URL carries (?token=); unset refuses all.
    notify_receipt_token: str | None = None

    # notify providers. Each channel's ordered fallback list (JSON in the environment, e.g.
    # LINGJU_NOTIFY_SMS_PROVIDERS='["aliyun","tencent","file"]'): sms takes file, gateway,
    # aliyun, tencent; wechat takes file, wechat; webhook always uses the webhook provider.
    notify_sms_providers: list[str] = Field(default_factory=lambda: ["file"])
    notify_wechat_providers: list[str] = Field(default_factory=lambda: ["file"])
    # How long a provider's own HTTP calls may take (connect, write, read: each).
    notify_provider_timeout_seconds: float = 5
    # The county's own SMS platform (POST {url}/messages, HMAC-signed with the secret).
    notify_gateway_url: str | None = None
    notify_gateway_secret: str | None = None
    # Aliyun SMS (Dysmsapi SendSms). Templates: our template code -> Aliyun's (SMS_...), JSON.
    notify_aliyun_base_url: str = "https://dysmsapi.aliyuncs.com"
    notify_aliyun_access_key_id: str | None = None
    notify_aliyun_access_key_secret: str | None = None
    notify_aliyun_sign_name: str | None = None
    notify_aliyun_region: str = "cn-hangzhou"
    notify_aliyun_templates: dict[str, str] = Field(default_factory=dict)
    # Tencent Cloud SMS (SendSms 2021-01-11). Templates: our template code -> TemplateId, JSON.
    notify_tencent_base_url: str = "https://sms.tencentcloudapi.com"
    notify_tencent_secret_id: str | None = None
    notify_tencent_secret_key: str | None = None
    notify_tencent_sdk_app_id: str | None = None
    notify_tencent_sign_name: str | None = None
    notify_tencent_region: str = "ap-guangzhou"
    notify_tencent_templates: dict[str, str] = Field(default_factory=dict)
    # WeChat official account (template messages).
    notify_wechat_base_url: str = "https://api.weixin.qq.com"
    notify_wechat_app_id: str | None = None
    notify_wechat_app_secret: str | None = None
    # Signs outgoing webhooks (X-Lingju-Signature); production refuses this development value.
    notify_webhook_secret: str = "lingju-development-webhook-secret"

    def database_url(self, service: str) -> str:
        url = getattr(self, f"{service}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.var_dir / f'{service}.db').as_posix()}"

    def port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def check(self, service: str | None = None) -> None:
        """Refuse to run production with development secrets: each service those it uses."""
        if self.env != "production":
            return
        if self.jwt_jwks_url:
            # Tokens from the county's identity provider must be meant for us, by it.
            if not self.jwt_issuer or not self.jwt_audience:
                raise RuntimeError(
                    "production with LINGJU_JWT_JWKS_URL needs LINGJU_JWT_ISSUER and "
                    "LINGJU_JWT_AUDIENCE"
                )
        elif self.jwt_secret == DEV_JWT_SECRET:
            raise RuntimeError("production needs LINGJU_JWT_JWKS_URL (or a real secret)")
        elif len(self.jwt_secret.encode()) < MIN_HS256_SECRET_BYTES:
            # Anyone who guesses the secret mints any role's token.
            raise RuntimeError(
                f"LINGJU_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes in production"
            )
        # Benefits encrypts payee bank accounts with the same data keys.
        if service in (None, "registry", "benefits") and (
            self.data_keys == DEV_DATA_KEY or self.blind_index_key == DEV_BLIND_INDEX_KEY
        ):
            raise RuntimeError("production needs LINGJU_DATA_KEYS and LINGJU_BLIND_INDEX_KEY")
        if service not in (None, "registry"):
            return
        if self.certificate_signing_key == DEV_CERTIFICATE_SIGNING_KEY:
            raise RuntimeError("production needs LINGJU_CERTIFICATE_SIGNING_KEY")
        if self.bureau_hmac_secret == DEV_BUREAU_HMAC_SECRET:
            raise RuntimeError("production needs LINGJU_BUREAU_HMAC_SECRET")
