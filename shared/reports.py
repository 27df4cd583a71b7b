"""Indicators (统计指标): each defined once, with its formula, computed by the service that owns
the data, for a region and a month (DESIGN §8, issue 8).

A service lists its indicators as ``Indicator`` definitions and computes them with one function
``(Runtime, ReportScope) -> list[IndicatorValue]`` (``ServiceSpec.indicators``). The kernel
serves them at ``GET /api/v1/reports/indicators?region=&month=&format=json|csv`` on every
service, to officers and the bureau's system, confined to the caller's region.

Regions are division-code prefixes: a county has 6 digits, a township 9, a village 12 (every
record carries its 12-digit village code). A report for a region also breaks each indicator
down one level below it: a county by township, a township by village.

Months are Asia/Shanghai calendar months. Flow indicators (received, issued, paid ...) count
what happened inside the month; stock indicators (overdue now, enrolled) are taken at the end
of the month, or now for the current month. A rate is ``numerator / denominator`` with both
given, and null when the denominator is 0 (no "100 %" of nothing).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from shared.clock import SHANGHAI
from shared.errors import Problem

Unit = Literal["count", "rate", "days", "fen", "seconds"]
LEVELS = {6: "county", 9: "township", 12: "village"}
_MONTH = re.compile(r"^([1-9]\d{3})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Indicator:
    """One indicator, defined once: its code, Chinese name, unit and formula (documentation
    the report carries, so a figure is never shown without what it counts)."""

    code: str
    name: str
    unit: Unit
    formula: str


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        m = _MONTH.match(text)
        if not m:
            raise Problem(
                422,
                "validation_failed",
                "month 应为 YYYY-MM",
                "month must be YYYY-MM",
                errors=[{"field": "month", "message": "应为 YYYY-MM"}],
            )
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first_day(self) -> date:
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def last_day(self) -> date:
        return self.next_first_day - timedelta(days=1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def start(self) -> datetime:
        """The month's first instant (Asia/Shanghai), as UTC: compare timestamps with it."""
        return datetime.combine(self.first_day, time(0), SHANGHAI).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The next month's first instant, as UTC (exclusive)."""
        return datetime.combine(self.next_first_day, time(0), SHANGHAI).astimezone(UTC)


@dataclass(frozen=True)
class ReportScope:
    """What a report is asked for: a region prefix and a month, and the business day it is
    computed on (``today``): stock indicators of the current month are taken on that day."""

    region: str
    month: Month
    today: date

    @property
    def level(self) -> str:
        return LEVELS[len(self.region)]

    @property
    def breakdown_digits(self) -> int | None:
        """How many digits of a village code name the level below the region (None: none)."""
        return {6: 9, 9: 12}.get(len(self.region))

    @property
    def as_of(self) -> date:
        """The day stock indicators are taken: the month's last day, or today if earlier."""
        return min(self.month.last_day, self.today)

    def part_of(self, region_code: str) -> str | None:
        """The breakdown region a record's village code belongs to."""
        digits = self.breakdown_digits
        return region_code[:digits] if digits else None


class RegionValue(BaseModel):
    region: str
    value: float | None
    numerator: float | None = None
    denominator: float | None = None


class IndicatorValue(BaseModel):
    code: str
    name: str
    unit: Unit
    formula: str
    value: float | None = Field(description="null for a rate whose denominator is 0")
    numerator: float | None = None
    denominator: float | None = None
    by_region: list[RegionValue] = Field(
        default_factory=list, description="One level below the report's region"
    )


class IndicatorReport(BaseModel):
    service: str
    region: str
    level: str
    month: str
    as_of: date
    generated_at: datetime
    indicators: list[IndicatorValue]


# -- building values ------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def count_value(
    indicator: Indicator, per_region: Mapping[str, float], scope: ReportScope
) -> IndicatorValue:
    """A count (or sum) given per breakdown region (key "" when the report has no breakdown)."""
    total = float(sum(per_region.values()))
    return IndicatorValue(
        **_head(indicator),
        value=total,
        by_region=[
            RegionValue(region=r, value=float(v)) for r, v in sorted(per_region.items()) if r
        ],
    )


def rate_value(
    indicator: Indicator,
    numerators: Mapping[str, float],
    denominators: Mapping[str, float],
    scope: ReportScope,
) -> IndicatorValue:
    """A rate from numerators and denominators per breakdown region."""
    num, den = float(sum(numerators.values())), float(sum(denominators.values()))
    regions = sorted(set(numerators) | set(denominators))
    return IndicatorValue(
        **_head(indicator),
        value=ratio(num, den),
        numerator=num,
        denominator=den,
        by_region=[
            RegionValue(
                region=r,
                value=ratio(numerators.get(r, 0), denominators.get(r, 0)),
                numerator=float(numerators.get(r, 0)),
                denominator=float(denominators.get(r, 0)),
            )
            for r in regions
            if r
        ],
    )


def quantile_value(
    indicator: Indicator,
    samples: Iterable[tuple[str, float]],
    q: float,
    scope: ReportScope,
) -> IndicatorValue:
    """A quantile (``q`` = 0.5 for the median) of samples ``(breakdown region, value)``, by the
    nearest-rank method (a value that occurred, not an interpolation); null without samples."""
    by: dict[str, list[float]] = {}
    every: list[float] = []
    for region, v in samples:
        by.setdefault(region, []).append(v)
        every.append(v)
    return IndicatorValue(
        **_head(indicator),
        value=nearest_rank(every, q),
        denominator=float(len(every)),
        by_region=[
            RegionValue(region=r, value=nearest_rank(vs, q), denominator=float(len(vs)))
            for r, vs in sorted(by.items())
            if r
        ],
    )


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(q * n), at least 1
    return float(ordered[int(rank) - 1])


def _head(indicator: Indicator) -> dict[str, Any]:
    return {
        "code": indicator.code,
        "name": indicator.name,
        "unit": indicator.unit,
        "formula": indicator.formula,
    }


# A service's indicators: computed from its own database for one scope (ServiceSpec.indicators).
Compute = Callable[[Any, ReportScope], Awaitable[list[IndicatorValue]]]


# -- the request ----------------------------------------------------------------------------

# The query parameters of every report route (a service's indicators, the monthly report).
RegionQuery = Annotated[
    str | None,
    Query(
        pattern=r"^(\d{6}|\d{9}|\d{12})$",
        description="County (6 digits), township (9) or village (12); default yours",
    ),
]
MonthQuery = Annotated[
    str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default this month")
]
FormatQuery = Annotated[str, Query(pattern="^(json|csv)$")]


def report_scope(
    principal_scope: str, region: str | None, month: str | None, today: date
) -> ReportScope:
    """The scope asked for, inside the caller's region (``principal.region_scope()``)."""
    wanted = region or principal_scope
    if len(wanted) not in LEVELS or not wanted.isdigit():
        raise Problem(
            422,
            "validation_failed",
            "region 应为 6 位（县）、9 位（乡镇）或 12 位（村）区划代码",
            "region must be a 6 (county), 9 (township) or 12 (village) digit division code",
            errors=[{"field": "region", "message": "应为 6、9 或 12 位区划代码"}],
        )
    if not wanted.startswith(principal_scope):
        raise Problem(
            403, "out_of_region", "该区域不在您负责的辖区内", "This region is outside yours"
        )
    asked = Month.parse(month) if month else Month.of(today)
    if asked.first_day > today:
        raise Problem(
            422,
            "validation_failed",
            "不能统计尚未开始的月份",
            "That month has not begun",
            errors=[{"field": "month", "message": "不能晚于本月"}],
        )
    return ReportScope(wanted, asked, today)


def report_csv(reports: Iterable[IndicatorReport]) -> str:
    """One row per indicator and region: the report's region first, then its breakdown."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [
            "service",
            "month",
            "region",
            "level",
            "indicator",
            "name",
            "unit",
            "value",
            "numerator",
            "denominator",
            "formula",
        ]
    )
    for rep in reports:
        for ind in rep.indicators:
            rows = [(rep.region, rep.level, ind.value, ind.numerator, ind.denominator)]
            below = LEVELS.get(len(rep.region) + 3, "")
            rows += [(r.region, below, r.value, r.numerator, r.denominator) for r in ind.by_region]
            for region, level, value, num, den in rows:
                w.writerow(
                    [
                        rep.service,
                        rep.month,
                        region,
                        level,
                        ind.code,
                        ind.name,
                        ind.unit,
                        _cell(value),
                        _cell(num),
                        _cell(den),
                        ind.formula,
                    ]
                )
    return "\ufeff" + out.getvalue()  # the BOM: spreadsheet programs then read UTF-8


def _cell(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


# -- the catalogue --------------------------------------------------------------------------

CATALOGUE_HEAD = """# Indicators

Generated from the code by `lingju indicators` (each service's `INDICATORS` in its
`reports.py`); `tests/kernel/test_indicator_catalogue.py` fails when this file is not what the
code says. How indicators are computed and served: architecture.md, "Reports".

Every indicator is computed by the service that owns its data, for a region (county: 6 digits,
township: 9, village: 12) and an Asia/Shanghai calendar month, and broken down one level
below the region. A record belongs to a region by its 12-digit village code. Flow indicators
count what happened in the month; stock indicators are taken on the month's last day, or on
the report's day for the current month. A rate is null when its denominator is 0.
"""


def catalogue_markdown(services: Iterable[str]) -> str:
    """docs/indicators.md: every service's indicators, in the order each defines them."""
    import importlib

    parts = [CATALOGUE_HEAD]
    for service in services:
        try:
            indicators = importlib.import_module(f"services.{service}.reports").INDICATORS
        except ModuleNotFoundError:
            continue
        parts.append(f"\n## {service}\n\n| code | name | unit | formula |\n|---|---|---|---|\n")
        for i in indicators:
            formula = i.formula.replace("|", "\\|").replace("\n", " ")
            parts.append(f"| `{i.code}` | {i.name} | {i.unit} | {formula} |\n")
    return "".join(parts)
