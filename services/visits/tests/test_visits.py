"""Visit records and procedures, on SQLite and PostgreSQL: consent closes a task done, a
refusal closes it declined (never escalated), a re-sent record is one visit, a record against
a changed task is a conflict with nothing written, and a recorded procedure is announced and
starts its follow-up plan.

Dates are in 2030 (see test_tasks.py); the business day is set on the visits runtime's clock.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.visits.events import plans
from services.visits.models import Procedure, Task, VisitRecord
from services.visits.tests.test_appointments import station
from services.visits.tests.test_tasks import (
    BORN,
    DISTRICT,
    add_person,
    api,
    assign,
    birth,
    problem,
    tasks_of,
    today_is,
    worker,
)
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, published

VISIT_DAY = BORN + timedelta(days=4)


def visit(task: Task, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "performed_at": f"{VISIT_DAY.isoformat()}T09:30:00+08:00",
        "place": "家中",
        "consent": {"given": True},
        "findings": {"blood_pressure": "118/76", "notes": "恢复良好，母乳喂养"},
        "task_version": task.version,
    }
    body.update(extra)
    return body


async def first_home_visit(stack: InProcessStack) -> Task:
    """A mother's first postpartum home visit, assigned to worker-1."""
    assert (await assign(stack, VILLAGE, "village", "worker-1")).status_code == 200
    mother, _ = await birth(stack)
    return next(t for t in await tasks_of(stack, mother) if t.step == "home_visit_1")


async def count(stack: InProcessStack, model: Any) -> int:
    async with stack.rt("visits").db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def fresh(stack: InProcessStack, task_id: str) -> Task:
    async with stack.rt("visits").db.session() as s:
        t = await s.get(Task, task_id)
        assert t is not None
        return t


@pytest.fixture(autouse=True)
def _visit_day(stack: InProcessStack) -> None:
    today_is(stack, VISIT_DAY)


# -- visit records ------------------------------------------------------------------------------


async def test_consent_closes_the_task_done_and_a_resend_is_one_visit(
    stack: InProcessStack,
) -> None:
    task = await first_home_visit(stack)
    body = visit(task)
    url = f"/api/v1/tasks/{task.id}/visits"
    r = await api(stack).post(url, json=body, headers=worker(stack))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["id"] == body["id"] and rec["consent"] == "given"
    assert rec["performer_sub"] == "worker-1" and rec["performer_role"] == "village_worker"
    assert rec["findings"]["notes"] == "恢复良好，母乳喂养"
    closed = await fresh(stack, task.id)
    assert closed.closed == "done" and closed.version == task.version + 1

    # The phone lost the answer and sends the record again: the same record, nothing new.
    again = await api(stack).post(url, json=body, headers=worker(stack))
    assert again.status_code == 200, again.text
    assert again.json() == rec
    assert await count(stack, VisitRecord) == 1
    assert (await fresh(stack, task.id)).version == task.version + 1

    listed = await api(stack).get(url, headers=stack.auth("township_officer", TOWNSHIP))
    assert listed.status_code == 200 and [v["id"] for v in listed.json()] == [body["id"]]
    got = await api(stack).get(f"/api/v1/tasks/{task.id}", headers=worker(stack))
    assert got.json()["state"] == "done"


async def test_refusal_closes_the_task_declined_and_is_never_escalated(
    stack: InProcessStack,
) -> None:
    task = await first_home_visit(stack)
    body = visit(task, consent={"given": False, "note": "本人表示不需要上门"}, findings={})
    r = await api(stack).post(f"/api/v1/tasks/{task.id}/visits", json=body, headers=worker(stack))
    assert r.status_code == 201, r.text
    assert r.json()["consent"] == "refused" and r.json()["consent_note"] == "本人表示不需要上门"
    declined = await fresh(stack, task.id)
    assert declined.closed == "declined"
    # The note is the person's own words (health data): kept, encrypted, in the record only.
    assert declined.closed_reason == "本人知情选择：拒绝"

    # Past the task's overdue day the sweep announces nothing for it.
    sweep = await api(stack).post(
        "/api/v1/admin/sweeps/tasks",
        params={"as_of": task.overdue_on.isoformat()},
        headers=stack.auth("admin"),
    )
    assert sweep.status_code == 200 and task.id not in sweep.json()["overdue"]
    overdue = await published(stack, "visits", "lingju.visits.task.overdue")
    assert all(e["data"]["task_id"] != task.id for e in overdue)


async def test_no_next_step_against_a_refusal(stack: InProcessStack) -> None:
    task = await first_home_visit(stack)
    body = visit(
        task,
        consent={"given": False},
        next_step={"kind": "extra_visit", "on": (VISIT_DAY + timedelta(days=3)).isoformat()},
    )
    r = await api(stack).post(f"/api/v1/tasks/{task.id}/visits", json=body, headers=worker(stack))
    problem(r, 422, "validation_failed")
    assert (await fresh(stack, task.id)).closed is None


async def test_changed_task_is_a_conflict_and_nothing_is_written(stack: InProcessStack) -> None:
    task = await first_home_visit(stack)
    url = f"/api/v1/tasks/{task.id}/visits"
    # A stale version (the phone read the task before it changed).
    stale = visit(task, task_version=task.version + 5)
    body = problem(
        await api(stack).post(url, json=stale, headers=worker(stack)), 409, "task_changed"
    )
    assert "任务已变更" in body["detail"]
    assert await count(stack, VisitRecord) == 0 and (await fresh(stack, task.id)).closed is None

    # Done by someone else meanwhile: a second record (another id) is a conflict too.
    officer = stack.auth("township_officer", TOWNSHIP, sub="officer-2")
    assert (await api(stack).post(url, json=visit(task), headers=officer)).status_code == 201
    late = await api(stack).post(url, json=visit(task), headers=worker(stack))
    problem(late, 409, "task_changed")
    assert await count(stack, VisitRecord) == 1

    # The same record id on another task is refused, not answered with the first record.
    other = next(t for t in await tasks_of(stack, task.person_id) if t.step == "home_visit_2")
    reused = visit(other, id=(await api(stack).get(url, headers=officer)).json()[0]["id"])
    problem(
        await api(stack).post(f"/api/v1/tasks/{other.id}/visits", json=reused, headers=officer),
        409,
        "visit_id_reused",
    )


async def test_extra_visit_and_referral_create_tasks(stack: InProcessStack) -> None:
    task = await first_home_visit(stack)
    assert (await assign(stack, TOWNSHIP, "township", "station-1")).status_code == 200
    on = VISIT_DAY + timedelta(days=5)
    body = visit(task, next_step={"kind": "extra_visit", "on": on.isoformat(), "note": "复测血压"})
    r = await api(stack).post(f"/api/v1/tasks/{task.id}/visits", json=body, headers=worker(stack))
    assert r.status_code == 201, r.text
    extra = await fresh(stack, r.json()["next_task_id"])
    assert (extra.plan, extra.step, extra.tier, extra.assignee) == (
        "postpartum",
        "home_visit_1_extra",
        "village",
        "worker-1",
    )
    assert extra.due_on == on
    assert extra.expires_on - extra.due_on == task.expires_on - task.due_on
    shown = await api(stack).get(f"/api/v1/tasks/{extra.id}", headers=worker(stack))
    assert shown.json()["step_name"].endswith("（加访）")
    assert shown.json()["service"] == "postpartum_home_visit"

    second = next(t for t in await tasks_of(stack, task.person_id) if t.step == "home_visit_2")
    ref = visit(second, next_step={"kind": "referral", "note": "伤口愈合不良"})
    r = await api(stack).post(f"/api/v1/tasks/{second.id}/visits", json=ref, headers=worker(stack))
    assert r.status_code == 201, r.text
    referral = await fresh(stack, r.json()["next_task_id"])
    assert (referral.step, referral.tier, referral.assignee, referral.due_on) == (
        "home_visit_2_referral",
        "township",
        "station-1",
        VISIT_DAY,
    )


async def test_visit_refusals_and_bad_input(stack: InProcessStack) -> None:
    task = await first_home_visit(stack)
    url = f"/api/v1/tasks/{task.id}/visits"
    # Another worker (not the assignee), an officer elsewhere, a role that does not record.
    problem(
        await api(stack).post(url, json=visit(task), headers=worker(stack, sub="worker-2")),
        403,
        "forbidden",
    )
    far = stack.auth("township_officer", OTHER_TOWNSHIP)
    problem(await api(stack).post(url, json=visit(task), headers=far), 403, "out_of_region")
    problem(await api(stack).get(url, headers=far), 403, "out_of_region")
    resident = stack.auth("resident", VILLAGE, person_id=task.person_id)
    problem(await api(stack).post(url, json=visit(task), headers=resident), 403, "forbidden")
    problem(
        await api(stack).post(url, json=visit(task), headers=stack.auth("village_agent", VILLAGE)),
        403,
        "forbidden",
    )
    problem(
        await api(stack).post(
            f"/api/v1/tasks/{uuid.uuid4()}/visits", json=visit(task), headers=worker(stack)
        ),
        404,
        "not_found",
    )
    # Bad input, answered in Chinese with the field named.
    for bad, field in (
        ({"id": "not-a-uuid"}, "id"),
        ({"performed_at": "2030-01-05T09:30:00"}, "performed_at"),  # no offset
        ({"consent": {"note": "x"}}, "consent.given"),
        ({"place": ""}, "place"),
        ({"next_step": {"kind": "home"}}, "next_step"),
    ):
        r = await api(stack).post(url, json=visit(task, **bad), headers=worker(stack))
        body = problem(r, 422, "validation_failed")
        assert body["title"] == "请求参数有误"
        assert any(e["field"].startswith(field) for e in body["errors"]), body
    future = visit(task, performed_at=f"{(VISIT_DAY + timedelta(days=2)).isoformat()}T09:00:00Z")
    problem(
        await api(stack).post(url, json=future, headers=worker(stack)), 422, "validation_failed"
    )
    too_early = visit(task, next_step={"kind": "extra_visit", "on": VISIT_DAY.isoformat()})
    problem(
        await api(stack).post(url, json=too_early, headers=worker(stack)), 422, "validation_failed"
    )
    # Findings follow the step's form (findings.toml: postpartum_home_visit): each wrong value
    # is named; free text under another key is kept as a note.
    wrong = visit(
        task,
        findings={"temperature": 45, "lochia": "green", "bp_systolic": True, "remark": "正常"},
    )
    body = problem(
        await api(stack).post(url, json=wrong, headers=worker(stack)), 422, "validation_failed"
    )
    assert {e["field"] for e in body["errors"]} == {
        "findings.temperature",
        "findings.lochia",
        "findings.bp_systolic",
    }
    temperature = next(e for e in body["errors"] if e["field"] == "findings.temperature")
    assert "34～42.5" in temperature["message"]  # the range is told
    assert await count(stack, VisitRecord) == 0 and (await fresh(stack, task.id)).closed is None
    # A resident reads the visits of their own task.
    assert (await api(stack).get(url, headers=resident)).status_code == 200


# -- procedures ---------------------------------------------------------------------------------


def procedure(person_id: str, station_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person_id": person_id,
        "procedure": "iud_insertion",
        "performed_on": BORN.isoformat(),
        "station_id": station_id,
        "consent_given": True,
    }
    body.update(extra)
    return body


async def test_procedure_is_announced_and_starts_its_followup_plan(
    stack: InProcessStack,
) -> None:
    assert (await assign(stack, TOWNSHIP, "township", "station-1")).status_code == 200
    person = await add_person(stack)
    st = await station(stack)
    body = procedure(person, st["id"], id=str(uuid.uuid4()))
    officer = stack.auth("township_officer", TOWNSHIP, sub="doctor-1")
    r = await api(stack).post("/api/v1/procedures", json=body, headers=officer)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["followup_plan"] == "iud_followup" and out["performer_sub"] == "doctor-1"

    events = await published(stack, "visits", "lingju.visits.procedure.recorded")
    assert len(events) == 1
    assert events[0]["subject"] == out["id"]
    assert {k: events[0]["data"][k] for k in ("procedure_id", "person_id")} == {
        "procedure_id": out["id"],
        "person_id": person,
    }
    # What was done is health data and no consumer needs it: the event does not carry it.
    assert "procedure" not in events[0]["data"]
    assert events[0]["dataschema"].endswith(":v2")
    assert events[0]["data"]["performed_on"] == BORN.isoformat()
    assert events[0]["data"]["region_code"] == VILLAGE

    # The IUD follow-ups, with the plan's windows from the day of the insertion.
    plan = plans()["iud_followup"]
    generated = await tasks_of(stack, person)
    by_step = {(t.step, t.occurrence): t for t in generated}
    for step in plan.steps[:4]:
        t = by_step[(step.code, 0)]
        w = step.window(BORN)
        assert (t.due_on, t.overdue_on, t.expires_on) == (w.due_on, w.overdue_on, w.expires_on)
        assert (t.tier, t.assignee, t.source_ref) == ("township", "station-1", out["id"])
    assert by_step[("month_1", 0)].due_on == date(2030, 2, 1)
    # The 12-month check, then yearly: generated up to the two-year horizon.
    assert by_step[("yearly", 0)].due_on == date(2031, 1, 1)
    assert by_step[("yearly", 1)].due_on == date(2032, 1, 1)

    # The same procedure id again: the first record, no second event, no more tasks.
    again = await api(stack).post("/api/v1/procedures", json=body, headers=officer)
    assert again.status_code == 200 and again.json()["id"] == out["id"]
    assert len(await published(stack, "visits", "lingju.visits.procedure.recorded")) == 1
    assert len(await tasks_of(stack, person)) == len(generated)
    assert await count(stack, Procedure) == 1


async def test_procedure_needs_consent_and_is_refused_outside_role_or_region(
    stack: InProcessStack,
) -> None:
    person = await add_person(stack)
    st = await station(stack)
    officer = stack.auth("county_officer", DISTRICT)
    url = "/api/v1/procedures"
    for consent in ({"consent_given": False}, {}):
        body = procedure(person, st["id"])
        body.pop("consent_given")
        body.update(consent)
        r = await api(stack).post(url, json=body, headers=officer)
        assert "须取得本人知情同意" == problem(r, 422, "consent_required")["title"]
    problem(
        await api(stack).post(url, json=procedure(person, st["id"]), headers=worker(stack)),
        403,
        "forbidden",
    )
    problem(
        await api(stack).post(
            url,
            json=procedure(person, st["id"]),
            headers=stack.auth("township_officer", OTHER_TOWNSHIP),
        ),
        403,
        "out_of_region",
    )
    problem(
        await api(stack).post(url, json=procedure(str(uuid.uuid4()), st["id"]), headers=officer),
        404,
        "unknown_person",
    )
    problem(
        await api(stack).post(url, json=procedure(person, "nope"), headers=officer),
        422,
        "unknown_station",
    )
    for bad, field in (
        ({"procedure": "forced_sterilization"}, "procedure"),
        ({"performed_on": "2030-02-30"}, "performed_on"),
        ({"performed_on": (VISIT_DAY + timedelta(days=1)).isoformat()}, "performed_on"),
        ({"surprise": 1}, "surprise"),
    ):
        r = await api(stack).post(url, json=procedure(person, st["id"], **bad), headers=officer)
        body = problem(r, 422, "validation_failed")
        assert any(e["field"].startswith(field) for e in body["errors"]), body
    assert await count(stack, Procedure) == 0
    assert await published(stack, "visits", "lingju.visits.procedure.recorded") == []
