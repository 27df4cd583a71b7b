"""Follow-up tasks (随访任务): generated from events, assigned by area, listed by urgency, and
announced when they fall due and overdue.

Generation. An event names a plan's trigger (plans.toml); each step of the plan becomes a task
for the plan's subject, with the window ``Step.window`` gives from the anchor date in the
event. Starting a plan also starts its run (``plan_runs``, the person's enrollment in the plan,
unique per plan, person and source_ref): a repeating step (IUD yearly checks, screening rounds)
is generated up to ``HORIZON_MONTHS`` ahead and the run remembers how far, so the extension
sweep (``plan_runs.py``) carries it on; a run that has ended (IUD removed, death, moved out of
the county) generates nothing more. The run and the tasks are inserted with ON CONFLICT DO
NOTHING against their unique keys, and a run that already exists means the plan was started:
the same event delivered twice, published twice under two event ids, or handled by two
replicas at once generates each task once.

Assignment. The tier of a step says who does it: the assignee of the person's village
(12 digits), township (9) or district (6) in ``assignments``; with none yet the task is
unassigned, and officers see it in their area's list. Changing an area's assignee moves its
open tasks in one UPDATE.

States. scheduled / due / overdue / missed are derived from the window and today's
Asia/Shanghai date in SQL (``state_expr``), so the state filter and the cursor run in the
database; only closed (done / cancelled / declined) is stored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

# Module references: events.py and plan_runs.py import this module in turn.
from services.visits import events, plan_runs
from services.visits.domain.plans import (
    TIERS,
    Plan,
    Step,
    TaskState,
    Window,
    add_months,
    occurrences,
)
from services.visits.models import Assignment, PersonFacts, PlanRun, Task
from shared.auth import Principal, Role
from shared.concurrency import Expected
from shared.db import dialect_insert, utcnow
from shared.errors import Problem, not_found
from shared.events import CloudEvent
from shared.events.consumer import RetryLater
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, cursor_date, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.visits.tasks")

# Repeating steps are generated this far ahead (two years: the IUD's 12- and 24-month checks,
# a screening round), of the anchor or of today if later; the plan sweep extends them.
HORIZON_MONTHS = 24
ANNOUNCE_INTERVAL_SECONDS = 600

Tier = Literal["village", "township", "district"]
AREA_DIGITS: dict[str, int] = {"village": 12, "township": 9, "district": 6}
STATES = tuple(s.value for s in TaskState)

_TASKS = Task.__table__
_RUNS = PlanRun.__table__


def area_of(region_code: str, tier: str) -> str:
    """The area whose assignee does a person's tasks of ``tier``: a prefix of their village."""
    return region_code[: AREA_DIGITS[tier]]


# -- generation ---------------------------------------------------------------------------------


async def _assignees(session: AsyncSession, region_code: str) -> dict[str, str]:
    """The assignee of each tier for a village: its own, its township's, its district's."""
    areas = [area_of(region_code, t) for t in TIERS]
    rows = await session.execute(
        select(Assignment.tier, Assignment.area_code, Assignment.assignee_sub).where(
            Assignment.area_code.in_(areas)  # type: ignore[attr-defined]
        )
    )
    return {t: sub for t, area, sub in rows if area == area_of(region_code, t)}


def windows_between(
    plan: Plan,
    anchor: date,
    after: date | None,
    through: date,
    *,
    until: date | None = None,
    open_on: date | None = None,
) -> list[tuple[Step, int, Window]]:
    """The (step, occurrence, window) a run generates.

    ``after`` None: a start, where a step that does not repeat is generated whatever its date
    and a repeating one up to ``through``; otherwise an extension: the repeats due after
    ``after`` up to ``through``. ``until`` (an age plan's last day) bounds every due date;
    ``open_on`` leaves out windows already closed that day (an age plan offers no round that
    expired before visits could act on it)."""
    out: list[tuple[Step, int, Window]] = []
    for step in plan.steps:
        if step.repeat is None:
            found = [] if after is not None else [(0, step.window(anchor))]
        else:
            found = list(enumerate(occurrences(step, anchor, through)))
            if after is not None:
                found = [(k, w) for k, w in found if w.due_on > after]
        for k, w in found:
            if until is not None and w.due_on > until:
                continue
            if open_on is not None:
                if w.expires_on <= open_on:
                    continue
                w = w.offered_from(open_on)
            out.append((step, k, w))
    return out


async def insert_tasks(
    session: AsyncSession,
    plan: Plan,
    person: PersonFacts,
    anchor: date,
    source_ref: str,
    windows: list[tuple[Step, int, Window]],
) -> int:
    """Insert a run's tasks, assigned by the person's village; the number newly created."""
    if not windows:
        return 0
    assignees = await _assignees(session, person.region_code)
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "plan": plan.code,
            "step": step.code,
            "occurrence": k,
            "person_id": person.person_id,
            "region_code": person.region_code,
            "tier": step.tier,
            "assignee": assignees.get(step.tier),
            "anchor_on": anchor,
            "due_on": w.due_on,
            "overdue_on": w.overdue_on,
            "expires_on": w.expires_on,
            "source_ref": source_ref,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for step, k, w in windows
    ]
    result = await session.execute(
        dialect_insert(session, _TASKS).values(rows).on_conflict_do_nothing()
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def start_plan(
    uow: UnitOfWork,
    plan: Plan,
    person_id: str,
    anchor: date,
    source_ref: str,
    *,
    until: date | None = None,
    today: date | None = None,
) -> int:
    """Start a person's run of ``plan`` from ``anchor`` and generate its tasks; the number of
    tasks created.

    Repeats are generated up to ``HORIZON_MONTHS`` past the anchor or ``today`` (the business
    day, default the unit of work's), whichever is later, and no further than ``until`` (an age
    plan's last day, whose rounds already closed on ``today`` are left out). Raises
    ``RetryLater`` when the person's facts have not arrived (events are not ordered). Nothing
    is generated for a person who has died. Safe to call again: a run that exists (still
    going, or ended) means the plan was started, and nothing changes.
    """
    s = uow.session
    person = await s.get(PersonFacts, person_id)
    if person is None:
        raise RetryLater(f"plan {plan.code}: person {person_id} not known yet")
    if person.died_on is not None:
        log.info("plan %s not started: person %s has died", plan.code, person_id)
        return 0
    today = today or uow.clock.today()
    through = add_months(max(anchor, today), HORIZON_MONTHS)
    if until is not None:
        through = min(through, until)
    now = utcnow()
    started = await s.execute(
        dialect_insert(s, _RUNS)
        .values(
            id=str(uuid.uuid4()),
            plan=plan.code,
            person_id=person_id,
            source_ref=source_ref,
            anchor_on=anchor,
            until_on=until,
            generated_through=through,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    if started.rowcount != 1:  # type: ignore[attr-defined]
        return 0  # started before (another delivery, another replica), perhaps ended since
    windows = windows_between(
        plan,
        anchor,
        None,
        through,
        until=until,
        open_on=today if until is not None else None,
    )
    return await insert_tasks(s, plan, person, anchor, source_ref, windows)


async def end_runs(
    uow: UnitOfWork,
    person_id: str,
    on: date,
    reason: str,
    *,
    plan: str | None = None,
    anchored_by: date | None = None,
) -> int:
    """End a person's open runs (of ``plan``, else all; anchored on or before ``anchored_by``
    if given); the number ended. An ended run generates nothing more."""
    q = update(_RUNS).where(_RUNS.c.person_id == person_id, _RUNS.c.ended_on.is_(None))
    if plan is not None:
        q = q.where(_RUNS.c.plan == plan)
    if anchored_by is not None:
        q = q.where(_RUNS.c.anchor_on <= anchored_by)
    result = await uow.session.execute(
        q.values(
            ended_on=on,
            ended_reason=reason,
            version=_RUNS.c.version + 1,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def cancel_open_tasks(
    uow: UnitOfWork, person_id: str, reason: str, *, plan: str | None = None
) -> int:
    """Cancel a person's open tasks (of ``plan``, else all); closed ones stay as they were."""
    q = update(_TASKS).where(_TASKS.c.person_id == person_id, _TASKS.c.closed.is_(None))
    if plan is not None:
        q = q.where(_TASKS.c.plan == plan)
    result = await uow.session.execute(
        q.values(
            closed="cancelled",
            closed_reason=reason,
            version=_TASKS.c.version + 1,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def start_plans_for_event(
    uow: UnitOfWork, event: CloudEvent, subjects: dict[str, str], source_ref: str
) -> int:
    """Start every plan triggered by ``event.type`` for the person its subject names."""
    created = 0
    for plan in events.plans().values():
        if plan.trigger.event != event.type or plan.subject not in subjects:
            continue
        raw = event.data.get(plan.trigger.anchor)
        try:
            anchor = date.fromisoformat(str(raw))
        except ValueError as e:
            # A malformed event never becomes valid: dead-letter it with the reason.
            raise ValueError(f"{event.type}: anchor {plan.trigger.anchor}={raw!r}") from e
        created += await start_plan(uow, plan, subjects[plan.subject], anchor, source_ref)
    return created


async def record_death(uow: UnitOfWork, person_id: str, died_on: date) -> int:
    """Keep the death on the person's facts, end their runs and cancel their open tasks; the
    number cancelled."""
    person = await uow.session.get(PersonFacts, person_id)
    if person is None:
        # Without the facts a plan started later would not know of the death.
        raise RetryLater(f"person died: person {person_id} not known yet")
    person.died_on = died_on
    await end_runs(uow, person_id, died_on, "death")
    return await cancel_open_tasks(uow, person_id, "death")


# -- derived state ----------------------------------------------------------------------------


def state_expr(today: date) -> ColumnElement[str]:
    """``domain.plans.state_on`` in SQL: each window date is the first day of its state.
    A declined task (知情选择) reads as cancelled; ``closed`` says which."""
    return case(
        (Task.closed == "done", literal("done")),  # type: ignore[arg-type]
        (Task.closed.is_not(None), literal("cancelled")),  # type: ignore[union-attr]
        (Task.due_on > today, literal("scheduled")),  # type: ignore[arg-type]
        (Task.overdue_on > today, literal("due")),  # type: ignore[arg-type]
        (Task.expires_on > today, literal("overdue")),  # type: ignore[arg-type]
        else_=literal("missed"),
    )


# Urgency: overdue first (oldest overdue_on first), then due (by due_on), then scheduled, then
# what is past acting on.
_RANK = {"overdue": 0, "due": 1, "scheduled": 2, "missed": 3, "done": 4, "cancelled": 5}


def _rank_expr(state: ColumnElement[str]) -> ColumnElement[int]:
    return case(*((state == k, literal(v)) for k, v in _RANK.items()), else_=literal(9))


def _key_expr(state: ColumnElement[str]) -> ColumnElement[date]:
    return case(
        (state == "overdue", Task.overdue_on),  # type: ignore[arg-type]
        (state == "missed", Task.expires_on),  # type: ignore[arg-type]
        else_=Task.due_on,  # type: ignore[arg-type]
    )


# -- shapes -------------------------------------------------------------------------------------


class TaskOut(BaseModel):
    id: str
    plan: str
    plan_name: str
    step: str
    step_name: str
    service: str
    occurrence: int = Field(description="0 = the step's first run; repeats count up")
    person_id: str
    person_name: str | None = None
    region_code: str = Field(description="The person's village")
    tier: str
    assignee: str | None = Field(description="The assignee's sub; null: no assignment yet")
    anchor_on: date
    due_on: date = Field(description="First day due")
    overdue_on: date = Field(description="First day overdue")
    expires_on: date = Field(description="First day missed")
    state: TaskState = Field(description="Derived from the dates and today (Asia/Shanghai)")
    closed: str | None = Field(description="done / cancelled / declined, or null while open")
    closed_reason: str | None = None
    version: int
    created_at: datetime
    updated_at: datetime


def task_names(t: Task) -> tuple[str, str, str]:
    """A task's plan name, step name and service, as workers and residents read them. A next
    step from a visit record ("<step>_extra" / "<step>_referral", records.py) is named after
    the step it came from."""
    plan = events.plans().get(t.plan)
    step = plan.step(t.step) if plan else None
    suffix = ""
    if step is None and plan is not None:
        base, _, kind = t.step.rpartition("_")
        step = plan.step(base)
        suffix = {"extra": "（加访）", "referral": "（转诊乡镇卫生院）"}.get(kind, "")
    return (
        plan.name if plan else t.plan,
        step.name + suffix if step else t.step,
        step.service if step else "",
    )


def _task_out(t: Task, state: str, person_name: str | None) -> TaskOut:
    plan_name, step_name, service = task_names(t)
    return TaskOut(
        id=t.id,
        plan=t.plan,
        plan_name=plan_name,
        step=t.step,
        step_name=step_name,
        service=service,
        occurrence=t.occurrence,
        person_id=t.person_id,
        person_name=person_name,
        region_code=t.region_code,
        tier=t.tier,
        assignee=t.assignee,
        anchor_on=t.anchor_on,
        due_on=t.due_on,
        overdue_on=t.overdue_on,
        expires_on=t.expires_on,
        state=TaskState(state),
        closed=t.closed,
        closed_reason=t.closed_reason,
        version=t.version,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


class AssignmentIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    assignee_sub: str = Field(min_length=1, max_length=80, examples=["worker-330102001001"])
    assignee_name: str = Field(min_length=1, max_length=100, examples=["王芳"])
    version: int | None = Field(
        default=None, ge=1, description="The version you read; omit to create or overwrite"
    )


class AssignmentOut(BaseModel):
    area_code: str
    tier: Tier
    assignee_sub: str
    assignee_name: str
    updated_by: str
    updated_at: datetime
    version: int
    tasks_moved: int | None = Field(default=None, description="Open tasks moved by this change")


def _assignment_out(a: Assignment, moved: int | None = None) -> AssignmentOut:
    return AssignmentOut(
        area_code=a.area_code,
        tier=a.tier,  # type: ignore[arg-type]
        assignee_sub=a.assignee_sub,
        assignee_name=a.assignee_name,
        updated_by=a.updated_by,
        updated_at=a.updated_at,
        version=a.version,
        tasks_moved=moved,
    )


def parse_states(raw: str | None) -> list[str] | None:
    """``state=due,overdue`` -> the states, refusing unknown ones as a field error."""
    if raw is None or not raw.strip():
        return None
    states = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in states if p not in STATES]
    if unknown:
        raise Problem(
            422,
            "validation_failed",
            f"未知的任务状态：{', '.join(unknown)}（可选 {', '.join(STATES)}）",
            f"Unknown task state(s): {', '.join(unknown)} (one of {', '.join(STATES)})",
            errors=[{"field": "state", "message": "取值不在允许范围内"}],
        )
    return states


# -- assignments --------------------------------------------------------------------------------


def _changed() -> Problem:
    return Problem(
        409,
        "version_conflict",
        "分工已被他人同时修改，请刷新后重试",
        "The assignment was changed at the same time; reload",
    )


async def assign(
    uow: UnitOfWork, area: str, tier: Tier, body: AssignmentIn, principal: Principal
) -> AssignmentOut:
    """Set an area's assignee for a tier and move its open tasks to them, in one transaction:
    the assignment row is written with a guarded UPDATE (or inserted), then ONE UPDATE moves
    the tasks, and the change is announced through the outbox."""
    principal.require_region(area)
    s = uow.session
    current = await s.get(Assignment, (area, tier), populate_existing=True)
    expected = Expected(body.version, via_header=False) if body.version is not None else None
    previous = current.assignee_sub if current else None
    if current is None:
        if expected is not None:
            raise not_found("分工", "Assignment")
        current = Assignment(
            area_code=area,
            tier=tier,
            assignee_sub=body.assignee_sub,
            assignee_name=body.assignee_name,
            updated_by=principal.sub,
        )
        s.add(current)
        await s.flush()  # a racing insert fails here: the primary key (conflict, 409)
    else:
        seen = current.version if expected is None else expected.version
        q = (
            update(Assignment)
            .where(
                Assignment.area_code == area,  # type: ignore[arg-type]
                Assignment.tier == tier,  # type: ignore[arg-type]
                Assignment.version == seen,  # type: ignore[arg-type]
            )
            .values(
                assignee_sub=body.assignee_sub,
                assignee_name=body.assignee_name,
                updated_by=principal.sub,
                updated_at=utcnow(),
                version=Assignment.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if (await s.execute(q)).rowcount != 1:  # type: ignore[attr-defined]
            raise _changed()
        current = await s.get(Assignment, (area, tier), populate_existing=True)
        assert current is not None
    moved = await s.execute(
        update(_TASKS)
        .where(
            _TASKS.c.tier == tier,
            _TASKS.c.region_code.startswith(area, autoescape=True),
            _TASKS.c.closed.is_(None),
            or_(_TASKS.c.assignee.is_(None), _TASKS.c.assignee != body.assignee_sub),
        )
        .values(assignee=body.assignee_sub, version=_TASKS.c.version + 1, updated_at=utcnow())
    )
    tasks_moved = int(moved.rowcount or 0)  # type: ignore[attr-defined]
    uow.publish(
        events.AssignmentChanged(
            area_code=area,
            tier=tier,
            assignee_sub=body.assignee_sub,
            assignee_name=body.assignee_name,
            previous_assignee_sub=previous,
            tasks_moved=tasks_moved,
            version=current.version,
        ),
        subject=f"{area}:{tier}",
    )
    return _assignment_out(current, tasks_moved)


async def list_assignments(
    session: AsyncSession, principal: Principal, region: str | None
) -> list[AssignmentOut]:
    """The assignments of areas inside the caller's region (or ``region`` within it)."""
    scope = _scope(principal, region)
    q = select(Assignment).order_by(Assignment.area_code, Assignment.tier)  # type: ignore[arg-type]
    if scope:
        q = q.where(Assignment.area_code.startswith(scope, autoescape=True))  # type: ignore[attr-defined]
    return [_assignment_out(a) for a in (await session.scalars(q)).all()]


# -- reading ------------------------------------------------------------------------------------


def _own_only() -> Problem:
    return Problem(
        403, "forbidden", "居民只能查看本人的随访任务", "Residents see only their own tasks"
    )


def _scope(principal: Principal, region: str | None) -> str:
    """The region prefix a staff list covers: ``region`` if inside theirs, else theirs."""
    mine = principal.region_scope()
    if not mine:
        return region or ""
    if region is None:
        return mine
    principal.require_region(region)
    return region


async def list_tasks(
    session: AsyncSession,
    principal: Principal,
    today: date,
    *,
    assignee: str | None,
    region: str | None,
    person_id: str | None,
    states: list[str] | None,
    limit: int,
    cursor: str | None,
) -> Page[TaskOut]:
    """Most urgent first: overdue by overdue_on, due by due_on, scheduled by due_on, then
    missed and closed ones. The state, the filter and the cursor are computed in SQL from
    ``today``; a task changing state between two pages (the day turns) may move across the
    cursor, which a phone's next pull corrects."""
    state = state_expr(today)
    rank = _rank_expr(state)
    key = _key_expr(state)
    q = select(Task, state, PersonFacts.name).outerjoin(
        PersonFacts,
        PersonFacts.person_id == Task.person_id,  # type: ignore[arg-type]
    )
    if principal.role is Role.resident:
        if not principal.person_id or (person_id is not None and person_id != principal.person_id):
            raise _own_only()
        q = q.where(Task.person_id == principal.person_id)
    elif assignee == "me":
        q = q.where(Task.assignee == principal.sub)
    else:
        scope = _scope(principal, region)
        if scope:
            q = q.where(Task.region_code.startswith(scope, autoescape=True))  # type: ignore[attr-defined]
        if assignee == "none":
            q = q.where(Task.assignee.is_(None))  # type: ignore[union-attr]
        elif assignee is not None:
            q = q.where(Task.assignee == assignee)
    if person_id is not None:
        q = q.where(Task.person_id == person_id)
    if states:
        q = q.where(state.in_(states))
    after = decode_cursor(cursor, 3)
    if after:
        if not after[0].isdigit():
            raise Problem(422, "validation_failed", "分页游标无效", "Invalid cursor")
        r, d, i = int(after[0]), cursor_date(after[1]), after[2]
        q = q.where(
            or_(
                rank > r,
                and_(rank == r, key > d),
                and_(rank == r, key == d, Task.id > i),  # type: ignore[arg-type]
            )
        )
    q = q.order_by(rank, key, Task.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(q)).all())
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last, last_state = page[-1][0], page[-1][1]
        last_key = {"overdue": last.overdue_on, "missed": last.expires_on}.get(
            last_state, last.due_on
        )
        next_cursor = encode_cursor(_RANK[last_state], last_key.isoformat(), last.id)
    return Page[TaskOut](
        items=[_task_out(t, st, name) for t, st, name in page], next_cursor=next_cursor
    )


async def get_task(
    session: AsyncSession, task_id: str, principal: Principal, today: date
) -> TaskOut:
    row = (
        await session.execute(
            select(Task, state_expr(today), PersonFacts.name)
            .outerjoin(PersonFacts, PersonFacts.person_id == Task.person_id)  # type: ignore[arg-type]
            .where(Task.id == task_id)
        )
    ).first()
    if row is None:
        raise not_found("随访任务", "Task")
    t, state, name = row
    if principal.role is Role.resident:
        if principal.person_id != t.person_id:
            raise _own_only()
    elif t.assignee != principal.sub:
        principal.require_region(t.region_code)
    return _task_out(t, state, name)


# -- announcements ------------------------------------------------------------------------------


@dataclass
class AnnounceResult:
    as_of: date
    due: list[str] = field(default_factory=list)  # task ids announced due
    overdue: list[str] = field(default_factory=list)  # task ids announced overdue


async def run_task_announcements(rt: Runtime) -> None:
    """A worker: announce at start, then every ten minutes (the day turns in Beijing). Once a
    business day, first, the plan sweep (``plan_runs.sweep_plans``): age plans for persons
    entering their range, repeats generated further."""
    swept_on: date | None = None
    while True:
        today = rt.clock.today()
        if swept_on != today:
            try:
                swept = await rt.inflight.run(plan_runs.sweep_plans(rt, today))
                swept_on = today
                if swept.runs_started or swept.runs_extended:
                    log.info(
                        "plan sweep %s: %d runs started, %d extended, %d tasks created",
                        swept.as_of,
                        swept.runs_started,
                        swept.runs_extended,
                        swept.tasks_created,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("plan sweep failed; next in %ds", ANNOUNCE_INTERVAL_SECONDS)
        try:
            result = await rt.inflight.run(announce(rt, rt.clock.today()))
            if result.due or result.overdue:
                log.info(
                    "task announcements %s: %d due, %d overdue",
                    result.as_of,
                    len(result.due),
                    len(result.overdue),
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task announcements failed; next in %ds", ANNOUNCE_INTERVAL_SECONDS)
        await asyncio.sleep(ANNOUNCE_INTERVAL_SECONDS)


async def announce(rt: Runtime, as_of: date) -> AnnounceResult:
    """Publish ``task.due`` for open tasks due on ``as_of`` and ``task.overdue`` for those
    overdue, once each.

    Candidates are selected in SQL; each is marked by a guarded UPDATE (``*_announced_at IS
    NULL``, still open, still in the state) with its event in the outbox in the same commit, so
    replicas sweeping at once announce each task once. A task already overdue when first seen
    (generated late) is announced overdue only.
    """
    result = AnnounceResult(as_of=as_of)
    t = _TASKS
    open_ = t.c.closed.is_(None)
    is_due = and_(t.c.due_on <= as_of, t.c.overdue_on > as_of)
    is_overdue = and_(t.c.overdue_on <= as_of, t.c.expires_on > as_of)
    for kind, in_state, mark in (
        ("due", is_due, t.c.due_announced_at),
        ("overdue", is_overdue, t.c.overdue_announced_at),
    ):
        async with rt.db.session() as s:
            ids = list(
                (
                    await s.scalars(
                        select(t.c.id).where(open_, in_state, mark.is_(None)).order_by(t.c.id)
                    )
                ).all()
            )
        for task_id in ids:
            async with rt.uow() as uow:
                marked = await uow.session.execute(
                    update(t)
                    .where(t.c.id == task_id, open_, in_state, mark.is_(None))
                    .values({mark.name: utcnow()})
                )
                if marked.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another replica announced it, or it closed meanwhile
                task = await uow.session.get(Task, task_id, populate_existing=True)
                assert task is not None
                plan_name, step_name, _ = task_names(task)
                if kind == "due":
                    uow.publish(
                        events.TaskDue(
                            task_id=task.id,
                            plan=task.plan,
                            plan_name=plan_name,
                            step=task.step,
                            step_name=step_name,
                            person_id=task.person_id,
                            assignee=task.assignee,
                            region_code=task.region_code,
                            due_on=task.due_on,
                            overdue_on=task.overdue_on,
                        ),
                        subject=task.id,
                    )
                    result.due.append(task.id)
                else:
                    uow.publish(
                        events.TaskOverdue(
                            task_id=task.id,
                            plan=task.plan,
                            plan_name=plan_name,
                            step=task.step,
                            step_name=step_name,
                            person_id=task.person_id,
                            assignee=task.assignee,
                            region_code=task.region_code,
                            overdue_on=task.overdue_on,
                            expires_on=task.expires_on,
                        ),
                        subject=task.id,
                    )
                    result.overdue.append(task.id)
                await uow.commit()
    return result


def validate_tier_area(area: str, tier: str) -> None:
    """Path parameters: a tier and an area of the matching length, as problem+json."""
    if tier not in AREA_DIGITS:
        raise Problem(
            422,
            "validation_failed",
            f"层级应为 {', '.join(TIERS)} 之一",
            f"tier must be one of {', '.join(TIERS)}",
            errors=[{"field": "tier", "message": "取值不在允许范围内"}],
        )
    if not area.isdigit() or len(area) != AREA_DIGITS[tier]:
        raise Problem(
            422,
            "validation_failed",
            f"{tier} 层级的辖区代码应为 {AREA_DIGITS[tier]} 位数字",
            f"A {tier} area is {AREA_DIGITS[tier]} digits",
            errors=[{"field": "area", "message": "格式不正确"}],
        )
