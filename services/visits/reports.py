"""Visits' indicators (统计指标, issue 8): follow-up work, postpartum visits, two-cancer
screening and appointments, per region and month, from visits' own tables (shared/reports.py).

Every figure is one set-based query grouped by the breakdown prefix of the record's village
code (a task's ``region_code``, an appointment's ``person_region``). A visit's day is its
Asia/Shanghai calendar date (``performed_at`` is stored in UTC), computed in SQL by
``shanghai_date``.

What counts as done, and when. A task is closed ``done`` or ``declined`` by the one visit record
that closed it (records.py), so the record's day is the day it was done; ``cancelled`` tasks
(death, a move out of the county, an IUD removed) have no such day kept and leave every figure.
A ``declined`` task is the person's informed refusal (知情选择, DESIGN §1.3): neither a success
nor a failure, it leaves every rate, so a rate never pushes a worker against a person's choice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Date, case, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.visits.models import Appointment, Slot, Task, VisitRecord
from shared.reports import (
    Indicator,
    IndicatorValue,
    ReportScope,
    count_value,
    rate_value,
)

if TYPE_CHECKING:
    from shared.service import Runtime

# The plan and step codes of plans.toml these indicators name (a county renaming them in the
# plan file would have to rename them here too).
POSTPARTUM_PLAN, POSTPARTUM_FIRST_VISIT = "postpartum", "home_visit_1"
SCREENING_PLAN = "two_cancer_screening"

FOLLOWUP_ON_TIME = Indicator(
    code="followup_on_time_rate",
    name="随访落实率（按时完成）",
    unit="rate",
    formula=(
        "Tasks of every plan (next-step tasks included) whose overdue_on (their first overdue "
        "day) falls in the month, up to the report day: numerator those done by a visit whose "
        "Asia/Shanghai date is before overdue_on, denominator all of them; declined tasks "
        "(informed refusal) and cancelled tasks are left out of both. Region: the task's "
        "village code."
    ),
)
TASKS_OVERDUE = Indicator(
    code="tasks_overdue",
    name="逾期未随访任务数",
    unit="count",
    formula=(
        "Tasks overdue on the report day (the month's last day, or today): overdue_on <= that "
        "day < expires_on, and not closed by a visit on or before it (still open, or done or "
        "declined by a visit dated later); cancelled and missed (past expires_on) tasks are "
        "not counted. Region: the task's village code."
    ),
)
POSTPARTUM_IN_WINDOW = Indicator(
    code="postpartum_first_visit_in_window_rate",
    name="产后首次家庭访视及时率",
    unit="rate",
    formula=(
        "First postpartum home visits (plan postpartum, step home_visit_1) whose due_on falls "
        "in the month: numerator those done by a visit whose Asia/Shanghai date is before "
        "overdue_on (within the week after the approximated discharge), denominator all of "
        "them; declined and cancelled tasks are left out of both. Final once the month's last "
        "window has closed. Region: the mother's village code on the task."
    ),
)
SCREENING_COVERAGE = Indicator(
    code="two_cancer_screening_coverage_rate",
    name="两癌筛查覆盖率（年度累计）",
    unit="rate",
    formula=(
        "Women with a two-cancer screening round (plan two_cancer_screening) due from 1 January "
        "of the month's year to the month's end, counted once each: numerator those with such "
        "a round done by a visit dated on or before the report day, denominator all of them; "
        "rounds declined or cancelled are left out. Region: the woman's village code on the "
        "task."
    ),
)
APPOINTMENT_NO_SHOW = Indicator(
    code="appointment_no_show_rate",
    name="预约爽约率",
    unit="rate",
    formula=(
        "Appointments whose slot started in the month (Asia/Shanghai; up to now for the "
        "current month) and that were not cancelled: numerator those marked no_show, "
        "denominator all of them (attended, no_show, or still booked). Region: the booked "
        "person's village code (person_region)."
    ),
)

INDICATORS: tuple[Indicator, ...] = (
    FOLLOWUP_ON_TIME,
    TASKS_OVERDUE,
    POSTPARTUM_IN_WINDOW,
    SCREENING_COVERAGE,
    APPOINTMENT_NO_SHOW,
)


class shanghai_date(FunctionElement[date]):
    """The Asia/Shanghai calendar date of a UTC timestamp column, in SQL (no DST in China)."""

    type = Date()
    inherit_cache = True


@compiles(shanghai_date, "sqlite")
def _shanghai_date_sqlite(element: shanghai_date, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the UTC wall time as text; date() answers 'YYYY-MM-DD', as Date is stored.
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


@compiles(shanghai_date, "postgresql")
def _shanghai_date_pg(element: shanghai_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Shanghai' AS DATE)"


def _part(column: Any, scope: ReportScope) -> ColumnElement[str]:
    """The breakdown region a village code belongs to ("" when the report has none)."""
    digits = scope.breakdown_digits
    return func.substr(column, 1, digits) if digits else literal("")


def _in_region(column: Any, scope: ReportScope) -> ColumnElement[bool]:
    return column.startswith(scope.region, autoescape=True)  # type: ignore[no-any-return]


def _sum(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


async def compute(rt: Runtime, scope: ReportScope) -> list[IndicatorValue]:
    """Visits' indicators for ``scope`` (``ServiceSpec.indicators``)."""
    t, v = Task.__table__.c, VisitRecord.__table__.c
    visit_day = shanghai_date(v.performed_at)
    month = scope.month
    # A task joined with the visit that closed it, if any (at most one: records.py).
    tasks = Task.__table__.outerjoin(VisitRecord.__table__, v.task_id == t.id)
    not_excluded = or_(t.closed.is_(None), t.closed == "done")
    part = _part(t.region_code, scope).label("part")
    now: datetime = min(month.end, rt.clock.now())

    async with rt.db.session() as s:
        on_time = await s.execute(
            select(part, func.count(), _sum((t.closed == "done") & (visit_day < t.overdue_on)))
            .select_from(tasks)
            .where(
                _in_region(t.region_code, scope),
                t.overdue_on >= month.first_day,
                t.overdue_on <= scope.as_of,
                not_excluded,
            )
            .group_by(part)
        )
        on_time_rows = on_time.all()

        overdue = await s.execute(
            select(part, func.count())
            .select_from(tasks)
            .where(
                _in_region(t.region_code, scope),
                t.overdue_on <= scope.as_of,
                t.expires_on > scope.as_of,
                or_(
                    t.closed.is_(None),
                    t.closed.in_(("done", "declined")) & (visit_day > scope.as_of),
                ),
            )
            .group_by(part)
        )
        overdue_rows = overdue.all()

        postpartum = await s.execute(
            select(part, func.count(), _sum((t.closed == "done") & (visit_day < t.overdue_on)))
            .select_from(tasks)
            .where(
                _in_region(t.region_code, scope),
                t.plan == POSTPARTUM_PLAN,
                t.step == POSTPARTUM_FIRST_VISIT,
                t.due_on >= month.first_day,
                t.due_on < month.next_first_day,
                not_excluded,
            )
            .group_by(part)
        )
        postpartum_rows = postpartum.all()

        screened = case(
            ((t.closed == "done") & (visit_day <= scope.as_of), t.person_id), else_=None
        )
        screening = await s.execute(
            select(
                part,
                func.count(func.distinct(t.person_id)),
                func.count(func.distinct(screened)),
            )
            .select_from(tasks)
            .where(
                _in_region(t.region_code, scope),
                t.plan == SCREENING_PLAN,
                t.due_on >= date(month.year, 1, 1),
                t.due_on < month.next_first_day,
                not_excluded,
            )
            .group_by(part)
        )
        screening_rows = screening.all()

        a, sl = Appointment.__table__.c, Slot.__table__.c
        apart = _part(a.person_region, scope).label("part")
        no_show = await s.execute(
            select(apart, func.count(), _sum(a.status == "no_show"))
            .select_from(Appointment.__table__.join(Slot.__table__, sl.id == a.slot_id))
            .where(
                _in_region(a.person_region, scope),
                sl.starts_at >= month.start,
                sl.starts_at < now,
                a.status != "cancelled",
            )
            .group_by(apart)
        )
        no_show_rows = no_show.all()

    def rate(indicator: Indicator, rows: list[Any]) -> IndicatorValue:
        return rate_value(
            indicator,
            {r[0]: int(r[2] or 0) for r in rows},
            {r[0]: int(r[1]) for r in rows},
            scope,
        )

    return [
        rate(FOLLOWUP_ON_TIME, on_time_rows),
        count_value(TASKS_OVERDUE, {r[0]: int(r[1]) for r in overdue_rows}, scope),
        rate(POSTPARTUM_IN_WINDOW, postpartum_rows),
        rate(SCREENING_COVERAGE, screening_rows),
        rate(APPOINTMENT_NO_SHOW, no_show_rows),
    ]
