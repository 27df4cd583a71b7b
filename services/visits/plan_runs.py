"""Plan runs (a person's enrollment in a plan) over time: age plans, the extension sweep, a
plan ended by a procedure, and a person who moves.

Age plans (two-cancer screening for women 35-64). No event starts them: a person is started
when visits learns of them (person.registered / person.updated) and the daily plan sweep starts
those entering the range, both with one rule (``age_window``): the sex matches, the range has
not ended, and its first birthday falls within ``HORIZON_MONTHS`` (a girl of ten gets no run
until she is 33). The run is anchored at the birthday of the first age (``source_ref`` "age")
and generates the rounds due within the range whose window is still open on the day it
starts: a woman first seen at 50 gets no "missed" rounds for the years visits did not know her.

Extension. ``start_plan`` generates repeats up to ``HORIZON_MONTHS`` ahead and the run keeps
how far (``generated_through``). The sweep extends the open runs that fall behind: each in its
own transaction, moved on by a guarded UPDATE (``generated_through`` as read, still open)
before its tasks are inserted (ON CONFLICT DO NOTHING), so two replicas sweeping at once
extend each run once. A run is taken up again when it is less than ``HORIZON_MONTHS`` -
``EXTEND_SLACK_MONTHS`` ahead, so the daily sweep touches a run about once a month rather
than every day; its tasks are still generated at least 23 months before they fall due.

Moves. A person's open tasks follow them within the county (new village, reassigned by tier to
the new area's assignee); a move to another county cancels them (``moved_away``) and ends the
runs: that county's system takes over.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, exists, literal, or_, select, update

# Module references: events.py imports this module for its handlers.
from services.visits import events, tasks
from services.visits.domain.plans import AGE, Plan, add_months, age_span
from services.visits.models import PersonFacts, PlanRun, Task
from shared.db import dialect_insert, utcnow
from shared.events.outbox import UnitOfWork

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.visits.plan_runs")

AGE_SOURCE = "age"
EXTEND_SLACK_MONTHS = 1
# A procedure that ends a plan early: the plan, and the reason its run and tasks carry.
ENDED_BY_PROCEDURE: dict[str, tuple[str, str]] = {"iud_removal": ("iud_followup", "iud_removed")}
# The first digits of a division code that name its county (区县).
COUNTY_DIGITS = 6

_TASKS = Task.__table__
_RUNS = PlanRun.__table__


def age_plans() -> list[Plan]:
    return [p for p in events.plans().values() if p.trigger.event == AGE]


def age_window(plan: Plan, sex: str, birth_date: date, today: date) -> tuple[date, date] | None:
    """(anchor, last day) of an age plan for a person on ``today``, or None when it is not
    (yet) theirs: another sex, the range over, or its first birthday beyond the horizon."""
    if plan.trigger.sex is not None and sex != plan.trigger.sex:
        return None
    anchor, until = age_span(plan, birth_date)
    if until < today or anchor > add_months(today, tasks.HORIZON_MONTHS):
        return None
    return anchor, until


async def start_age_plans(uow: UnitOfWork, person_id: str, today: date | None = None) -> int:
    """Start the age plans that are the person's now; the number of tasks created."""
    person = await uow.session.get(PersonFacts, person_id)
    if person is None or person.died_on is not None:
        return 0
    today = today or uow.clock.today()
    created = 0
    for plan in age_plans():
        span = age_window(plan, person.sex, person.birth_date, today)
        if span is not None:
            created += await tasks.start_plan(
                uow, plan, person_id, span[0], AGE_SOURCE, until=span[1], today=today
            )
    return created


# -- a plan ended by a procedure ----------------------------------------------------------------


async def end_plan_for_procedure(
    uow: UnitOfWork, person_id: str, procedure: str, performed_on: date
) -> int:
    """IUD removed: the person's IUD follow-up runs anchored by then end and their open tasks
    are cancelled (done ones stay); the number of tasks cancelled."""
    ended = ENDED_BY_PROCEDURE.get(procedure)
    if ended is None:
        return 0
    plan, reason = ended
    await tasks.end_runs(uow, person_id, performed_on, reason, plan=plan, anchored_by=performed_on)
    result = await uow.session.execute(
        update(_TASKS)
        .where(
            _TASKS.c.person_id == person_id,
            _TASKS.c.plan == plan,
            _TASKS.c.closed.is_(None),
            _TASKS.c.anchor_on <= performed_on,
        )
        .values(
            closed="cancelled",
            closed_reason=reason,
            version=_TASKS.c.version + 1,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- a person moves -----------------------------------------------------------------------------


def same_county(a: str, b: str) -> bool:
    return a[:COUNTY_DIGITS] == b[:COUNTY_DIGITS]


async def move_person(uow: UnitOfWork, person_id: str, old_region: str, new_region: str) -> int:
    """The person's open tasks follow them to ``new_region`` (reassigned by tier), or are
    cancelled with their runs ended when it is in another county; the number of tasks changed.
    Closed tasks stay as they were."""
    s = uow.session
    if old_region == new_region:
        return 0
    if not same_county(old_region, new_region):
        today = uow.clock.today()
        await tasks.end_runs(uow, person_id, today, "moved_away")
        # Age plans not started yet are not started for them later either (the sweep would
        # otherwise find a woman entering the range): an ended run says so.
        person = await s.get(PersonFacts, person_id)
        now = utcnow()
        for plan in age_plans():
            if person is None or (plan.trigger.sex and person.sex != plan.trigger.sex):
                continue
            anchor, until = age_span(plan, person.birth_date)
            await s.execute(
                dialect_insert(s, _RUNS)
                .values(
                    id=str(uuid.uuid4()),
                    plan=plan.code,
                    person_id=person_id,
                    source_ref=AGE_SOURCE,
                    anchor_on=anchor,
                    until_on=until,
                    generated_through=anchor - timedelta(days=1),
                    ended_on=today,
                    ended_reason="moved_away",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
        return await tasks.cancel_open_tasks(uow, person_id, "moved_away")
    assignees = await tasks._assignees(s, new_region)
    assignee = case(
        *((_TASKS.c.tier == t, literal(assignees.get(t))) for t in tasks.AREA_DIGITS),
        else_=literal(None),
    )
    result = await s.execute(
        update(_TASKS)
        .where(_TASKS.c.person_id == person_id, _TASKS.c.closed.is_(None))
        .values(
            region_code=new_region,
            assignee=assignee,
            version=_TASKS.c.version + 1,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- the plan sweep -----------------------------------------------------------------------------


@dataclass
class PlanSweepResult:
    as_of: date
    runs_started: int = 0  # age plans started for persons entering their range
    runs_extended: int = 0  # runs whose repeats were generated further
    tasks_created: int = 0


async def sweep_plans(rt: Runtime, as_of: date) -> PlanSweepResult:
    """Start age plans for persons entering their range, then extend the runs that fall
    behind; each person or run in its own transaction. Safe to run again, and on two replicas
    at once."""
    result = PlanSweepResult(as_of=as_of)
    await _start_age_plans(rt, as_of, result)
    await _extend_runs(rt, as_of, result)
    return result


async def _start_age_plans(rt: Runtime, as_of: date, result: PlanSweepResult) -> None:
    horizon = add_months(as_of, tasks.HORIZON_MONTHS)
    for plan in age_plans():
        assert plan.trigger.ages is not None
        first, last = plan.trigger.ages
        # Born late enough to be in the range on as_of, early enough to enter it within the
        # horizon; a day of slack each way for 29 February, age_window decides exactly.
        born_from = add_months(as_of, -12 * (last + 1)) - timedelta(days=1)
        born_to = add_months(horizon, -12 * first) + timedelta(days=1)
        has_run = exists().where(
            PlanRun.plan == plan.code,  # type: ignore[arg-type]
            PlanRun.person_id == PersonFacts.person_id,  # type: ignore[arg-type]
            PlanRun.source_ref == AGE_SOURCE,  # type: ignore[arg-type]
        )
        q = (
            select(PersonFacts.person_id, PersonFacts.birth_date)
            .where(
                PersonFacts.died_on.is_(None),  # type: ignore[union-attr]
                PersonFacts.birth_date >= born_from,  # type: ignore[arg-type]
                PersonFacts.birth_date <= born_to,  # type: ignore[arg-type]
                ~has_run,
            )
            .order_by(PersonFacts.person_id)
        )
        if plan.trigger.sex is not None:
            q = q.where(PersonFacts.sex == plan.trigger.sex)  # type: ignore[arg-type]
        async with rt.db.session() as s:
            candidates = list((await s.execute(q)).all())
        for person_id, birth_date in candidates:
            span = age_window(plan, plan.trigger.sex or "", birth_date, as_of)
            if span is None:
                continue
            async with rt.uow() as uow:
                if await _run_exists(uow, plan.code, person_id):
                    continue  # started meanwhile (the handler, another replica)
                created = await tasks.start_plan(
                    uow, plan, person_id, span[0], AGE_SOURCE, until=span[1], today=as_of
                )
                if await _run_exists(uow, plan.code, person_id):
                    result.runs_started += 1
                result.tasks_created += created
                await uow.commit()


async def _run_exists(uow: UnitOfWork, plan: str, person_id: str) -> bool:
    found = await uow.session.scalar(
        select(_RUNS.c.id).where(
            _RUNS.c.plan == plan, _RUNS.c.person_id == person_id, _RUNS.c.source_ref == AGE_SOURCE
        )
    )
    return found is not None


async def _extend_runs(rt: Runtime, as_of: date, result: PlanSweepResult) -> None:
    repeating = {
        code: plan
        for code, plan in events.plans().items()
        if any(step.repeat is not None for step in plan.steps)
    }
    if not repeating:
        return
    target = add_months(as_of, tasks.HORIZON_MONTHS)
    behind = add_months(as_of, tasks.HORIZON_MONTHS - EXTEND_SLACK_MONTHS)
    async with rt.db.session() as s:
        ids = list(
            (
                await s.scalars(
                    select(_RUNS.c.id)
                    .where(
                        _RUNS.c.plan.in_(sorted(repeating)),
                        _RUNS.c.ended_on.is_(None),
                        _RUNS.c.generated_through < behind,
                        # An age plan's run is done generating once it reached its last day.
                        or_(
                            _RUNS.c.until_on.is_(None),
                            _RUNS.c.generated_through < _RUNS.c.until_on,
                        ),
                    )
                    .order_by(_RUNS.c.id)
                )
            ).all()
        )
    for run_id in ids:
        async with rt.uow() as uow:
            created = await _extend_run(uow, run_id, repeating, target, as_of)
            if created is None:
                continue  # rolled back: another replica extended it, or it ended meanwhile
            result.runs_extended += 1
            result.tasks_created += created
            await uow.commit()


async def _extend_run(
    uow: UnitOfWork, run_id: str, repeating: dict[str, Plan], target: date, as_of: date
) -> int | None:
    s = uow.session
    run = (await s.execute(select(_RUNS).where(_RUNS.c.id == run_id))).first()
    if run is None or run.ended_on is not None:
        return None
    through = min(target, run.until_on) if run.until_on is not None else target
    if through <= run.generated_through:
        return None
    moved = await s.execute(
        update(_RUNS)
        .where(
            and_(
                _RUNS.c.id == run_id,
                _RUNS.c.generated_through == run.generated_through,
                _RUNS.c.ended_on.is_(None),
            )
        )
        .values(generated_through=through, version=_RUNS.c.version + 1, updated_at=utcnow())
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    person = await s.get(PersonFacts, run.person_id)
    if person is None or person.died_on is not None:
        return 0  # the death ends the run when its event is handled
    plan = repeating[run.plan]
    windows = tasks.windows_between(
        plan,
        run.anchor_on,
        run.generated_through,
        through,
        until=run.until_on,
        open_on=as_of if run.until_on is not None else None,
    )
    return await tasks.insert_tasks(s, plan, person, run.anchor_on, run.source_ref, windows)
