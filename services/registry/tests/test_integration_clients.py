"""Per-client integration secrets: each caller of the signed bureau route is verified with the
secrets listed for its own token subject only (LINGJU_INTEGRATION_CLIENTS), old ones while
they are listed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from services.registry.tests.family_support import assert_problem, bureau_report, newborn
from shared.devstack import NatsServer
from tests.support import InProcessStack, clean_stack

COUNTY_NEW = "county-bureau-secret-2026-0123456789abcdef"
COUNTY_OLD = "county-bureau-secret-2025-0123456789abcdef"
CITY = "city-bureau-secret-2026-0123456789abcdef01"


@asynccontextmanager
async def stack_with(
    databases: dict[str, str], nats: NatsServer, tmp_path: Path, clients: dict[str, list[str]]
) -> AsyncIterator[InProcessStack]:
    async with clean_stack(databases, nats, tmp_path, integration_clients=clients) as stack:
        yield stack


_seq = iter(range(1, 1_000_000))


async def birth_report(stack: InProcessStack) -> dict[str, Any]:
    """A hospital birth of a newly registered mother, under a reference of its own."""
    n = next(_seq)
    mother = await stack.register_person(date(1993, 2, 2), "female")
    return {
        "external_ref": f"HB-2026-{n:06d}",
        "kind": "birth",
        "mother_id": mother["id"],
        "child": newborn(birth_certificate_no=f"Q33{n:07d}"),
    }


async def test_each_client_signs_with_its_own_secrets_old_ones_while_listed(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    clients = {"county-bureau": [COUNTY_NEW, COUNTY_OLD], "city-bureau": [CITY]}
    async with stack_with(databases, nats_server, tmp_path, clients) as stack:
        as_county: dict[str, Any] = {"sub": "county-bureau"}
        r = await bureau_report(stack, await birth_report(stack), secret=COUNTY_NEW, **as_county)
        assert r.status_code == 201, r.text
        # During the rotation the bureau may still sign with the old secret.
        r = await bureau_report(stack, await birth_report(stack), secret=COUNTY_OLD, **as_county)
        assert r.status_code == 201, r.text

        # Another client's secret does not sign for this one, nor the other way round.
        report = await birth_report(stack)
        r = await bureau_report(stack, report, secret=CITY, **as_county)
        assert_problem(r, 401, "signature_invalid")
        r = await bureau_report(stack, report, secret=COUNTY_NEW, sub="city-bureau")
        assert_problem(r, 401, "signature_invalid")

        # A bureau token whose subject is no configured client is refused before any HMAC.
        r = await bureau_report(stack, report, secret=COUNTY_NEW, sub="rogue-bureau")
        body = assert_problem(r, 401, "integration_client_unknown")
        assert "rogue-bureau" in body["detail"] and "对接方" in body["detail"]

        old = int(time.time()) - stack.settings.bureau_signature_max_age_seconds - 60
        r = await bureau_report(stack, report, secret=COUNTY_NEW, timestamp=old, **as_county)
        assert_problem(r, 401, "signature_expired")
        assert await stack.count_rows("registry", "hospital_reports") == 2

    # The rotation is over: the old secret is removed from the list, and refused.
    clients = {"county-bureau": [COUNTY_NEW]}
    async with stack_with(databases, nats_server, tmp_path, clients) as stack:
        report = await birth_report(stack)
        r = await bureau_report(stack, report, secret=COUNTY_OLD, sub="county-bureau")
        assert_problem(r, 401, "signature_invalid")
        r = await bureau_report(stack, report, secret=COUNTY_NEW, sub="county-bureau")
        assert r.status_code == 201, r.text


async def test_the_development_bureau_token_signs_with_the_development_secret(
    stack: InProcessStack,
) -> None:
    """Out of the box, ``lingju token --role bureau_system --region 330102`` and the
    development secret are a configured client (production refuses that secret)."""
    r = await bureau_report(stack, await birth_report(stack))
    assert r.status_code == 201, r.text
    r = await bureau_report(stack, await birth_report(stack), sub="county-bureau")
    assert r.status_code == 201, r.text
