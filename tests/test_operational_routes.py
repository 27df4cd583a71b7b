"""The routes outside the API: the API description can be switched off (production's default),
and /metrics asks for the scrape token once one is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.config import SERVICES, Settings
from shared.devstack import NatsServer
from tests.support import InProcessStack, clean_stack

TOKEN = "metrics-scrape-token-0123456789-abcdef"


@pytest.fixture
async def closed(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[InProcessStack]:
    async with clean_stack(
        databases, nats_server, tmp_path, api_docs=False, metrics_token=TOKEN
    ) as st:
        yield st


async def test_no_api_description_and_metrics_only_with_the_token(closed: InProcessStack) -> None:
    for service in SERVICES:
        client = closed.clients[service]
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, (service, path)
        r = await client.get("/metrics")
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        r = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and "lingju_" in r.text
        assert (await client.get("/healthz")).status_code == 200


def test_production_serves_no_api_description_unless_asked() -> None:
    assert Settings(env="production").serves_api_docs is False
    assert Settings(env="production", api_docs=True).serves_api_docs is True
    assert Settings(env="development").serves_api_docs is True
