"""Visits' done-when, end to end through the real broker: a birth registered in the registry
becomes tasks on a village worker's phone; the phone works a day offline and pushes its
records, with the conflict reported; the mother books, moves and cancels her free 42-day
check; a township officer sees what is due, overdue and missed in the township."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from services.visits.domain.plans import Window, state_on
from shared.clock import SHANGHAI, FixedClock
from tests.support import TOWNSHIP, VILLAGE, InProcessStack, eventually

BORN = date(2026, 6, 1)
DISTRICT = VILLAGE[:6]


async def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def _record(task: dict[str, Any], day: date, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "task_id": task["id"],
        "task_version": task["version"],
        "performed_at": datetime.combine(day, datetime.min.time(), SHANGHAI)
        .replace(hour=10)
        .isoformat(),
        "place": "家中",
        "consent": {"given": True},
        "findings": {"notes": "一切正常"},
        **extra,
    }


async def test_a_workers_day_offline_a_mothers_check_and_the_townships_list(
    stack: InProcessStack,
) -> None:
    registry_clock, visits_clock = FixedClock(BORN + timedelta(days=2)), FixedClock(BORN)
    stack.rt("registry").clock = registry_clock
    stack.rt("visits").clock = visits_clock
    officer = stack.auth("township_officer", TOWNSHIP, sub="officer-1")
    for area, tier, sub in ((VILLAGE, "village", "worker-1"), (TOWNSHIP, "township", "station-1")):
        await _ok(
            await stack.visits.put(
                f"/api/v1/assignments/{area}/{tier}",
                json={"assignee_sub": sub, "assignee_name": "王芳"},
                headers=officer,
            )
        )

    # The registry records the birth; visits hears of it and plans the follow-ups.
    mother = await stack.register_person(date(1996, 3, 1), "female")
    birth = await _ok(
        await stack.registry.post(
            "/api/v1/births",
            json={
                "mother_id": mother["id"],
                "child": {
                    "name": "李小宝",
                    "sex": "male",
                    "birth_date": BORN.isoformat(),
                    "hospital": "上城区妇幼保健院",
                    "birth_certificate_no": "Q330012345",
                },
            },
            headers=officer,
        ),
        201,
    )
    child = birth["child"]["id"]

    # Day 5: the worker's phone pulls its working list before going out of coverage.
    worker = stack.auth("village_worker", VILLAGE, sub="worker-1")
    visits_clock.set(BORN + timedelta(days=5))

    async def pulled() -> dict[str, Any]:
        page = await _ok(await stack.visits.get("/api/v1/sync", headers=worker))
        kinds = {(i["kind"], i["op"]) for i in page["items"]}
        assert ("task", "upsert") in kinds and ("person", "upsert") in kinds
        steps = {(i["task"]["person_id"], i["task"]["step"]) for i in page["items"] if i["task"]}
        assert steps == {
            (mother["id"], "home_visit_1"),
            (mother["id"], "home_visit_2"),
            (child, "home_visit"),
        }
        return page

    page = await eventually(pulled, within=15)
    tasks = {
        (i["task"]["person_id"], i["task"]["step"]): i["task"] for i in page["items"] if i["task"]
    }
    persons = {i["person"]["person_id"] for i in page["items"] if i["person"]}
    assert {mother["id"], child} <= persons
    assert tasks[(mother["id"], "home_visit_1")]["state"] == "due"
    # The working list the phone shows offline, most urgent first, is the same list online.
    online = await _ok(
        await stack.visits.get("/api/v1/tasks", params={"assignee": "me"}, headers=worker)
    )
    assert {t["id"] for t in online["items"]} == {t["id"] for t in tasks.values()}

    # While the phone is offline the township officer visits the baby himself.
    newborn = tasks[(child, "home_visit")]
    await _ok(
        await stack.visits.post(
            f"/api/v1/tasks/{newborn['id']}/visits",
            json={
                k: v
                for k, v in _record(newborn, BORN + timedelta(days=5)).items()
                if k != "task_id"
            },
            headers=officer,
        ),
        201,
    )

    # Evening: back in coverage, the phone pushes the day; the conflict is reported, not lost.
    day = BORN + timedelta(days=5)
    batch = [_record(tasks[(mother["id"], "home_visit_1")], day), _record(newborn, day)]
    out = await _ok(
        await stack.visits.post("/api/v1/sync", json={"records": batch}, headers=worker)
    )
    assert [(r["status"], r["code"]) for r in out["results"]] == [
        ("accepted", None),
        ("conflict", "task_changed"),
    ]
    assert out["results"][1]["task"]["closed"] == "done"
    again = await _ok(
        await stack.visits.post("/api/v1/sync", json={"records": batch}, headers=worker)
    )
    assert [r["status"] for r in again["results"]] == ["duplicate", "conflict"]
    follow = await _ok(
        await stack.visits.get("/api/v1/sync", params={"cursor": page["cursor"]}, headers=worker)
    )
    closed = {i["id"]: i["task"]["closed"] for i in follow["items"] if i["kind"] == "task"}
    assert closed == {tasks[(mother["id"], "home_visit_1")]["id"]: "done", newborn["id"]: "done"}

    # The mother books her free 42-day check, moves it, and cancels it.
    station = await _ok(
        await stack.visits.post(
            "/api/v1/stations",
            json={"name": "清波街道社区卫生服务中心", "region_code": TOWNSHIP},
            headers=stack.auth("county_officer", DISTRICT),
        ),
        201,
    )
    slots = []
    for offset in (42, 43):
        starts = datetime.combine(BORN + timedelta(days=offset), datetime.min.time(), SHANGHAI)
        slots.append(
            await _ok(
                await stack.visits.post(
                    "/api/v1/slots",
                    json={
                        "station_id": station["id"],
                        "service": "postpartum_42d_check",
                        "starts_at": starts.replace(hour=9).isoformat(),
                        "ends_at": starts.replace(hour=11).isoformat(),
                        "capacity": 5,
                    },
                    headers=officer,
                ),
                201,
            )
        )
    resident = stack.auth("resident", VILLAGE, person_id=mother["id"])
    free = await _ok(
        await stack.visits.get(
            "/api/v1/slots",
            params={"service": "postpartum_42d_check", "available": "true"},
            headers=resident,
        )
    )
    assert [s["id"] for s in free["items"]] == [s["id"] for s in slots]
    booked = await _ok(
        await stack.visits.post(
            "/api/v1/appointments",
            json={"slot_id": slots[0]["id"], "person_id": mother["id"]},
            headers=resident,
        ),
        201,
    )
    moved = await _ok(
        await stack.visits.post(
            f"/api/v1/appointments/{booked['id']}/reschedule",
            json={"slot_id": slots[1]["id"]},
            headers=resident,
        )
    )
    assert moved["slot_id"] == slots[1]["id"]
    cancelled = await _ok(
        await stack.visits.post(f"/api/v1/appointments/{booked['id']}/cancel", headers=resident)
    )
    assert cancelled["status"] == "cancelled"
    seats = await _ok(
        await stack.visits.get(
            "/api/v1/slots", params={"station_id": station["id"]}, headers=resident
        )
    )
    assert [s["booked"] for s in seats["items"]] == [0, 0]

    # Day 31: the township officer lists what needs chasing in the township.
    today = BORN + timedelta(days=31)
    visits_clock.set(today)
    listed = await _ok(
        await stack.visits.get(
            "/api/v1/tasks", params={"state": "due,overdue,missed"}, headers=officer
        )
    )
    got = {(t["person_id"], t["step"]): t["state"] for t in listed["items"]}
    assert got == {
        (mother["id"], "home_visit_2"): "missed",  # days 14-27, never visited
        (child, "month_check"): "overdue",  # days 28-41, overdue from day 31
    }
    for t in listed["items"]:  # the list's states are the plan's rule, applied to today
        window = Window(
            date.fromisoformat(t["due_on"]),
            date.fromisoformat(t["overdue_on"]),
            date.fromisoformat(t["expires_on"]),
        )
        assert t["state"] == state_on(window, today).value
    # Outside the township the officer sees nothing of it.
    elsewhere = stack.auth("township_officer", TOWNSHIP[:6] + "999", sub="officer-2")
    other = await _ok(
        await stack.visits.get(
            "/api/v1/tasks", params={"state": "due,overdue,missed"}, headers=elsewhere
        )
    )
    assert other["items"] == []
