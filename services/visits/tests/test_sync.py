"""Offline sync for workers' phones, on SQLite and PostgreSQL: a phone pulls its tasks and its
village's persons in pages, with no change missed or repeated while others write; it pushes a
day of records made offline, and each item is accepted, a duplicate, a conflict (the task
changed meanwhile: nothing written) or rejected, whatever happens to the others.

Dates are in 2030 (see test_tasks.py); the business day is set on the visits runtime's clock.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.visits.models import PersonFacts, Task, VisitRecord
from services.visits.tests.test_tasks import (
    BORN,
    api,
    assign,
    birth,
    emit,
    person_died,
    problem,
    tasks_of,
    today_is,
    worker,
)
from services.visits.tests.test_visits import count, visit
from tests.support import TOWNSHIP, VILLAGE, InProcessStack, published

VISIT_DAY = BORN + timedelta(days=4)


@pytest.fixture(autouse=True)
def _visit_day(stack: InProcessStack) -> None:
    today_is(stack, VISIT_DAY)


class Phone:
    """A worker's phone: what it has stored, and every item it was ever sent."""

    def __init__(self, stack: InProcessStack, sub: str = "worker-1", region: str = VILLAGE):
        self.stack = stack
        self.headers = worker(stack, sub, region)
        self.cursor: str | None = None
        self.tasks: dict[str, dict[str, Any]] = {}
        self.persons: dict[str, dict[str, Any]] = {}
        self.received: list[str] = []  # each item as JSON, to find one sent twice
        self.pages = 0

    async def pull_page(self, limit: int = 200) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if self.cursor is not None:
            params["cursor"] = self.cursor
        r = await api(self.stack).get("/api/v1/sync", params=params, headers=self.headers)
        assert r.status_code == 200, r.text
        page: dict[str, Any] = r.json()
        self.pages += 1
        for item in page["items"]:
            self.received.append(json.dumps(item, sort_keys=True))
            store = self.tasks if item["kind"] == "task" else self.persons
            if item["op"] == "remove":
                store.pop(item["id"], None)
            else:
                store[item["id"]] = item[item["kind"]]
        self.cursor = page["cursor"]
        return page

    async def pull(self, limit: int = 200) -> int:
        """Pull until nothing more is waiting; the number of items received."""
        n = 0
        while True:
            page = await self.pull_page(limit)
            n += len(page["items"])
            if not page["has_more"]:
                return n

    async def push(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        r = await api(self.stack).post(
            "/api/v1/sync", json={"records": records}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


async def server_view(stack: InProcessStack, sub: str = "worker-1") -> tuple[dict, dict]:
    """What the phone of ``sub`` (region VILLAGE) should hold: task id -> (version, closed),
    person id -> region."""
    async with stack.rt("visits").db.session() as s:
        tasks = {
            t.id: (t.version, t.closed)
            for t in (await s.scalars(select(Task).where(Task.assignee == sub))).all()
        }
        persons = {
            p.person_id: p.region_code
            for p in (
                await s.scalars(
                    select(PersonFacts).where(PersonFacts.region_code.startswith(VILLAGE))  # type: ignore[attr-defined]
                )
            ).all()
        }
    return tasks, persons


def phone_view(phone: Phone) -> tuple[dict, dict]:
    return (
        {i: (t["version"], t["closed"]) for i, t in phone.tasks.items()},
        {i: p["region_code"] for i, p in phone.persons.items()},
    )


def record(task: dict[str, Any] | Task, **extra: Any) -> dict[str, Any]:
    """An offline record on a task as the phone holds it (a dict from a pull, or a row)."""
    if isinstance(task, Task):
        tid, version = task.id, task.version
    else:
        tid, version = task["id"], task["version"]
    body = visit(Task(id=tid, version=version), **extra)  # type: ignore[call-arg]
    body["task_id"] = tid
    return body


async def setup_births(stack: InProcessStack, n: int) -> list[str]:
    assert (await assign(stack, VILLAGE, "village", "worker-1")).status_code == 200
    assert (await assign(stack, TOWNSHIP, "township", "station-1")).status_code == 200
    return [(await birth(stack))[0] for _ in range(n)]


# -- pull ---------------------------------------------------------------------------------------


async def test_first_pull_pages_through_the_workers_tasks_and_the_villages_persons(
    stack: InProcessStack,
) -> None:
    mothers = await setup_births(stack, 3)
    phone = Phone(stack)
    got = await phone.pull(limit=2)

    want_tasks, want_persons = await server_view(stack)
    assert phone_view(phone) == (want_tasks, want_persons)
    # Three births: each mother's two village home visits and each child's village visits are
    # the worker's; the 42-day check is the township station's and never reaches this phone.
    assert len(want_tasks) > 0 and all(
        t["assignee"] == "worker-1" and t["tier"] == "village" for t in phone.tasks.values()
    )
    assert len(phone.persons) == 6  # three mothers, three children
    assert got == len(want_tasks) + 6  # each exactly once across the pages
    assert phone.pages >= got // 2
    assert {t["person_id"] for t in phone.tasks.values()} >= set(mothers)
    first = next(iter(phone.tasks.values()))
    assert first["person_name"] == "测试居民" and first["state"] in ("scheduled", "due", "overdue")

    # Nothing changed: the next pull is empty and keeps the cursor.
    cursor = phone.cursor
    page = await phone.pull_page()
    assert page == {"items": [], "cursor": cursor, "has_more": False}


async def test_changes_arrive_once_reassignment_and_moves_become_removals(
    stack: InProcessStack,
) -> None:
    mother = (await setup_births(stack, 1))[0]
    phone = Phone(stack)
    await phone.pull()
    task = next(t for t in await tasks_of(stack, mother) if t.step == "home_visit_1")

    # A visit recorded online (on the worker's other device) closes the task: one item.
    r = await api(stack).post(
        f"/api/v1/tasks/{task.id}/visits", json=visit(task), headers=worker(stack)
    )
    assert r.status_code == 201, r.text
    page = await phone.pull_page()
    assert [(i["kind"], i["id"], i["op"]) for i in page["items"]] == [("task", task.id, "upsert")]
    assert page["items"][0]["task"]["closed"] == "done"
    assert page["items"][0]["task"]["version"] == task.version + 1

    # The village goes to worker-2: every open task leaves worker-1's phone, the done one stays
    # (it is still worker-1's record), and worker-2's phone receives the open ones.
    open_ids = {i for i, t in phone.tasks.items() if t["closed"] is None}
    assert (await assign(stack, VILLAGE, "village", "worker-2")).status_code == 200
    page = await phone.pull_page()
    removed = {i["id"] for i in page["items"] if i["op"] == "remove"}
    assert removed == open_ids and all(i["kind"] == "task" for i in page["items"])
    assert set(phone.tasks) == {task.id}
    other = Phone(stack, "worker-2")
    await other.pull()
    assert set(other.tasks) == open_ids

    # A person who moved to another village leaves the phone; one who died is updated.
    child = next(p for p in phone.persons if p != mother)
    async with stack.rt("visits").db.session() as s:
        facts = await s.get(PersonFacts, child)
        assert facts is not None
        facts.region_code = TOWNSHIP + "002"
        await s.commit()
    await emit(stack, person_died(mother, VISIT_DAY), subject=mother)
    await phone.pull()
    assert set(phone.persons) == {mother}
    assert phone.persons[mother]["died_on"] == VISIT_DAY.isoformat()
    assert len(phone.received) == len(set(phone.received))  # nothing sent twice


async def test_paging_while_others_write_misses_nothing_and_repeats_nothing(
    stack: InProcessStack,
) -> None:
    await setup_births(stack, 2)
    phone = Phone(stack)
    done = asyncio.Event()

    async def write() -> None:
        for k in range(8):
            mother, _ = await birth(stack)
            if k % 3 == 1:
                # A visit recorded online by the worker's other device.
                t = next(t for t in await tasks_of(stack, mother) if t.step == "home_visit_1")
                r = await api(stack).post(
                    f"/api/v1/tasks/{t.id}/visits", json=visit(t), headers=worker(stack)
                )
                assert r.status_code == 201, r.text
            if k == 4:
                # The village goes to worker-2 and back: removals, then upserts again.
                assert (await assign(stack, VILLAGE, "village", "worker-2")).status_code == 200
                assert (await assign(stack, VILLAGE, "village", "worker-1")).status_code == 200
            await asyncio.sleep(0)
        done.set()

    async def read() -> None:
        while not done.is_set():
            await phone.pull_page(limit=3)
            await asyncio.sleep(0)

    await asyncio.gather(write(), read())
    want = await server_view(stack)
    for _ in range(50):  # PostgreSQL: until the last writers' transactions are below the mark
        await phone.pull(limit=3)
        if phone_view(phone) == want:
            break
        await asyncio.sleep(0.1)
    assert phone_view(phone) == want
    assert len(want[0]) > 20 and len(want[1]) == 20
    assert len(phone.received) == len(set(phone.received)), "an item was sent twice"
    assert await phone.pull() == 0


def a_task(person: str, step: str) -> Task:
    return Task(
        id=str(uuid.uuid4()),
        plan="postpartum",
        step=step,
        person_id=person,
        region_code=VILLAGE,
        tier="village",
        assignee="worker-1",
        anchor_on=BORN,
        due_on=BORN,
        overdue_on=BORN + timedelta(days=7),
        expires_on=BORN + timedelta(days=14),
        source_ref="test",
    )


async def test_a_change_committed_after_a_later_one_is_not_skipped(
    stack: InProcessStack,
) -> None:
    """Writer A starts first and commits last; writer B starts later and is done first. A phone
    pulling in between must not move its cursor past A's change. On PostgreSQL B commits at
    once and the pull stops below A's transaction; on SQLite B waits for A's write lock, and so
    does the pull's audit entry (shared/audit.py): its answer, read while A was open, goes out
    once A commits."""
    mother = (await setup_births(stack, 1))[0]
    phone = Phone(stack)
    await phone.pull()
    db = stack.rt("visits").db
    first, later = a_task(mother, "extra_a"), a_task(mother, "extra_b")

    async def write_later() -> None:
        async with db.session() as s:
            s.add(later)
            await s.commit()

    async with db.session() as a:
        a.add(first)
        await a.flush()  # A holds its transaction (and its id) from here
        b = asyncio.create_task(write_later())
        await asyncio.sleep(0.5)  # PostgreSQL: B has committed; SQLite: B waits for the lock
        pulling = asyncio.create_task(phone.pull_page())
        await asyncio.sleep(0.5)  # the pull has read; on SQLite its audit entry waits for A
        await a.commit()
    page = await pulling
    assert page["items"] == [], "a change was handed out while an older writer was running"
    await b
    for _ in range(50):
        await phone.pull()
        if {first.id, later.id} <= set(phone.tasks):
            break
        await asyncio.sleep(0.1)
    assert {first.id, later.id} <= set(phone.tasks)


# -- push ---------------------------------------------------------------------------------------


async def test_a_day_offline_pushed_with_conflicts_reported_per_item(
    stack: InProcessStack,
) -> None:
    mothers = await setup_births(stack, 3)
    phone = Phone(stack)
    await phone.pull()
    first = {
        m: next(
            t for t in phone.tasks.values() if t["person_id"] == m and t["step"] == "home_visit_1"
        )
        for m in mothers
    }
    a, b, c = (first[m] for m in mothers)

    # While the phone is offline: an officer records b's visit, and c's mother dies.
    async with stack.rt("visits").db.session() as s:
        row_b = await s.get(Task, b["id"])
    assert row_b is not None
    officer = stack.auth("township_officer", TOWNSHIP, sub="officer-1")
    r = await api(stack).post(f"/api/v1/tasks/{b['id']}/visits", json=visit(row_b), headers=officer)
    assert r.status_code == 201, r.text
    await emit(stack, person_died(c["person_id"], VISIT_DAY), subject=c["person_id"])

    refused = record(a, consent={"given": False, "note": "本人不愿意"})
    batch = [
        record(a),
        record(b),
        record(c),
        {"id": str(uuid.uuid4()), "task_id": a["id"], "task_version": 1},  # no place, no consent
        refused,  # the same task as the first item, now closed by it
    ]
    out = await phone.push(batch)
    statuses = [(x["status"], x["code"]) for x in out["results"]]
    assert statuses == [
        ("accepted", None),
        ("conflict", "task_changed"),
        ("conflict", "task_changed"),
        ("rejected", "validation_failed"),
        ("conflict", "task_changed"),
    ]
    assert (out["accepted"], out["duplicate"], out["conflict"], out["rejected"]) == (1, 0, 3, 1)
    assert out["results"][0]["visit"]["task_id"] == a["id"]
    assert out["results"][1]["task"]["closed"] == "done"
    assert out["results"][2]["task"]["closed"] == "cancelled"
    assert out["results"][2]["task"]["closed_reason"] == "death"
    fields = {e["field"] for e in out["results"][3]["errors"]}
    assert {"place", "consent", "performed_at"} <= fields
    assert await count(stack, VisitRecord) == 2  # the officer's and item 1; nothing else

    # The answer was lost: the phone sends the same batch again. Nothing new is written.
    again = await phone.push(batch)
    assert [(x["status"], x["code"]) for x in again["results"]] == [
        ("duplicate", None),
        ("conflict", "task_changed"),
        ("conflict", "task_changed"),
        ("rejected", "validation_failed"),
        ("conflict", "task_changed"),
    ]
    assert again["results"][0]["visit"] == out["results"][0]["visit"]
    assert await count(stack, VisitRecord) == 2
    recorded = await published(stack, "visits", "lingju.visits.visit.recorded")
    assert sorted(e["data"]["task_id"] for e in recorded) == sorted([a["id"], b["id"]])

    # The next pull brings the phone up to date with what it was told about.
    await phone.pull()
    assert phone.tasks[a["id"]]["closed"] == "done"
    assert phone.tasks[b["id"]]["closed"] == "done"
    assert phone.tasks[c["id"]]["closed"] == "cancelled"


async def test_a_record_on_a_task_reassigned_meanwhile_is_a_conflict_and_a_resend_stays_harmless(
    stack: InProcessStack,
) -> None:
    mother = (await setup_births(stack, 1))[0]
    phone = Phone(stack)
    await phone.pull()
    visits_ = [t for t in phone.tasks.values() if t["person_id"] == mother]
    one, two = sorted(visits_, key=lambda t: t["due_on"])[:2]
    accepted = record(one)
    assert (await phone.push([accepted]))["accepted"] == 1

    assert (await assign(stack, VILLAGE, "village", "worker-2")).status_code == 200
    out = await phone.push([accepted, record(two)])
    assert [(x["status"], x["code"]) for x in out["results"]] == [
        ("duplicate", None),  # worker-1's own record, though the task is no longer theirs
        ("conflict", "task_changed"),
    ]
    assert out["results"][1]["task"]["assignee"] == "worker-2"


async def test_a_concurrent_resend_of_one_batch_records_each_visit_once(
    stack: InProcessStack,
) -> None:
    mothers = await setup_births(stack, 2)
    phone = Phone(stack)
    await phone.pull()
    batch = [
        record(t)
        for t in phone.tasks.values()
        if t["person_id"] in mothers and t["step"] == "home_visit_1"
    ]
    outs = await asyncio.gather(*(phone.push(batch) for _ in range(4)))
    per_item = list(zip(*([x["status"] for x in o["results"]] for o in outs), strict=True))
    assert all(sorted(s) == ["accepted", "duplicate", "duplicate", "duplicate"] for s in per_item)
    assert await count(stack, VisitRecord) == 2


# -- who may sync, and bad input ----------------------------------------------------------------


async def test_only_field_staff_sync_and_bad_input_is_problem_json(stack: InProcessStack) -> None:
    for role, region in (("resident", VILLAGE), ("county_officer", VILLAGE[:6]), ("admin", "")):
        headers = stack.auth(role, region)
        problem(await api(stack).get("/api/v1/sync", headers=headers), 403, "forbidden")
        r = await api(stack).post("/api/v1/sync", json={"records": [{"id": "x"}]}, headers=headers)
        problem(r, 403, "forbidden")
    problem(await api(stack).get("/api/v1/sync"), 401, "unauthenticated")
    w = worker(stack)
    problem(
        await api(stack).get("/api/v1/sync", params={"cursor": "zz"}, headers=w),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).get("/api/v1/sync", params={"limit": 0}, headers=w),
        422,
        "validation_failed",
    )
    problem(
        await api(stack).post("/api/v1/sync", json={"records": []}, headers=w),
        422,
        "validation_failed",
    )
    too_many = [{"id": str(uuid.uuid4())}] * 201
    problem(
        await api(stack).post("/api/v1/sync", json={"records": too_many}, headers=w),
        422,
        "validation_failed",
    )
    # An item naming a task that does not exist is rejected alone.
    out = await Phone(stack).push(
        [record({"id": str(uuid.uuid4()), "version": 1}), "not an object"]  # type: ignore[list-item]
    )
    assert [(x["status"], x["code"]) for x in out["results"]] == [
        ("rejected", "not_found"),
        ("rejected", "validation_failed"),
    ]
