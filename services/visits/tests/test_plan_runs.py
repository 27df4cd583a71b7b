"""Plan runs (a person's enrollment in a plan): started once per trigger, extended by the plan
sweep as the business day moves on, age plans (two-cancer screening, women 35-64), ended early
by an IUD removal, a death or a move out of the county, and tasks that follow a person who
moves. Real events on the broker, the real app, SQLite and PostgreSQL.

Dates are in 2030 and later, and every test sets visits' business day first, so the sweep the
worker runs at start-up (on the real date) has nothing of theirs to act on.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.visits.events import plans
from services.visits.models import PersonFacts, PlanRun, Task
from services.visits.tests.test_appointments import station
from services.visits.tests.test_tasks import (
    DISTRICT,
    OTHER_VILLAGE,
    api,
    child_born,
    emit,
    person_died,
    problem,
    tasks_of,
    today_is,
)
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack
from tests.test_event_delivery import envelope

START = date(2030, 3, 1)
OTHER_COUNTY_VILLAGE = "330103001001"


@pytest.fixture(autouse=True)
def _start_day(stack: InProcessStack) -> None:
    today_is(stack, START)


def person_event(
    person_id: str,
    *,
    born: date,
    sex: str = "female",
    region: str = VILLAGE,
    version: int | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "person_id": person_id,
        "name": "测试居民",
        "sex": sex,
        "birth_date": born.isoformat(),
        "region_code": region,
        "residency": "local",
        "household_type": "rural",
    }
    if version is None:
        return envelope("lingju.registry.person.registered", data)
    data.update(changed=["region_code"], marital_status="married", version=version)
    return envelope("lingju.registry.person.updated", data)


async def register(
    stack: InProcessStack, *, born: date = date(2005, 1, 1), sex: str = "female"
) -> str:
    pid = str(uuid.uuid4())
    await emit(stack, person_event(pid, born=born, sex=sex), subject=pid)
    return pid


async def runs_of(stack: InProcessStack, person_id: str) -> list[PlanRun]:
    async with stack.rt("visits").db.session() as s:
        q = select(PlanRun).where(PlanRun.person_id == person_id).order_by(PlanRun.plan)  # type: ignore[arg-type]
        return list((await s.scalars(q)).all())


async def sweep(stack: InProcessStack, on: date) -> dict[str, Any]:
    r = await api(stack).post(
        "/api/v1/admin/sweeps/plans", params={"as_of": on.isoformat()}, headers=stack.auth("admin")
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def swept(on: date, started: int = 0, extended: int = 0, created: int = 0) -> dict[str, Any]:
    return {
        "as_of": on.isoformat(),
        "runs_started": started,
        "runs_extended": extended,
        "tasks_created": created,
    }


async def put_assignment(stack: InProcessStack, area: str, tier: str, sub: str) -> httpx.Response:
    r = await api(stack).put(
        f"/api/v1/assignments/{area}/{tier}",
        json={"assignee_sub": sub, "assignee_name": "王芳"},
        headers=stack.auth("county_officer", DISTRICT, sub="officer-1"),
    )
    assert r.status_code == 200, r.text
    return r


async def record_procedure(
    stack: InProcessStack, person_id: str, procedure: str, on: date
) -> dict[str, Any]:
    st = await station(stack)
    r = await api(stack).post(
        "/api/v1/procedures",
        json={
            "id": str(uuid.uuid4()),
            "person_id": person_id,
            "procedure": procedure,
            "performed_on": on.isoformat(),
            "station_id": st["id"],
            "consent_given": True,
        },
        headers=stack.auth("township_officer", TOWNSHIP, sub="doctor-1"),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def close_done(stack: InProcessStack, task_id: str) -> None:
    async with stack.rt("visits").db.session() as s:
        await s.execute(
            update(Task).where(Task.id == task_id).values(closed="done", version=2)  # type: ignore[arg-type]
        )
        await s.commit()


def yearly(rows: list[Task]) -> list[tuple[int, date]]:
    return sorted((t.occurrence, t.due_on) for t in rows if t.step == "yearly")


# -- starting once ------------------------------------------------------------------------------


async def test_a_duplicated_trigger_starts_one_run(stack: InProcessStack) -> None:
    mother, child = await register(stack), await register(stack, sex="male")
    event = child_born(mother, child, START)
    await emit(stack, event, subject=child)
    before = {r.plan: r for r in await runs_of(stack, mother)}
    assert list(before) == ["postpartum"]
    run = before["postpartum"]
    assert (run.source_ref, run.anchor_on, run.until_on, run.ended_on) == (
        child,
        START,
        None,
        None,
    )
    assert run.generated_through == date(2032, 3, 1)
    assert [r.plan for r in await runs_of(stack, child)] == ["newborn"]

    # The same birth again under a new event id: nothing changes, the run included.
    await emit(stack, {**event, "id": str(uuid.uuid4())}, subject=child)
    after = await runs_of(stack, mother)
    assert [(r.id, r.version, r.generated_through) for r in after] == [
        (run.id, 1, run.generated_through)
    ]
    assert await stack.count_rows("visits", "plan_runs") == 2
    assert await stack.count_rows("visits", "tasks") == 5


# -- extension ----------------------------------------------------------------------------------


async def test_iud_yearly_checks_are_extended_as_the_years_pass(stack: InProcessStack) -> None:
    await put_assignment(stack, TOWNSHIP, "township", "station-1")
    person = await register(stack)
    await record_procedure(stack, person, "iud_insertion", START)
    rows = await tasks_of(stack, person)
    assert len(rows) == 5  # months 1, 3, 6 and the yearly checks of 2031 and 2032
    assert yearly(rows) == [(0, date(2031, 3, 1)), (1, date(2032, 3, 1))]
    (run,) = await runs_of(stack, person)
    assert (run.plan, run.generated_through) == ("iud_followup", date(2032, 3, 1))

    # Nothing to do while the horizon is ahead.
    assert await sweep(stack, START) == swept(START)

    # A year on: the 2033 check appears, once, however often the sweep runs.
    day = date(2031, 3, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day, extended=1, created=1)
    assert await sweep(stack, day) == swept(day)
    assert yearly(await tasks_of(stack, person)) == [
        (0, date(2031, 3, 1)),
        (1, date(2032, 3, 1)),
        (2, date(2033, 3, 1)),
    ]

    # Two more years and a quarter, two sweeps at once (two replicas): 2034 and 2035, once.
    day = date(2033, 6, 15)
    today_is(stack, day)
    results = await asyncio.gather(sweep(stack, day), sweep(stack, day))
    assert sum(r["tasks_created"] for r in results) == 2
    assert sum(r["runs_extended"] for r in results) == 1
    rows = await tasks_of(stack, person)
    assert yearly(rows) == [(k, date(2031 + k, 3, 1)) for k in range(5)]
    assert len(rows) == 8
    assert {t.assignee for t in rows} == {"station-1"}
    (run,) = await runs_of(stack, person)
    assert (run.generated_through, run.version) == (date(2035, 6, 15), 3)

    # The admin route is the admin's.
    problem(
        await api(stack).post(
            "/api/v1/admin/sweeps/plans", headers=stack.auth("village_worker", VILLAGE)
        ),
        403,
        "forbidden",
    )


# -- age plans ----------------------------------------------------------------------------------


async def test_screening_starts_as_she_nears_35(stack: InProcessStack) -> None:
    plan = plans()["two_cancer_screening"]
    # 34 years 11 months: her first round, due on her 35th birthday, is within the horizon.
    soon = await register(stack, born=date(1995, 4, 1))
    # 32 years 11 months: her 35th birthday is 25 months away, beyond the horizon.
    later = await register(stack, born=date(1997, 4, 1))
    (run,) = await runs_of(stack, soon)
    assert (run.plan, run.source_ref, run.anchor_on, run.until_on) == (
        "two_cancer_screening",
        "age",
        date(2030, 4, 1),
        date(2060, 3, 31),
    )
    w = plan.steps[0].window(date(2030, 4, 1))
    assert [
        (t.step, t.occurrence, t.due_on, t.overdue_on, t.expires_on)
        for t in await tasks_of(stack, soon)
    ] == [("screening", 0, date(2030, 4, 1), w.overdue_on, w.expires_on)]
    assert await runs_of(stack, later) == [] and await tasks_of(stack, later) == []

    # A month on, the second woman's 35th birthday enters the horizon: the sweep starts her.
    day = date(2030, 4, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day, started=1, created=1)
    assert await sweep(stack, day) == swept(day)
    rows = await tasks_of(stack, later)
    assert [(t.plan, t.occurrence, t.due_on, t.source_ref) for t in rows] == [
        ("two_cancer_screening", 0, date(2032, 4, 1), "age")
    ]
    # On her 35th birthday the first woman's screening is due, and announced.
    r = await api(stack).post(
        "/api/v1/admin/sweeps/tasks", params={"as_of": day.isoformat()}, headers=stack.auth("admin")
    )
    assert r.json()["due"] == [t.id for t in await tasks_of(stack, soon)]
    assert await stack.count_rows("visits", "plan_runs") == 2


async def test_a_woman_of_50_gets_only_current_and_future_rounds(stack: InProcessStack) -> None:
    woman = await register(stack, born=date(1980, 1, 15))
    rows = await tasks_of(stack, woman)
    # Rounds every 3 years from her 35th birthday (2015-01-15): the one of 2027 closed on
    # 2030-01-15, before visits knew her; the one of 2030 is open; 2033 is past the horizon.
    # The open round is offered from the day visits learns of her (2030-03-01), overdue only
    # after the step's own year of grace: she is not behind on the day she is registered.
    assert [(t.occurrence, t.due_on, t.overdue_on, t.expires_on) for t in rows] == [
        (5, date(2030, 3, 1), date(2031, 3, 1), date(2033, 1, 15))
    ]
    (run,) = await runs_of(stack, woman)
    assert (run.anchor_on, run.until_on, run.generated_through) == (
        date(2015, 1, 15),
        date(2045, 1, 14),
        date(2032, 3, 1),
    )
    day = date(2031, 2, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day, extended=1, created=1)
    assert [(t.occurrence, t.due_on) for t in await tasks_of(stack, woman)] == [
        (5, date(2030, 3, 1)),
        (6, date(2033, 1, 15)),
    ]
    # A round every three years while she is in the range: the last is due in 2042, before
    # she turns 65 (2045-01-15); nothing after it.
    for year in (2034, 2037, 2040):
        day = date(year, 2, 1)
        today_is(stack, day)
        assert await sweep(stack, day) == swept(day, extended=1, created=1)
    day = date(2043, 2, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day, extended=1)
    assert [t.due_on.year for t in await tasks_of(stack, woman)] == [
        2030,
        2033,
        2036,
        2039,
        2042,
    ]
    (run,) = await runs_of(stack, woman)
    assert run.generated_through == date(2045, 1, 14)
    assert await sweep(stack, date(2044, 6, 1)) == swept(date(2044, 6, 1))


async def test_no_screening_for_a_man_or_a_woman_of_70(stack: InProcessStack) -> None:
    man = await register(stack, born=date(1980, 1, 15), sex="male")
    old = await register(stack, born=date(1960, 1, 15))
    girl = await register(stack, born=date(2020, 1, 15))
    assert await sweep(stack, START) == swept(START)
    for pid in (man, old, girl):
        assert await runs_of(stack, pid) == [] and await tasks_of(stack, pid) == []
    assert await stack.count_rows("visits", "plan_runs") == 0


# -- ending a run -------------------------------------------------------------------------------


async def test_iud_removal_ends_the_iud_followups(stack: InProcessStack) -> None:
    person = await register(stack)
    await record_procedure(stack, person, "iud_insertion", START)
    first = next(t for t in await tasks_of(stack, person) if t.step == "month_1")
    await close_done(stack, first.id)

    removed = date(2030, 8, 1)
    today_is(stack, removed)
    await record_procedure(stack, person, "iud_removal", removed)
    rows = await tasks_of(stack, person)
    iud = [t for t in rows if t.plan == "iud_followup"]
    assert [(t.step, t.closed, t.closed_reason, t.version) for t in iud] == [
        ("month_1", "done", None, 2),
        ("month_3", "cancelled", "iud_removed", 2),
        ("month_6", "cancelled", "iud_removed", 2),
        ("yearly", "cancelled", "iud_removed", 2),
        ("yearly", "cancelled", "iud_removed", 2),
    ]
    # The removal has its own review a month later.
    assert [(t.plan, t.closed) for t in rows if t.plan != "iud_followup"] == [
        ("procedure_review", None)
    ]
    runs = {r.plan: r for r in await runs_of(stack, person)}
    assert (runs["iud_followup"].ended_on, runs["iud_followup"].ended_reason) == (
        removed,
        "iud_removed",
    )
    assert runs["procedure_review"].ended_on is None

    # Years later the sweep generates nothing more for the ended plan.
    day = date(2033, 1, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day)
    assert len([t for t in await tasks_of(stack, person) if t.plan == "iud_followup"]) == 5


async def test_death_ends_every_run(stack: InProcessStack) -> None:
    woman = await register(stack, born=date(1990, 6, 1))  # 39: screening
    await record_procedure(stack, woman, "iud_insertion", START)
    assert {r.plan for r in await runs_of(stack, woman)} == {"iud_followup", "two_cancer_screening"}
    died = date(2030, 6, 1)
    await emit(stack, person_died(woman, died))
    runs = await runs_of(stack, woman)
    assert [(r.ended_on, r.ended_reason) for r in runs] == [(died, "death")] * 2
    rows = await tasks_of(stack, woman)
    # Five IUD follow-ups; the screening rounds of 2028 (still open) and 2031.
    assert len(rows) == 7 and {(t.closed, t.closed_reason) for t in rows} == {
        ("cancelled", "death")
    }
    day = date(2032, 6, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day)
    assert len(await tasks_of(stack, woman)) == 7


# -- moves --------------------------------------------------------------------------------------


async def test_a_move_within_the_county_moves_and_reassigns_open_tasks(
    stack: InProcessStack,
) -> None:
    await put_assignment(stack, VILLAGE, "village", "worker-1")
    await put_assignment(stack, TOWNSHIP, "township", "station-1")
    await put_assignment(stack, OTHER_VILLAGE, "village", "worker-2")
    # No township station is assigned in the other township yet.
    mother, child = await register(stack), await register(stack, sex="male")
    await emit(stack, child_born(mother, child, START), subject=child)
    rows = await tasks_of(stack, mother)
    assert [(t.step, t.assignee) for t in rows] == [
        ("home_visit_1", "worker-1"),
        ("home_visit_2", "worker-1"),
        ("check_42d", "station-1"),
    ]
    await close_done(stack, rows[0].id)

    await emit(stack, person_event(mother, born=date(2005, 1, 1), region=OTHER_VILLAGE, version=2))
    after = await tasks_of(stack, mother)
    assert [(t.step, t.region_code, t.assignee, t.closed, t.version) for t in after] == [
        ("home_visit_1", VILLAGE, "worker-1", "done", 2),
        ("home_visit_2", OTHER_VILLAGE, "worker-2", None, 2),
        ("check_42d", OTHER_VILLAGE, None, None, 2),
    ]
    assert {t.updated_at for t in after[1:]} != {rows[1].updated_at}
    # The child did not move.
    assert {(t.region_code, t.version) for t in await tasks_of(stack, child)} == {(VILLAGE, 1)}
    assert [r.ended_on for r in await runs_of(stack, mother)] == [None]

    # An older picture arriving late changes nothing.
    await emit(stack, person_event(mother, born=date(2005, 1, 1), region=VILLAGE, version=1))
    assert [t.version for t in await tasks_of(stack, mother)] == [2, 2, 2]
    async with stack.rt("visits").db.session() as s:
        facts = await s.get(PersonFacts, mother)
        assert facts is not None and facts.region_code == OTHER_VILLAGE
    assert OTHER_VILLAGE.startswith(OTHER_TOWNSHIP)


async def test_a_move_to_another_county_cancels_open_tasks_and_ends_runs(
    stack: InProcessStack,
) -> None:
    woman = await register(stack, born=date(1990, 6, 1))  # 39: screening
    await record_procedure(stack, woman, "iud_insertion", START)
    first = next(t for t in await tasks_of(stack, woman) if t.step == "month_1")
    await close_done(stack, first.id)
    girl = await register(stack, born=date(1997, 4, 1))  # 32: no screening yet

    moved = date(2030, 5, 1)
    today_is(stack, moved)
    for pid, born in ((woman, date(1990, 6, 1)), (girl, date(1997, 4, 1))):
        await emit(stack, person_event(pid, born=born, region=OTHER_COUNTY_VILLAGE, version=2))
    rows = await tasks_of(stack, woman)
    assert len(rows) == 7
    assert [(t.step, t.closed, t.closed_reason) for t in rows if t.id != first.id] == [
        (step, "cancelled", "moved_away")
        for step in ("screening", "month_3", "month_6", "yearly", "screening", "yearly")
    ]
    assert next(t for t in rows if t.id == first.id).closed == "done"
    assert {t.region_code for t in rows} == {VILLAGE}
    assert [(r.plan, r.ended_on, r.ended_reason) for r in await runs_of(stack, woman)] == [
        ("iud_followup", moved, "moved_away"),
        ("two_cancer_screening", moved, "moved_away"),
    ]
    # Nothing starts or extends for them afterwards (the other county's system takes over).
    day = date(2033, 6, 1)
    today_is(stack, day)
    assert await sweep(stack, day) == swept(day)
    assert len(await tasks_of(stack, woman)) == 7
    assert await tasks_of(stack, girl) == []
    # Her 35th birthday came within the horizon as she left: her screening run is ended
    # before it started, so the sweep does not start it either.
    assert [(r.plan, r.ended_reason) for r in await runs_of(stack, girl)] == [
        ("two_cancer_screening", "moved_away")
    ]
