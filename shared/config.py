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
# The subjects ``lingju token --role bureau_system`` (and the tests) mint: the county-wide and
# the unscoped development bureau token, and the name a deployment is expected to use.
DEV_INTEGRATION_SUBJECTS = ("bureau_system-330102", "bureau_system-all", "county-bureau")
DEV_BLIND_INDEX_KEY = "bGluZ2p1LWRldmVsb3BtZW50LWJsaW5kLWluZGV4LWtleQ=="


# HMAC keys shorter than the hash (256 bits) are guessable offline from one signed message.
MIN_INTEGRATION_SECRET_BYTES = 32


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

    # Auth: HS256 in development and tests; JWKS from an OIDC issuer in production.
    jwt_secret: str = DEV_JWT_SECRET
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Clock skew tolerated on exp and nbf: bounded, a wide one would keep expired tokens alive.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_jwks_cache_seconds: float = Field(default=300, gt=0)
    jwt_jwks_refresh_cooldown_seconds: float = Field(default=30, ge=0)

    # Callers of the signed integration routes (the county health bureau), by their token's
    # subject (JWT ``sub``): the HMAC-SHA256 secrets accepted from that client, newest first
    # (two while one is being rotated). JSON in the environment:
    # LINGJU_INTEGRATION_CLIENTS='{"county-bureau": ["<new>", "<old>"]}'.
    integration_clients: dict[str, list[str]] = Field(
        default_factory=lambda: {sub: [DEV_BUREAU_HMAC_SECRET] for sub in DEV_INTEGRATION_SUBJECTS}
    )
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

    # The API's own description (/docs, /redoc, /openapi.json): on by default outside
    # production; production serves it only when asked (it maps every route for a stranger).
    api_docs: bool | None = None
    # Prometheus scrapes /metrics with this bearer token; unset, /metrics is open (development).
    # Production refuses to start without one.
    metrics_token: str | None = None

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
    # notify: after a staff webhook's secret is rotated, deliveries are signed with the new and
    # the previous secret for this long, so the receiver can switch without losing a message.
    notify_webhook_secret_grace_hours: float = Field(default=24, ge=0)
    # notify: let webhooks go to http, IP literals and loopback or private addresses
    # (development receivers); production refuses it.
    notify_webhook_allow_private: bool = False
    # notify's outbound event feed (docs/event-feed.md): POSTs at once per loop, the attempts
    # before a delivery is dead, and the exponential backoff with full jitter between them.
    notify_feed_concurrency: int = Field(default=8, ge=1)
    notify_feed_max_attempts: int = Field(default=10, ge=1)
    notify_feed_backoff_base_seconds: float = Field(default=10, gt=0)
    notify_feed_backoff_cap_seconds: float = Field(default=3600, gt=0)

    # Where each service answers, for the calls one service makes to another's API (the
    # monthly report's fan-in). Unset: http://<host>:<port> of `lingju run`.
    registry_url: str | None = None
    benefits_url: str | None = None
    visits_url: str | None = None
    notify_url: str | None = None
    peer_timeout_seconds: float = Field(default=10, gt=0)

    def service_url(self, service: str) -> str:
        url = getattr(self, f"{service}_url")
        return str(url) if url else f"http://{self.host}:{self.port(service)}"

    def database_url(self, service: str) -> str:
        url = getattr(self, f"{service}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.var_dir / f'{service}.db').as_posix()}"

    def port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.env != "production"

    def check(self, service: str | None = None) -> None:
        """Refuse to run production with development secrets: each service those it uses."""
        if self.env != "production":
            return
        if not self.metrics_token or len(self.metrics_token) < 32:
            # The metrics name routes, consumers and backlogs: not for anyone who asks.
            raise RuntimeError("production needs LINGJU_METRICS_TOKEN (at least 32 characters)")
        # A shared HS256 secret lets whoever holds it mint any role's token: production trusts
        # only the county's identity provider, and only tokens it issued for us.
        if not self.jwt_jwks_url:
            raise RuntimeError(
                "production needs LINGJU_JWT_JWKS_URL: the HS256 development mode refuses to "
                "start outside development"
            )
        if not self.jwt_issuer or not self.jwt_audience:
            raise RuntimeError(
                "production with LINGJU_JWT_JWKS_URL needs LINGJU_JWT_ISSUER and "
                "LINGJU_JWT_AUDIENCE"
            )
        # Every service encrypts with them: ID numbers and phones (registry), bank accounts
        # (benefits), health findings (visits), contact details (notify).
        if self.data_keys == DEV_DATA_KEY or self.blind_index_key == DEV_BLIND_INDEX_KEY:
            raise RuntimeError("production needs LINGJU_DATA_KEYS and LINGJU_BLIND_INDEX_KEY")
        if service not in (None, "registry"):
            return
        if self.certificate_signing_key == DEV_CERTIFICATE_SIGNING_KEY:
            raise RuntimeError("production needs LINGJU_CERTIFICATE_SIGNING_KEY")
        self._check_integration_clients()

    def _check_integration_clients(self) -> None:
        for client, secrets in self.integration_clients.items():
            for secret in secrets:
                if secret == DEV_BUREAU_HMAC_SECRET:
                    raise RuntimeError(
                        f"LINGJU_INTEGRATION_CLIENTS: client {client!r} has the development secret"
                    )
                if len(secret.encode()) < MIN_INTEGRATION_SECRET_BYTES:
                    raise RuntimeError(
                        f"LINGJU_INTEGRATION_CLIENTS: every secret of client {client!r} must be "
                        f"at least {MIN_INTEGRATION_SECRET_BYTES} bytes"
                    )
