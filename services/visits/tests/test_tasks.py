"""Follow-up tasks: generation from registry events put on a real broker, assignment,
derived states in the working list, and the due / overdue announcements, on SQLite and
PostgreSQL.

Dates are in 2030 so the announcement worker, which runs at start-up before a test sets the
clock, never touches them; "today" is set on the visits runtime's clock (``FixedClock``: time
travel, no sleeps).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from services.visits.events import plans
from services.visits.models import PersonFacts, Task
from shared.clock import FixedClock
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, eventually, published
from tests.test_event_delivery import envelope, handled, publish

BORN = date(2030, 1, 1)
DISTRICT = "330102"
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"


def api(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.visits


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


async def add_person(stack: InProcessStack, region: str = VILLAGE, sex: str = "female") -> str:
    """A person as visits knows them (what person.registered would have written)."""
    pid = str(uuid.uuid4())
    async with stack.rt("visits").db.session() as s:
        s.add(
            PersonFacts(
                person_id=pid,
                name="测试居民",
                sex=sex,
                birth_date=date(1995, 5, 1),
                region_code=region,
            )
        )
        await s.commit()
    return pid


async def emit(stack: InProcessStack, event: dict[str, Any], subject: str | None = None) -> None:
    """Put a registry event on the broker and wait until visits has handled it."""
    if subject:
        event["subject"] = subject
    before = handled(stack, "visits", "applied")
    await publish(stack.nats.url, event["type"], [json.dumps(event).encode()], [event["id"]])

    async def applied() -> None:
        assert handled(stack, "visits", "applied") > before

    await eventually(applied, within=10)


def child_born(mother: str, child: str, born: date = BORN) -> dict[str, Any]:
    return envelope(
        "lingju.registry.child.born",
        {
            "child_id": child,
            "mother_id": mother,
            "father_id": None,
            "birth_date": born.isoformat(),
            "sex": "male",
            "region_code": VILLAGE,
            "hospital": "浙江省妇幼保健院",
            "birth_certificate_no": "O330000001",
            "family_id": None,
            "source": "hospital",
        },
    )


def family_registered(wife: str, husband: str, married: date = BORN) -> dict[str, Any]:
    return envelope(
        "lingju.registry.family.registered",
        {
            "family_id": str(uuid.uuid4()),
            "wife_id": wife,
            "husband_id": husband,
            "marriage_date": married.isoformat(),
            "region_code": VILLAGE,
            "children_ids": [],
        },
    )


def person_died(person: str, on: date = BORN) -> dict[str, Any]:
    return envelope(
        "lingju.registry.person.died",
        {
            "person_id": person,
            "date_of_death": on.isoformat(),
            "region_code": VILLAGE,
            "only_child_of": [],
            "source": "officer",
        },
    )


async def tasks_of(stack: InProcessStack, person_id: str) -> list[Task]:
    async with stack.rt("visits").db.session() as s:
        q = select(Task).where(Task.person_id == person_id).order_by(Task.due_on, Task.step)  # type: ignore[arg-type]
        return list((await s.scalars(q)).all())


async def birth(stack: InProcessStack) -> tuple[str, str]:
    mother, child = await add_person(stack), await add_person(stack, sex="male")
    await emit(stack, child_born(mother, child), subject=child)
    return mother, child


def today_is(stack: InProcessStack, day: date) -> None:
    """Visits' business day (lists, sweeps, records) is ``day`` from now on."""
    stack.rt("visits").clock = FixedClock(day)


def worker(stack: InProcessStack, sub: str = "worker-1", region: str = VILLAGE) -> dict[str, str]:
    return stack.auth("village_worker", region, sub=sub)


async def assign(
    stack: InProcessStack, area: str, tier: str, sub: str, **extra: Any
) -> httpx.Response:
    return await api(stack).put(
        f"/api/v1/assignments/{area}/{tier}",
        json={"assignee_sub": sub, "assignee_name": "王芳", **extra},
        headers=stack.auth("township_officer", TOWNSHIP, sub="officer-1"),
    )


# -- generation ---------------------------------------------------------------------------------


async def test_child_born_generates_postpartum_and_newborn_tasks_once(
    stack: InProcessStack,
) -> None:
    mother, child = await add_person(stack), await add_person(stack, sex="male")
    event = child_born(mother, child)
    await emit(stack, event, subject=child)

    expected = {
        person: [(step.code, step.tier, step.window(BORN)) for step in plans()[plan].steps]
        for person, plan in ((mother, "postpartum"), (child, "newborn"))
    }
    for person, steps in expected.items():
        rows = await tasks_of(stack, person)
        got = [
            (t.step, t.tier, (t.due_on, t.overdue_on, t.expires_on), t.anchor_on, t.source_ref)
            for t in rows
        ]
        assert got == [
            (code, tier, (w.due_on, w.overdue_on, w.expires_on), BORN, child)
            for code, tier, w in steps
        ]
    # From the plan file: the first postpartum visit is due from day 3, overdue from day 10,
    # missed from day 14; the 42-day check is the township's.
    first = (await tasks_of(stack, mother))[0]
    assert (first.due_on, first.overdue_on, first.expires_on) == (
        BORN + timedelta(days=3),
        BORN + timedelta(days=10),
        BORN + timedelta(days=14),
    )
    assert all(t.assignee is None and t.closed is None for t in await tasks_of(stack, mother))

    # The same birth published again under a new event id (the inbox does not know it).
    again = {**event, "id": str(uuid.uuid4())}
    await emit(stack, again, subject=child)
    assert await stack.count_rows("visits", "tasks") == 5


async def test_family_registered_generates_newly_married_tasks_assigned_by_area(
    stack: InProcessStack,
) -> None:
    r = await assign(stack, VILLAGE, "village", "worker-1")
    assert r.status_code == 200, r.text
    wife, husband = await add_person(stack), await add_person(stack, sex="male")
    await emit(stack, family_registered(wife, husband))
    rows = await tasks_of(stack, wife)
    assert [t.step for t in rows] == ["counselling", "prepregnancy_check_offer"]
    assert [t.plan for t in rows] == ["newly_married"] * 2
    assert all(t.assignee == "worker-1" and t.region_code == VILLAGE for t in rows)
    assert rows[0].overdue_on == BORN + timedelta(days=30)
    assert await tasks_of(stack, husband) == []


async def test_person_died_cancels_open_tasks_only(stack: InProcessStack) -> None:
    mother, child = await birth(stack)
    rows = await tasks_of(stack, mother)
    async with stack.rt("visits").db.session() as s:
        await s.execute(update(Task).where(Task.id == rows[0].id).values(closed="done"))  # type: ignore[arg-type]
        await s.commit()
    await emit(stack, person_died(mother, BORN + timedelta(days=5)))
    after = {t.id: t for t in await tasks_of(stack, mother)}
    assert after[rows[0].id].closed == "done"
    assert [(t.closed, t.closed_reason) for t in after.values() if t.id != rows[0].id] == [
        ("cancelled", "death")
    ] * 2
    assert all(t.closed is None for t in await tasks_of(stack, child))
    # A plan started after the death (events are not ordered) generates nothing for her.
    await emit(stack, family_registered(mother, await add_person(stack, sex="male")))
    assert {t.plan for t in await tasks_of(stack, mother)} == {"postpartum"}


async def test_generation_waits_for_the_persons_facts(stack: InProcessStack) -> None:
    mother, child = str(uuid.uuid4()), str(uuid.uuid4())
    event = child_born(mother, child)
    await publish(stack.nats.url, event["type"], [json.dumps(event).encode()], [event["id"]])
    async with stack.rt("visits").db.session() as s:
        for pid in (mother, child):
            s.add(
                PersonFacts(
                    person_id=pid,
                    name="测试居民",
                    sex="female",
                    birth_date=date(1995, 5, 1),
                    region_code=VILLAGE,
                )
            )
        await s.commit()

    async def generated() -> None:
        assert len(await tasks_of(stack, mother)) == 3
        assert len(await tasks_of(stack, child)) == 2

    await eventually(generated, within=10)


# -- assignments --------------------------------------------------------------------------------


async def test_assignment_moves_open_tasks_of_its_tier_and_area(stack: InProcessStack) -> None:
    mother, _ = await birth(stack)
    rows = await tasks_of(stack, mother)
    done = rows[0].id
    async with stack.rt("visits").db.session() as s:
        await s.execute(update(Task).where(Task.id == done).values(closed="done"))  # type: ignore[arg-type]
        await s.commit()

    r = await assign(stack, VILLAGE, "village", "worker-2")
    assert r.status_code == 200, r.text
    assert r.json()["tasks_moved"] == 2  # the newborn's home visit and the second postpartum one
    assert r.json()["version"] == 1
    by_id = {t.id: t for t in await tasks_of(stack, mother)}
    assert by_id[done].assignee is None  # closed: stays as it was
    village = [t for t in by_id.values() if t.tier == "village" and t.id != done]
    assert [t.assignee for t in village] == ["worker-2"]
    assert [t.assignee for t in by_id.values() if t.tier == "township"] == [None]

    # The worker's area changes hands: the open tasks follow, guarded by the version.
    r = await assign(stack, VILLAGE, "village", "worker-3", version=1)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["tasks_moved"]) == (2, 2)
    problem(await assign(stack, VILLAGE, "village", "worker-4", version=1), 409, "version_conflict")
    changed = await published(stack, "visits", "lingju.visits.assignment.changed")
    assert [(e["data"]["assignee_sub"], e["data"]["previous_assignee_sub"]) for e in changed] == [
        ("worker-2", None),
        ("worker-3", "worker-2"),
    ]
    r = await api(stack).get("/api/v1/assignments", headers=stack.auth("county_officer", DISTRICT))
    assert r.status_code == 200, r.text
    assert [(a["area_code"], a["tier"], a["assignee_sub"]) for a in r.json()] == [
        (VILLAGE, "village", "worker-3")
    ]


async def test_assignment_refusals(stack: InProcessStack) -> None:
    body = {"assignee_sub": "w", "assignee_name": "王芳"}
    url = f"/api/v1/assignments/{VILLAGE}/village"
    r = await api(stack).put(url, json=body, headers=worker(stack))
    problem(r, 403, "forbidden")
    r = await api(stack).put(
        f"/api/v1/assignments/{OTHER_VILLAGE}/village",
        json=body,
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    problem(r, 403, "out_of_region")
    # A township officer cannot assign the district's guidance station.
    r = await api(stack).put(
        f"/api/v1/assignments/{DISTRICT}/district",
        json=body,
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    problem(r, 403, "out_of_region")
    officer = stack.auth("county_officer", DISTRICT)
    problem(
        await api(stack).put(f"/api/v1/assignments/{TOWNSHIP}/village", json=body, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).put(f"/api/v1/assignments/{TOWNSHIP}/county", json=body, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).put(url, json={**body, "extra": 1}, headers=officer),
        422,
        "validation_failed",
    )
    problem(await api(stack).put(url, json=body), 401, "unauthenticated")


# -- the working list ---------------------------------------------------------------------------


async def test_worker_list_states_order_and_paging(
    stack: InProcessStack,
) -> None:
    await assign(stack, VILLAGE, "village", "worker-1")
    await assign(stack, TOWNSHIP, "township", "station-1")
    mother, child = await birth(stack)
    wife = await add_person(stack)
    await emit(stack, family_registered(wife, await add_person(stack, sex="male"), BORN))
    me = worker(stack)

    async def listing(headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        r = await api(stack).get("/api/v1/tasks", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    # Day 4: the home visits are due; the newly-married tasks are due from day 0.
    today_is(stack, BORN + timedelta(days=4))
    items = await listing(me, assignee="me", state="due,overdue")
    assert {(i["person_id"], i["step"], i["state"]) for i in items} == {
        (mother, "home_visit_1", "due"),
        (child, "home_visit", "due"),
        (wife, "counselling", "due"),
        (wife, "prepregnancy_check_offer", "due"),
    }
    assert [i["due_on"] for i in items] == sorted(i["due_on"] for i in items)

    # Day 12: the home visits are overdue and come first; the counselling is still due.
    today_is(stack, BORN + timedelta(days=12))
    items = await listing(me, assignee="me", state="due,overdue")
    assert {i["step"] for i in items[:2]} == {"home_visit", "home_visit_1"}
    assert [i["state"] for i in items] == ["overdue", "overdue", "due", "due"]
    assert items[0]["person_name"] == "测试居民"

    # Paging one at a time gives the same list, no gaps, no repeats.
    everything = await listing(me, assignee="me")
    paged: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"assignee": "me", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        r = await api(stack).get("/api/v1/tasks", params=params, headers=me)
        assert r.status_code == 200, r.text
        paged += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert paged == [i["id"] for i in everything]
    assert len(paged) == 5  # 2 postpartum, 1 newborn, 2 newly-married village tasks

    # The township station's list and an officer's area list with scheduled ones.
    station = stack.auth("township_officer", TOWNSHIP, sub="station-1")
    assert [i["step"] for i in await listing(station, assignee="me")] == [
        "month_check",
        "check_42d",
    ]
    officer = stack.auth("county_officer", DISTRICT)
    scheduled = await listing(officer, state="scheduled")
    assert {i["step"] for i in scheduled} == {"home_visit_2", "month_check", "check_42d"}

    # Day 100: what was never done is missed; a cancelled one is cancelled.
    today_is(stack, BORN + timedelta(days=100))
    await emit(stack, person_died(child, BORN + timedelta(days=50)))
    missed = await listing(officer, state="missed")
    assert {i["step"] for i in missed} == {
        "home_visit_1",
        "home_visit_2",
        "check_42d",
        "counselling",
    }
    cancelled = await listing(officer, state="cancelled")
    assert {(i["step"], i["closed"]) for i in cancelled} == {
        ("home_visit", "cancelled"),
        ("month_check", "cancelled"),
    }
    assert await listing(officer, region=OTHER_TOWNSHIP) == []

    # One task, and a resident reads only their own.
    task_id = missed[0]["id"]
    r = await api(stack).get(f"/api/v1/tasks/{task_id}", headers=officer)
    assert r.status_code == 200 and r.headers["ETag"] == f'"{r.json()["version"]}"'
    owner = r.json()["person_id"]
    mine = stack.auth("resident", VILLAGE, person_id=owner)
    assert {i["person_id"] for i in await listing(mine)} == {owner}
    assert (await api(stack).get(f"/api/v1/tasks/{task_id}", headers=mine)).status_code == 200
    other = stack.auth("resident", VILLAGE, person_id=str(uuid.uuid4()))
    problem(await api(stack).get(f"/api/v1/tasks/{task_id}", headers=other), 403, "forbidden")
    problem(
        await api(stack).get("/api/v1/tasks", params={"person_id": owner}, headers=other),
        403,
        "forbidden",
    )
    far = stack.auth("township_officer", OTHER_TOWNSHIP)
    problem(await api(stack).get(f"/api/v1/tasks/{task_id}", headers=far), 403, "out_of_region")
    problem(await api(stack).get("/api/v1/tasks/nope", headers=officer), 404, "not_found")


async def test_task_list_refusals_and_bad_input(stack: InProcessStack) -> None:
    officer = stack.auth("township_officer", TOWNSHIP)
    tasks = "/api/v1/tasks"
    problem(
        await api(stack).get(tasks, params={"region": OTHER_TOWNSHIP}, headers=officer),
        403,
        "out_of_region",
    )
    problem(
        await api(stack).get(tasks, headers=stack.auth("village_agent", VILLAGE)), 403, "forbidden"
    )
    problem(await api(stack).get(tasks), 401, "unauthenticated")
    body = problem(
        await api(stack).get(tasks, params={"state": "due,late"}, headers=officer),
        422,
        "validation_failed",
    )
    assert body["errors"][0]["field"] == "state"
    problem(
        await api(stack).get(tasks, params={"cursor": "garbage"}, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).get(tasks, params={"region": "33x"}, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).get(tasks, params={"limit": 0}, headers=officer), 422, "validation_failed"
    )


# -- announcements ------------------------------------------------------------------------------


async def test_due_and_overdue_announced_once_each(stack: InProcessStack) -> None:
    await assign(stack, VILLAGE, "village", "worker-1")
    mother, child = await birth(stack)
    admin = stack.auth("admin")
    sweep = "/api/v1/admin/sweeps/tasks"

    async def run(day: int) -> dict[str, Any]:
        r = await api(stack).post(
            sweep, params={"as_of": (BORN + timedelta(days=day)).isoformat()}, headers=admin
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    first = await run(4)
    home_visits = {t.id for t in await tasks_of(stack, mother) if t.step == "home_visit_1"} | {
        t.id for t in await tasks_of(stack, child) if t.step == "home_visit"
    }
    assert set(first["due"]) == home_visits and first["overdue"] == []
    assert (await run(5)) == {"as_of": str(BORN + timedelta(days=5)), "due": [], "overdue": []}
    late = await run(11)
    assert late["due"] == [] and set(late["overdue"]) == home_visits
    assert (await run(12))["overdue"] == []

    due = await published(stack, "visits", "lingju.visits.task.due")
    overdue = await published(stack, "visits", "lingju.visits.task.overdue")
    assert sorted(e["data"]["task_id"] for e in due) == sorted(home_visits)
    assert sorted(e["data"]["task_id"] for e in overdue) == sorted(home_visits)
    event = next(e for e in due if e["data"]["person_id"] == mother)
    assert event["data"]["assignee"] == "worker-1"
    assert event["data"]["region_code"] == VILLAGE
    assert event["data"]["due_on"] == str(BORN + timedelta(days=3))
    assert event["data"]["plan"] == "postpartum" and event["subject"] == event["data"]["task_id"]

    problem(await api(stack).post(sweep, headers=worker(stack)), 403, "forbidden")
    problem(
        await api(stack).post(sweep, params={"as_of": "2030-13-01"}, headers=admin),
        422,
        "validation_failed",
    )
