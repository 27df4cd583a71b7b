"""registry's indicators (统计指标, issue 8): certificate applications per region and month.

Every figure comes from registry's own tables with set-based SQL grouped by the breakdown
prefix of the application's village code (``applications.region_code``). The application log
(``application_actions``) is the source of truth for when an application was closed: an issue
is the ``approve`` entry leading to ``issued``, a rejection the ``reject`` entry. Timestamps
are compared with the month's Asia/Shanghai bounds; a timestamp's local calendar day (for the
due date and the processing days) is taken in SQL, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Date, Select, and_, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from services.registry.models import Application, ApplicationAction
from services.registry.usecases.applications import ON_THE_CLOCK
from shared.clock import SHANGHAI
from shared.reports import (
    Indicator,
    IndicatorValue,
    ReportScope,
    count_value,
    quantile_value,
    rate_value,
)

if TYPE_CHECKING:
    from shared.service import Runtime

RECEIVED = Indicator(
    code="applications_received",
    name="证件申请收件数",
    unit="count",
    formula=(
        "Certificate applications submitted in the month (applications.created_at within the "
        "month, Asia/Shanghai), whatever their later fate, including those awaiting missing "
        "materials; region: the application's village code."
    ),
)
ISSUED = Indicator(
    code="applications_issued",
    name="证件办结发证数",
    unit="count",
    formula=(
        "Applications issued in the month: log entries 'approve' leading to status 'issued' "
        "timestamped within the month (a certificate revoked later still counts); region: the "
        "application's village code."
    ),
)
REJECTED = Indicator(
    code="applications_rejected",
    name="证件不予批准数",
    unit="count",
    formula=(
        "Applications rejected in the month: log entries 'reject' timestamped within the "
        "month; region: the application's village code."
    ),
)
ON_TIME = Indicator(
    code="on_time_completion_rate",
    name="限时办结率",
    unit="rate",
    formula=(
        "Of the applications closed (issued or rejected) in the month (denominator), those "
        "whose closing log entry falls on or before their due date, the day taken in "
        "Asia/Shanghai (numerator); region: the application's village code."
    ),
)
MEDIAN_DAYS = Indicator(
    code="processing_days.median",
    name="办理天数中位数",
    unit="days",
    formula=(
        "Median (nearest rank) of calendar days from submission (applications.created_at) to "
        "the closing log entry (issue or rejection), both as Asia/Shanghai days, over the "
        "applications closed in the month; region: the application's village code."
    ),
)
P90_DAYS = Indicator(
    code="processing_days.p90",
    name="办理天数第90百分位",
    unit="days",
    formula=(
        "90th percentile (nearest rank) of calendar days from submission "
        "(applications.created_at) to the closing log entry (issue or rejection), both as "
        "Asia/Shanghai days, over the applications closed in the month; region: the "
        "application's village code."
    ),
)
OVERDUE = Indicator(
    code="applications_overdue",
    name="超期未办结数",
    unit="count",
    formula=(
        "Applications open on the statutory clock (status submitted or in_review, read from "
        "the last log entry written up to the end of the report day) whose due date is before "
        "the report day (the month's last day, or today in the current month); region: the "
        "application's village code."
    ),
)
AGENT_SHARE = Indicator(
    code="agent_submission_share",
    name="代办申请占比",
    unit="rate",
    formula=(
        "Of the applications submitted in the month (denominator, as applications_received), "
        "those submitted by a village agent on the resident's behalf (submitted_via = 'agent') "
        "(numerator); region: the application's village code."
    ),
)

INDICATORS: tuple[Indicator, ...] = (
    RECEIVED,
    ISSUED,
    REJECTED,
    ON_TIME,
    MEDIAN_DAYS,
    P90_DAYS,
    OVERDUE,
    AGENT_SHARE,
)

# The log entries that close an application, with the status each leads to.
_CLOSING = and_(
    ApplicationAction.action.in_(("approve", "reject")),  # type: ignore[attr-defined]
    ApplicationAction.to_status.in_(("issued", "rejected")),  # type: ignore[attr-defined]
)


async def compute(rt: Runtime, scope: ReportScope) -> list[IndicatorValue]:
    """registry's indicators for one region and month (``ServiceSpec.indicators``)."""
    sqlite = rt.db.is_sqlite
    apps, actions = Application.__table__, ApplicationAction.__table__
    a, log = apps.c, actions.c
    start, end = scope.month.start, scope.month.end
    in_region = a.region_code.like(f"{scope.region}%")
    part = _part(scope, a.region_code)
    closed_on = _local_day(log.at, sqlite)
    submitted_on = _local_day(a.created_at, sqlite)
    closed_in_month = and_(_CLOSING, log.at >= start, log.at < end, in_region)
    # The report day's end: the log up to then says what was open on that day.
    cutoff = datetime.combine(scope.as_of + timedelta(days=1), time(0), SHANGHAI).astimezone(UTC)
    last_entry = (
        select(log.application_id, func.max(log.id).label("last_id"))
        .where(log.at < cutoff)
        .group_by(log.application_id)
        .subquery()
    )
    state = actions.alias("state")

    async with rt.db.session() as s:
        received = await _rows(
            s,
            _grouped(
                part,
                func.count(),
                func.sum(case((a.submitted_via == "agent", 1), else_=0)),
            ).where(in_region, a.created_at >= start, a.created_at < end),
        )
        closures = await _rows(
            s,
            _grouped(
                part,
                func.sum(case((log.to_status == "issued", 1), else_=0)),
                func.sum(case((log.to_status == "rejected", 1), else_=0)),
                func.count(),
                func.sum(case((closed_on <= a.due_date, 1), else_=0)),
            )
            .select_from(actions.join(apps, a.id == log.application_id))
            .where(closed_in_month),
        )
        overdue = await _rows(
            s,
            _grouped(part, func.count())
            .select_from(
                last_entry.join(state, state.c.id == last_entry.c.last_id).join(
                    apps, a.id == last_entry.c.application_id
                )
            )
            .where(in_region, state.c.to_status.in_(ON_THE_CLOCK), a.due_date < scope.as_of),
        )
        # Quantiles need the values themselves: one row per application closed in the month.
        days = (
            await s.execute(
                select(
                    part if part is not None else literal_column("''"),
                    _days_between(submitted_on, closed_on, sqlite),
                )
                .select_from(actions.join(apps, a.id == log.application_id))
                .where(closed_in_month)
            )
        ).all()

    durations = [(str(r), float(d)) for r, d in days]
    return [
        count_value(RECEIVED, _col(received, 0), scope),
        count_value(ISSUED, _col(closures, 0), scope),
        count_value(REJECTED, _col(closures, 1), scope),
        rate_value(ON_TIME, _col(closures, 3), _col(closures, 2), scope),
        quantile_value(MEDIAN_DAYS, durations, 0.5, scope),
        quantile_value(P90_DAYS, durations, 0.9, scope),
        count_value(OVERDUE, _col(overdue, 0), scope),
        rate_value(AGENT_SHARE, _col(received, 1), _col(received, 0), scope),
    ]


def _part(scope: ReportScope, column: Any) -> ColumnElement[Any] | None:
    """The breakdown region of a village code; the digits are inlined, not bound, so that
    PostgreSQL sees the same expression in SELECT and GROUP BY."""
    digits = scope.breakdown_digits
    if digits is None:
        return None
    return func.substr(column, literal_column("1"), literal_column(str(digits)))


def _grouped(part: ColumnElement[Any] | None, *aggregates: Any) -> Select[Any]:
    if part is None:  # a village: nothing below it, one row
        return select(literal_column("''"), *aggregates)
    return select(part, *aggregates).group_by(part)


async def _rows(session: Any, query: Select[Any]) -> dict[str, tuple[float, ...]]:
    """Per breakdown region, the aggregates (a region without rows is absent, not zero)."""
    out: dict[str, tuple[float, ...]] = {}
    for region, *values in (await session.execute(query)).all():
        if any(values):  # the ungrouped query answers even without rows: COUNT 0, SUM NULL
            out[str(region)] = tuple(float(v or 0) for v in values)
    return out


def _col(rows: Mapping[str, tuple[float, ...]], i: int) -> dict[str, float]:
    return {region: values[i] for region, values in rows.items()}


def _local_day(column: Any, sqlite: bool) -> ColumnElement[Any]:
    """A UTC timestamp's calendar day in Asia/Shanghai (UTC+8 all year, no daylight saving)."""
    if sqlite:  # stored as UTC text: date() shifts and truncates it; compares with DATE text
        return func.date(column, literal_column("'+8 hours'"))
    return cast(func.timezone(literal_column("'Asia/Shanghai'"), column), Date)


def _days_between(first: ColumnElement[Any], last: ColumnElement[Any], sqlite: bool) -> Any:
    if sqlite:
        return func.julianday(last) - func.julianday(first)
    return last - first  # date - date: whole days on PostgreSQL
