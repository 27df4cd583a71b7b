"""Notify's fixtures: the fake provider server on loopback, and the four services wired to it
(SMS through Aliyun then Tencent, WeChat through WeChat), with short retry settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.notify.events import routing
from services.notify.tests.fake_providers import FakeProviders
from shared.devstack import NatsServer
from tests.support import InProcessStack, reset_broker, reset_databases

RECEIPT_TOKEN = "receipt-secret-for-tests"


def sms_template_ids(prefix: str) -> dict[str, str]:
    """A provider template id for every template code (the county registers each with its SMS
    platform; the tests pretend it did)."""
    codes = sorted({*routing().templates(), "digest_due_visits"})
    return {code: f"{prefix}{i:04d}" for i, code in enumerate(codes, start=1)}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with FakeProviders() as f:
        yield f


@pytest.fixture
async def notify_stack(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path, fake: FakeProviders
) -> AsyncIterator[InProcessStack]:
    await reset_databases(databases)
    await reset_broker(nats_server.url)
    stack = InProcessStack(
        databases,
        nats_server,
        tmp_path,
        **{
            **fake.settings_overrides(),
            "notify_sms_providers": ["aliyun", "tencent"],
            "notify_wechat_providers": ["wechat"],
            "notify_aliyun_templates": sms_template_ids("SMS_"),
            "notify_tencent_templates": sms_template_ids("9"),
            "notify_backoff_base_seconds": 0.05,
            "notify_backoff_cap_seconds": 0.2,
            "notify_send_timeout_seconds": 2.0,
            "notify_provider_timeout_seconds": 0.5,
            "notify_max_attempts": 6,
            "notify_receipt_token": RECEIPT_TOKEN,
        },
    )
    async with stack.running():
        yield stack
