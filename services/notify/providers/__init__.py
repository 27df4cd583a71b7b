"""Channel providers behind one interface (base.py), and the per-channel fallback lists
built from the settings at start-up.

``build_providers(settings)`` answers ``{"sms": [...], "wechat": [...], "webhook": [...]}``,
each list in the order the dispatcher tries them (the in-app inbox is no provider). It
refuses, with a ValueError naming the setting, an unknown provider name, a provider on a
channel it does not serve, and a provider whose credentials are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from services.notify.providers.aliyun import AliyunSmsProvider
from services.notify.providers.base import (
    Accepted,
    OutgoingMessage,
    Provider,
    Receipt,
    SendError,
)
from services.notify.providers.file import FileProvider
from services.notify.providers.gateway import GatewayProvider
from services.notify.providers.tencent import TencentSmsProvider
from services.notify.providers.webhook import WebhookProvider
from services.notify.providers.wechat import WechatProvider

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "CHANNEL_PROVIDERS",
    "Accepted",
    "AliyunSmsProvider",
    "FileProvider",
    "GatewayProvider",
    "OutgoingMessage",
    "Provider",
    "Receipt",
    "SendError",
    "TencentSmsProvider",
    "WebhookProvider",
    "WechatProvider",
    "aclose_providers",
    "build_providers",
    "provider_by_name",
]

# The provider names each channel accepts, in settings' notify_<channel>_providers.
CHANNEL_PROVIDERS: dict[str, tuple[str, ...]] = {
    "sms": ("file", "gateway", "aliyun", "tencent"),
    "wechat": ("file", "wechat"),
    "webhook": ("webhook",),
}


def _env(field: str) -> str:
    return f"LINGJU_{field.upper()}"


def _require(settings: Settings, provider: str, fields: Iterable[str]) -> None:
    missing = [_env(f) for f in fields if not getattr(settings, f)]
    if missing:
        raise ValueError(f"notify: the {provider} provider needs {', '.join(missing)}")


def _build_one(
    channel: str,
    name: str,
    settings: Settings,
    file_path: Path,
    client: httpx.AsyncClient | None,
) -> Provider:
    timeout = settings.notify_provider_timeout_seconds
    if name == "file":
        return FileProvider(channel, file_path)
    if name == "gateway":
        _require(settings, name, ["notify_gateway_url", "notify_gateway_secret"])
        return GatewayProvider(
            settings.notify_gateway_url,  # type: ignore[arg-type]
            settings.notify_gateway_secret,  # type: ignore[arg-type]
            timeout=timeout,
            client=client,
        )
    if name == "aliyun":
        _require(
            settings,
            name,
            [
                "notify_aliyun_access_key_id",
                "notify_aliyun_access_key_secret",
                "notify_aliyun_sign_name",
                "notify_aliyun_templates",
            ],
        )
        return AliyunSmsProvider(
            access_key_id=settings.notify_aliyun_access_key_id,  # type: ignore[arg-type]
            access_key_secret=settings.notify_aliyun_access_key_secret,  # type: ignore[arg-type]
            sign_name=settings.notify_aliyun_sign_name,  # type: ignore[arg-type]
            templates=settings.notify_aliyun_templates,
            region=settings.notify_aliyun_region,
            base_url=settings.notify_aliyun_base_url,
            timeout=timeout,
            client=client,
        )
    if name == "tencent":
        _require(
            settings,
            name,
            [
                "notify_tencent_secret_id",
                "notify_tencent_secret_key",
                "notify_tencent_sdk_app_id",
                "notify_tencent_sign_name",
                "notify_tencent_templates",
            ],
        )
        return TencentSmsProvider(
            secret_id=settings.notify_tencent_secret_id,  # type: ignore[arg-type]
            secret_key=settings.notify_tencent_secret_key,  # type: ignore[arg-type]
            sdk_app_id=settings.notify_tencent_sdk_app_id,  # type: ignore[arg-type]
            sign_name=settings.notify_tencent_sign_name,  # type: ignore[arg-type]
            templates=settings.notify_tencent_templates,
            region=settings.notify_tencent_region,
            base_url=settings.notify_tencent_base_url,
            timeout=timeout,
            client=client,
        )
    if name == "wechat":
        _require(settings, name, ["notify_wechat_app_id", "notify_wechat_app_secret"])
        return WechatProvider(
            app_id=settings.notify_wechat_app_id,  # type: ignore[arg-type]
            app_secret=settings.notify_wechat_app_secret,  # type: ignore[arg-type]
            base_url=settings.notify_wechat_base_url,
            timeout=timeout,
            client=client,
        )
    if name == "webhook":
        # Each staff webhook is signed with its own secret (staff_contacts), not a setting.
        return WebhookProvider(
            timeout=timeout, client=client, allow_private=settings.notify_webhook_allow_private
        )
    raise ValueError(f"notify: unknown provider {name!r}")  # pragma: no cover


def build_providers(
    settings: Settings, *, client: httpx.AsyncClient | None = None
) -> dict[str, list[Provider]]:
    """Each channel's providers in fallback order. ``client``: one httpx client for every
    HTTP provider (tests); by default each provider makes its own on first use."""
    file_path = settings.notify_file_provider_path or settings.var_dir / "notify-messages.jsonl"
    lists = {
        "sms": ("notify_sms_providers", list(settings.notify_sms_providers)),
        "wechat": ("notify_wechat_providers", list(settings.notify_wechat_providers)),
        "webhook": (None, ["webhook"]),
    }
    if settings.env == "production" and settings.notify_webhook_allow_private:
        # Webhooks to loopback and private addresses are for a developer's own receiver.
        raise ValueError(
            f"notify: production refuses {_env('notify_webhook_allow_private')} "
            "(webhooks to internal addresses)"
        )
    providers: dict[str, list[Provider]] = {}
    for channel, (field, names) in lists.items():
        where = _env(field) if field else channel
        if not names:
            raise ValueError(f"notify: {where} lists no provider for the {channel} channel")
        if len(set(names)) != len(names):
            raise ValueError(f"notify: {where} lists a provider twice: {names}")
        for name in names:
            if name == "file" and settings.env == "production":
                # The development provider writes numbers and texts in clear to a file.
                raise ValueError(
                    f"notify: {where}: the file provider is for development; name a real one "
                    "in production"
                )
            if name not in CHANNEL_PROVIDERS[channel]:
                known = ", ".join(CHANNEL_PROVIDERS[channel])
                raise ValueError(
                    f"notify: {where}: unknown provider {name!r} for the {channel} channel "
                    f"(known: {known})"
                )
        providers[channel] = [
            _build_one(channel, name, settings, file_path, client) for name in names
        ]
    return providers


def provider_by_name(
    providers: Mapping[str, list[Provider]], name: str, channel: str | None = None
) -> Provider | None:
    """The configured provider called ``name`` (on ``channel`` if given), e.g. for the
    receipts callback route; None when no channel uses it."""
    for ch, items in providers.items():
        if channel is not None and ch != channel:
            continue
        for provider in items:
            if provider.name == name:
                return provider
    return None


async def aclose_providers(providers: Mapping[str, list[Provider]]) -> None:
    """Close every provider's HTTP client (at shutdown)."""
    for items in providers.values():
        for provider in items:
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()
