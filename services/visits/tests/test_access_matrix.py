"""Every visits route x every role x inside / outside the record's region, held to the policy
declared in services/visits/api/access.py (the harness: tests/access_matrix.py).

The records come from the real flows: the registry registers a mother and her baby's birth,
visits hears of it through the broker and plans the follow-ups for the village's worker; a
station opens slots and the mother books one. Dates are those of the birth (visits' business
day set on its clock, as in tests/test_visits_flow.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from services.visits.api.access import POLICY
from shared.auth import Role
from shared.clock import SHANGHAI, FixedClock
from tests.access_matrix import Headers, World, check_matrix
from tests.support import (
    OTHER_TOWNSHIP,
    TOWNSHIP,
    VILLAGE,
    InProcessStack,
    eventually,
    make_id_number,
)

BORN = date(2026, 6, 1)
TODAY = BORN + timedelta(days=5)
COUNTY = VILLAGE[:6]
OTHER_COUNTY = "330103"
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"
# The village's family planning worker (村计生专干), assigned the village's tasks.
WORKER = "zhuangan-wangfang"


def tokens(
    stack: InProcessStack, resident: str, village: str, township: str, county: str, worker: str
) -> dict[Role, Headers]:
    return {
        Role.resident: stack.auth("resident", village, person_id=resident),
        Role.village_agent: stack.auth("village_agent", village),
        Role.village_worker: stack.auth("village_worker", village, sub=worker),
        Role.township_officer: stack.auth("township_officer", township),
        Role.county_officer: stack.auth("county_officer", county),
        Role.bureau_system: stack.auth("bureau_system", county, sub="county-bureau"),
        Role.admin: stack.auth("admin", ""),
        Role.auditor: stack.auth("auditor", county),
    }


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def at(day: date, hour: int) -> str:
    return datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=hour).isoformat()


def visit(task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "performed_at": at(TODAY, 10),
        "place": "家中",
        "consent": {"given": True},
        "findings": {"notes": "恢复良好"},
        "task_version": task["version"],
        **extra,
    }


async def test_every_route_role_and_region_is_held_to_the_policy(stack: InProcessStack) -> None:
    stack.rt("registry").clock = FixedClock(BORN + timedelta(days=2))
    stack.rt("visits").clock = FixedClock(TODAY)
    officer = stack.auth("township_officer", TOWNSHIP)
    admin = stack.auth("admin")
    ok(
        await stack.visits.put(
            f"/api/v1/assignments/{VILLAGE}/village",
            json={"assignee_sub": WORKER, "assignee_name": "王芳"},
            headers=officer,
        )
    )

    # A birth in the village: visits plans the mother's and the baby's follow-ups.
    mother = await stack.register_person(date(1996, 3, 1), "female")
    ok(
        await stack.registry.post(
            "/api/v1/births",
            json={
                "mother_id": mother["id"],
                "child": {
                    "name": "李小宝",
                    "sex": "male",
                    "birth_date": BORN.isoformat(),
                    "hospital": "上城区妇幼保健院",
                    "birth_certificate_no": "Q330012399",
                },
            },
            headers=officer,
        ),
        201,
    )
    # The outside resident lives in another township.
    stranger = ok(
        await stack.registry.post(
            "/api/v1/persons",
            json={
                "id_number": make_id_number(date(1990, 2, 2)),
                "name": "外乡居民",
                "region_code": OTHER_VILLAGE,
                "household_type": "rural",
            },
            headers=admin,
        ),
        201,
    )

    async def planned() -> dict[str, dict[str, Any]]:
        page = ok(
            await stack.visits.get(
                "/api/v1/tasks", params={"person_id": mother["id"]}, headers=admin
            )
        )
        steps = {t["step"]: t for t in page["items"]}
        assert {"home_visit_1", "home_visit_2"} <= set(steps)
        return steps

    steps = await eventually(planned)
    task, later = steps["home_visit_1"], steps["home_visit_2"]
    assert task["assignee"] == WORKER and later["assignee"] == WORKER

    inside = tokens(stack, mother["id"], VILLAGE, TOWNSHIP, COUNTY, WORKER)

    async def synced() -> None:
        # The sync log below PostgreSQL's watermark holds the mother once the consumer settled.
        page = ok(await stack.visits.get("/api/v1/sync", headers=inside[Role.village_worker]))
        assert mother["id"] in str(page)

    await eventually(synced)

    station = ok(
        await stack.visits.post(
            "/api/v1/stations",
            json={"name": "清波街道社区卫生服务中心", "region_code": TOWNSHIP},
            headers=stack.auth("county_officer", COUNTY),
        ),
        201,
    )

    def slot_body(_: Role | None = None, days: int = 42) -> dict[str, Any]:
        return {
            "station_id": station["id"],
            "service": "postpartum_42d_check",
            "starts_at": at(BORN + timedelta(days=days), 9),
            "ends_at": at(BORN + timedelta(days=days), 11),
            "capacity": 5,
        }

    slots = [
        ok(await stack.visits.post("/api/v1/slots", json=slot_body(days=d), headers=officer), 201)
        for d in (42, 43, 44)
    ]
    booked = ok(
        await stack.visits.post(
            "/api/v1/appointments",
            json={"slot_id": slots[0]["id"], "person_id": mother["id"]},
            headers=inside[Role.resident],
        ),
        201,
    )

    world = World(
        params={
            "code": "postpartum",
            "service": "postpartum_home_visit",
            "area": VILLAGE,
            "tier": "village",
            "task_id": task["id"],
            "appointment_id": booked["id"],
            "dead_letter_id": "00000000-0000-0000-0000-000000000000",
        },
        inside=inside,
        outside={
            k: v
            for k, v in tokens(
                stack, stranger["id"], OTHER_VILLAGE, OTHER_TOWNSHIP, OTHER_COUNTY, "zhuangan-2"
            ).items()
            if k is not Role.admin
        },
        bodies={
            # The same assignee: the village's open tasks stay where the later checks need them.
            "PUT /api/v1/assignments/{area}/{tier}": {
                "assignee_sub": WORKER,
                "assignee_name": "王芳",
            },
            "POST /api/v1/tasks/{task_id}/visits": visit(task),
            "POST /api/v1/procedures": {
                "id": str(uuid.uuid4()),
                "person_id": mother["id"],
                "procedure": "iud_insertion",
                "performed_on": TODAY.isoformat(),
                "station_id": station["id"],
                "consent_given": True,
            },
            "POST /api/v1/stations": {"name": "清波街道计生服务站", "region_code": TOWNSHIP},
            "POST /api/v1/slots": slot_body,
            "POST /api/v1/appointments": {"slot_id": slots[1]["id"], "person_id": mother["id"]},
            "POST /api/v1/appointments/{appointment_id}/cancel": {},
            "POST /api/v1/appointments/{appointment_id}/reschedule": {"slot_id": slots[2]["id"]},
            "POST /api/v1/appointments/{appointment_id}/attended": {},
            "POST /api/v1/appointments/{appointment_id}/no-show": {},
            # A day offline: one record on the task as the phone had it, and one made after a
            # pull the server never sent (its version is ahead): a conflict for the worker, and
            # for a caller outside, nothing about the task.
            "POST /api/v1/sync": {
                "records": [
                    {**visit(later), "task_id": later["id"]},
                    {**visit(later, task_version=later["version"] + 1), "task_id": later["id"]},
                ]
            },
        },
        markers={
            "GET /api/v1/assignments": [WORKER],
            "GET /api/v1/tasks": [task["id"]],
            "GET /api/v1/appointments": [booked["id"]],
            "GET /api/v1/sync": [mother["id"]],
            "POST /api/v1/sync": [mother["id"]],
        },
        strict_inside=True,
        not_found_ok={
            "POST /api/v1/admin/dead-letters/{dead_letter_id}/replay": "no event has failed",
        },
    )
    wrong = await check_matrix(stack.visits, POLICY, world)
    assert wrong == [], "\n".join(wrong)
