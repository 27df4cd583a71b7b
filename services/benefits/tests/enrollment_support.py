"""Helpers of benefits' enrollment tests: registry flows, raw events, officers, rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
from sqlalchemy import update

from services.benefits.models import Enrollment, LedgerEntry
from tests.support import TOWNSHIP, VILLAGE, InProcessStack, eventually
from tests.test_event_delivery import envelope, publish

ENROLLMENTS = "/api/v1/enrollments"
CREATED = "lingju.benefits.enrollment.created"
ACTIVATED = "lingju.benefits.enrollment.activated"
ENDED = "lingju.benefits.enrollment.ended"


def officer(stack: InProcessStack, sub: str, region: str = TOWNSHIP) -> dict[str, str]:
    """A township officer with a name: maker-checker tells officers apart by ``sub``."""
    return stack.auth("township_officer", region, sub=sub)


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


# -- registry flows (HTTP) ------------------------------------------------------------------------


async def honor_family(
    stack: InProcessStack,
    *,
    mother_birth: date = date(1975, 5, 1),
    father_birth: date = date(1973, 3, 2),
    child_birth: date = date(2012, 6, 1),
    household_type: str = "rural",
    register_family: bool = False,
) -> dict[str, Any]:
    """Parents and their only child registered, optionally as a family, and an only-child
    honor certificate issued to the parents (village then township approval)."""
    mother = await stack.register_person(mother_birth, "female", household_type=household_type)
    father = await stack.register_person(father_birth, "male", household_type=household_type)
    child = await stack.register_person(
        child_birth, "male", household_type=household_type, phone=None
    )
    family = None
    if register_family:
        r = await stack.registry.post(
            "/api/v1/families",
            json={
                "wife_id": mother["id"],
                "husband_id": father["id"],
                "marriage_date": f"{max(mother_birth, father_birth).year + 20}-01-01",
                "children_ids": [child["id"]],
            },
            headers=stack.auth("township_officer", TOWNSHIP),
        )
        assert r.status_code == 201, r.text
        family = r.json()
    r = await stack.registry.post(
        "/api/v1/applications",
        json={
            "type": "only_child_honor",
            "applicant_id": mother["id"],
            "subjects": {"spouse_id": father["id"], "child_id": child["id"]},
            "materials": [
                {"code": c, "ref": f"upload-{c}"}
                for c in ("household_register", "marriage_certificate", "child_birth_certificate")
            ],
        },
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    app = r.json()
    for role, region in (("village_worker", VILLAGE), ("township_officer", TOWNSHIP)):
        r = await stack.registry.post(
            f"/api/v1/applications/{app['id']}/review",
            json={"decision": "approve", "version": app["version"]},
            headers=stack.auth(role, region),
        )
        assert r.status_code == 200, r.text
        app = r.json()
    assert app["status"] == "issued"
    return {**app, "mother": mother, "father": father, "child": child, "family": family}


async def born(
    stack: InProcessStack,
    mother_id: str,
    father_id: str | None = None,
    birth_date: date | None = None,
) -> dict[str, Any]:
    """A birth recorded by an officer through registry's birth endpoint (by default on the
    registry's business day)."""
    rt = stack.rt("registry")
    r = await stack.registry.post(
        "/api/v1/births",
        json={
            "mother_id": mother_id,
            "father_id": father_id,
            "child": {
                "name": "李小宝",
                "sex": "male",
                "birth_date": (birth_date or rt.clock.today()).isoformat(),
                "hospital": "上城区妇幼保健院",
                "birth_certificate_no": f"Q{uuid.uuid4().hex[:9]}",
            },
        },
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def die(stack: InProcessStack, person_id: str, on: date) -> dict[str, Any]:
    r = await stack.registry.post(
        f"/api/v1/persons/{person_id}/death",
        json={"date_of_death": on.isoformat(), "reported_by": "家属"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# -- raw registry events (a producer following the documented schemas) -------------------------


async def send(stack: InProcessStack, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    event = envelope(event_type, data)
    await publish(stack.nats.url, event_type, [json.dumps(event).encode()], [event["id"]])
    return event


def person_data(
    person_id: str, birth: date, sex: str = "female", household_type: str = "rural"
) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "name": "测试居民",
        "sex": sex,
        "birth_date": birth.isoformat(),
        "region_code": VILLAGE,
        "residency": "registered",
        "household_type": household_type,
        "phone": None,
    }


def certificate_data(holders: list[str], child_id: str | None) -> dict[str, Any]:
    return {
        "certificate_id": str(uuid.uuid4()),
        "certificate_no": f"DZ{uuid.uuid4().hex[:10]}",
        "certificate_type": "only_child_honor",
        "application_id": str(uuid.uuid4()),
        "holder_ids": holders,
        "child_id": child_id,
        "region_code": VILLAGE,
        "issued_on": date.today().isoformat(),
        "submitted_by": "agent-1",
    }


# -- benefits -------------------------------------------------------------------------------


async def enrollments(stack: InProcessStack, **params: str) -> list[dict[str, Any]]:
    r = await stack.benefits.get(
        ENROLLMENTS, params=params, headers=stack.auth("county_officer", "330102")
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def wait_for(
    stack: InProcessStack,
    check: Callable[[list[dict[str, Any]]], bool],
    within: float = 20,
    **params: str,
) -> list[dict[str, Any]]:
    """The enrollments matching ``params`` once ``check`` holds for them."""

    async def ready() -> list[dict[str, Any]]:
        items = await enrollments(stack, **params)
        assert check(items), items
        return items

    return await eventually(ready, within=within)


async def confirm(
    stack: InProcessStack, enrollment: dict[str, Any], sub: str = "checker-1", **kw: Any
) -> httpx.Response:
    return await stack.benefits.post(
        f"{ENROLLMENTS}/{enrollment['id']}/confirm",
        json={"version": enrollment["version"]},
        headers=officer(stack, sub, **kw),
    )


async def confirmed(stack: InProcessStack, enrollment: dict[str, Any]) -> dict[str, Any]:
    r = await confirm(stack, enrollment)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def set_columns(stack: InProcessStack, enrollment_id: str, **values: Any) -> None:
    """Stand in for what only a payment run changes (``settled_through``, say)."""
    async with stack.rt("benefits").db.session() as s, s.begin():
        await s.execute(update(Enrollment).where(Enrollment.id == enrollment_id).values(**values))


async def ledger(stack: InProcessStack) -> list[LedgerEntry]:
    from sqlalchemy import select

    async with stack.rt("benefits").db.session() as s:
        return list((await s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all())
