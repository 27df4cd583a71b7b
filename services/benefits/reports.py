"""benefits's indicators (统计指标, issue 8): enrollments and payments, per region and month.

Each indicator is defined once below with its formula; ``compute`` counts them from benefits's
own tables with set-based SQL (one GROUP BY per indicator family, grouped by the breakdown
prefix of the record's village code), on SQLite and PostgreSQL alike.

What the data allows: an enrollment keeps when it was created and confirmed, and for an ending
the last payable month (``ends_after``), but no date of its ending, suspension or resumption.
So "enrolled at the end of a month" takes confirmation by its timestamp, an ending by its last
payable month, and a suspension by the current status (a suspended enrollment is left out of
every month: when it was suspended is not kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select

from services.benefits.events import programs
from services.benefits.models import Enrollment, PaymentLine, PaymentRun
from shared.clock import SHANGHAI
from shared.reports import (
    Indicator,
    IndicatorValue,
    ReportScope,
    count_value,
    quantile_value,
    rate_value,
)
from shared.service import Runtime

# Programs with enrollments (capped reimbursements are paid on claims, never enrolled in).
_ENROLLED_PROGRAMS = tuple(p for p in programs().values() if p.cap_fen is None)
_ALL_PROGRAMS = tuple(programs().values())

_ENROLLED_RULE = (
    "confirmed (confirmed_at) before the end of the as-of day (the month's last day, or today"
    " for the current month, Asia/Shanghai) and not ended by then: status active, or ended with"
    " its last payable month (ends_after) after the report month; a currently suspended"
    " enrollment is not counted (no suspension date is kept); region: the enrollment's village"
    " code (region_code)."
)
_PAID_RULE = (
    "payment lines with status paid (the bank's return file said paid) of the payment runs"
    " whose period is the report month; region: the line's village code (region_code)."
)

ENROLLED = Indicator(
    code="enrolled",
    name="在册享受人数",
    unit="count",
    formula="Count of enrollments of every program " + _ENROLLED_RULE,
)
ENROLLED_BY_PROGRAM = {
    p.code: Indicator(
        code=f"enrolled.{p.code}",
        name=f"在册享受人数（{p.name}）",
        unit="count",
        formula=f"Count of enrollments of program {p.code} " + _ENROLLED_RULE,
    )
    for p in _ENROLLED_PROGRAMS
}
CONFIRMATION_LAG = Indicator(
    code="confirmation_lag_days",
    name="待遇资格审核确认用时中位数（天）",
    unit="days",
    formula=(
        "Median (nearest rank) of confirmed_at minus created_at, in days (to 0.01), over the"
        " enrollments whose confirmed_at falls in the report month (Asia/Shanghai); region: the"
        " enrollment's village code (region_code); null when none was confirmed."
    ),
)
PAID_FEN = Indicator(
    code="paid_fen",
    name="发放金额（分）",
    unit="fen",
    formula="Sum of amount_fen of the " + _PAID_RULE,
)
PAID_FEN_BY_PROGRAM = {
    p.code: Indicator(
        code=f"paid_fen.{p.code}",
        name=f"发放金额（分，{p.name}）",
        unit="fen",
        formula=f"Sum of amount_fen, for program {p.code}, of the " + _PAID_RULE,
    )
    for p in _ALL_PROGRAMS
}
PAYMENT_SUCCESS_RATE = Indicator(
    code="payment_success_rate",
    name="对账后发放成功率",
    unit="rate",
    formula=(
        "Payment lines with status paid divided by those with a bank result (paid or failed),"
        " of the payment runs whose period is the report month; lines not yet reconciled"
        " (exported), held or pending are in neither; region: the line's village code"
        " (region_code); null when no line has a result."
    ),
)

INDICATORS: tuple[Indicator, ...] = (
    ENROLLED,
    *ENROLLED_BY_PROGRAM.values(),
    CONFIRMATION_LAG,
    PAID_FEN,
    *PAID_FEN_BY_PROGRAM.values(),
    PAYMENT_SUCCESS_RATE,
)


def _part(column: Any, scope: ReportScope) -> Any:
    """The breakdown region of a record's village code ("" when the report has none)."""
    digits = scope.breakdown_digits
    return func.substr(column, 1, digits) if digits else literal("")


def _in_region(column: Any, scope: ReportScope) -> ColumnElement[bool]:
    return column.like(scope.region + "%")


def end_of_as_of(scope: ReportScope) -> datetime:
    """The first instant after the as-of day (Asia/Shanghai), as UTC."""
    after = scope.as_of + timedelta(days=1)
    return datetime.combine(after, time(0), SHANGHAI).astimezone(UTC)


async def compute(rt: Runtime, scope: ReportScope) -> list[IndicatorValue]:
    async with rt.db.session() as s:
        # Enrolled at the end of the month (or today), per program and breakdown region.
        part = _part(Enrollment.region_code, scope).label("part")
        enrolled_rows = await s.execute(
            select(Enrollment.program, part, func.count())
            .where(
                _in_region(Enrollment.region_code, scope),
                Enrollment.confirmed_at < end_of_as_of(scope),  # type: ignore[operator]
                or_(
                    Enrollment.status == "active",
                    and_(Enrollment.status == "ended", Enrollment.ends_after > str(scope.month)),  # type: ignore[operator]
                ),
            )
            .group_by(Enrollment.program, part)
        )
        enrolled: dict[str, dict[str, float]] = {}
        for program, region, n in enrolled_rows:
            enrolled.setdefault(program, {})[region] = n

        # Confirmation lag: the month's confirmations (one row each: two timestamps).
        lag_rows = await s.execute(
            select(part, Enrollment.created_at, Enrollment.confirmed_at).where(
                _in_region(Enrollment.region_code, scope),
                Enrollment.confirmed_at >= scope.month.start,  # type: ignore[operator]
                Enrollment.confirmed_at < scope.month.end,  # type: ignore[operator]
            )
        )
        lags = [
            (region, round((confirmed - created).total_seconds() / 86400, 2))
            for region, created, confirmed in lag_rows
        ]

        # Lines of the month's runs: paid fen per program, and paid / failed counts.
        line_part = _part(PaymentLine.region_code, scope).label("part")
        line_rows = await s.execute(
            select(
                PaymentLine.program,
                line_part,
                PaymentLine.status,
                func.count(),
                func.coalesce(func.sum(PaymentLine.amount_fen), 0),
            )
            .join(PaymentRun, PaymentRun.id == PaymentLine.run_id)
            .where(
                PaymentRun.period == str(scope.month),
                _in_region(PaymentLine.region_code, scope),
                PaymentLine.status.in_(("paid", "failed")),  # type: ignore[attr-defined]
            )
            .group_by(PaymentLine.program, line_part, PaymentLine.status)
        )
        paid_fen: dict[str, dict[str, float]] = {}
        paid_lines: dict[str, float] = {}
        answered_lines: dict[str, float] = {}
        for program, region, status, n, fen in line_rows:
            answered_lines[region] = answered_lines.get(region, 0) + n
            if status == "paid":
                paid_lines[region] = paid_lines.get(region, 0) + n
                by_region = paid_fen.setdefault(program, {})
                by_region[region] = by_region.get(region, 0) + int(fen)

    return [
        count_value(ENROLLED, _total(enrolled), scope),
        *(
            count_value(ind, enrolled.get(code, {}), scope)
            for code, ind in ENROLLED_BY_PROGRAM.items()
        ),
        quantile_value(CONFIRMATION_LAG, lags, 0.5, scope),
        count_value(PAID_FEN, _total(paid_fen), scope),
        *(
            count_value(ind, paid_fen.get(code, {}), scope)
            for code, ind in PAID_FEN_BY_PROGRAM.items()
        ),
        rate_value(PAYMENT_SUCCESS_RATE, paid_lines, answered_lines, scope),
    ]


def _total(by_program: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Per breakdown region, summed over the programs."""
    total: dict[str, float] = {}
    for per_region in by_program.values():
        for region, value in per_region.items():
            total[region] = total.get(region, 0) + value
    return total
