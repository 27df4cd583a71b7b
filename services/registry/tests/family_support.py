"""Helpers of the family and life-event HTTP tests: couples, outbox events, rows."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
from sqlalchemy import select

from services.registry.models import Person
from shared.config import DEV_BUREAU_HMAC_SECRET
from shared.signing import signed_headers
from tests.support import TOWNSHIP, InProcessStack

PROBLEM = "application/problem+json"
COUNTY = "330102"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def officer(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("township_officer", TOWNSHIP)


async def couple(stack: InProcessStack, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    wife = await stack.register_person(date(1990, 3, 1), "female", name="王芳", **fields)
    husband = await stack.register_person(date(1988, 7, 9), "male", name="李强", **fields)
    return wife, husband


async def register_family(
    stack: InProcessStack,
    wife: dict[str, Any],
    husband: dict[str, Any],
    children: list[dict[str, Any]] | None = None,
    marriage_date: str = "2014-05-20",
) -> dict[str, Any]:
    r = await stack.registry.post(
        "/api/v1/families",
        json={
            "wife_id": wife["id"],
            "husband_id": husband["id"],
            "marriage_date": marriage_date,
            "children_ids": [c["id"] for c in children or []],
        },
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def newborn(**fields: Any) -> dict[str, Any]:
    return {
        "name": "李小宝",
        "sex": "male",
        "birth_date": date.today().isoformat(),
        "hospital": "上城区妇幼保健院",
        "birth_certificate_no": "Q330000001",
        **fields,
    }


async def outbox_events(stack: InProcessStack, event_type: str) -> list[dict[str, Any]]:
    """The CloudEvents of one type the registry committed to its outbox, oldest first."""
    rt = stack.rt("registry")
    t = rt.tables.outbox
    async with rt.db.session() as s:
        payloads = (await s.execute(select(t.c.payload).order_by(t.c.seq))).scalars().all()
    return [e for e in map(json.loads, payloads) if e["type"] == event_type]


async def person_row(stack: InProcessStack, person_id: str) -> Person:
    async with stack.rt("registry").db.session() as s:
        person = await s.get(Person, person_id)
    assert person is not None
    return person


def bureau_post_args(
    stack: InProcessStack,
    body: dict[str, Any],
    *,
    timestamp: int | None = None,
    secret: str | None = None,
    region: str = COUNTY,
    role: str = "bureau_system",
    sub: str | None = None,
) -> dict[str, Any]:
    """Signed as the token's client (``sub``, default the dev token's) with its newest secret,
    unless ``secret`` is given."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    client = sub or f"{role}-{region or 'all'}"
    own = stack.settings.integration_clients.get(client) or [DEV_BUREAU_HMAC_SECRET]
    return {
        "content": raw,
        "headers": {
            **stack.auth(role, region, sub=sub),
            **signed_headers(secret or own[0], raw, timestamp),
            "content-type": "application/json",
        },
    }


async def bureau_report(
    stack: InProcessStack, body: dict[str, Any], **signing: Any
) -> httpx.Response:
    return await stack.registry.post(
        "/api/v1/integrations/hospital-events", **bureau_post_args(stack, body, **signing)
    )
