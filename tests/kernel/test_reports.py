"""The reports kernel: months in Asia/Shanghai, regions and their breakdown, rates and
quantiles as the indicators compute them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.errors import Problem
from shared.reports import (
    Indicator,
    IndicatorReport,
    Month,
    count_value,
    nearest_rank,
    quantile_value,
    rate_value,
    report_csv,
    report_scope,
)

TODAY = date(2026, 11, 23)
RATE = Indicator("on_time", "按时率", "rate", "done on time / due")


def test_a_month_is_a_shanghai_calendar_month_in_utc() -> None:
    m = Month.parse("2026-02")
    assert (m.first_day, m.last_day, m.next_first_day) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
        date(2026, 3, 1),
    )
    # 1 February 00:00 in Beijing is 31 January 16:00 UTC.
    assert m.start == datetime(2026, 1, 31, 16, tzinfo=UTC)
    assert Month.parse("2026-12").next_first_day == date(2027, 1, 1)
    assert str(Month.parse("2027-01").previous()) == "2026-12"


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "0000-01", "26-01", "2026-00"])
def test_a_malformed_month_is_refused(text: str) -> None:
    with pytest.raises(Problem) as e:
        Month.parse(text)
    assert e.value.status == 422


def test_the_scope_is_inside_the_callers_region_and_breaks_down_one_level() -> None:
    county = report_scope("330102", None, None, TODAY)
    assert (county.region, county.level, county.breakdown_digits) == ("330102", "county", 9)
    assert county.part_of("330102001001") == "330102001"
    township = report_scope("330102", "330102001", "2026-10", TODAY)
    assert (township.level, township.part_of("330102001001")) == ("township", "330102001001")
    assert township.as_of == date(2026, 10, 31)  # a past month: taken at its end
    assert county.as_of == TODAY  # this month: taken today
    village = report_scope("330102001", "330102001001", None, TODAY)
    assert village.breakdown_digits is None and village.part_of("330102001001") is None
    for region, status in (("330103", 403), ("3301020", 422)):
        with pytest.raises(Problem) as e:
            report_scope("330102", region, None, TODAY)
        assert e.value.status == status
    with pytest.raises(Problem):
        report_scope("330102", None, "2026-12", TODAY)  # not begun


def test_a_rate_of_nothing_is_null_not_zero_or_one() -> None:
    scope = report_scope("330102", None, None, TODAY)
    v = rate_value(RATE, {"330102001": 3, "330102002": 0}, {"330102001": 4, "330102002": 0}, scope)
    assert (v.value, v.numerator, v.denominator) == (0.75, 3, 4)
    assert [(r.region, r.value) for r in v.by_region] == [("330102001", 0.75), ("330102002", None)]
    assert rate_value(RATE, {}, {}, scope).value is None


def test_quantiles_are_nearest_rank_values_that_occurred() -> None:
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([5], 0.9) == 5
    assert nearest_rank([1, 2, 3, 4], 0.5) == 2
    assert nearest_rank(list(range(1, 11)), 0.9) == 9
    scope = report_scope("330102", None, None, TODAY)
    days = Indicator("days_p50", "办理天数中位数", "days", "median")
    v = quantile_value(days, [("330102001", 3), ("330102001", 9), ("330102002", 5)], 0.5, scope)
    assert (v.value, v.denominator) == (5, 3)
    assert [(r.region, r.value) for r in v.by_region] == [("330102001", 3), ("330102002", 5)]


def test_csv_has_a_row_per_indicator_and_region() -> None:
    scope = report_scope("330102", None, None, TODAY)
    count = Indicator("received", "受理数", "count", "received in the month")
    report = IndicatorReport(
        service="registry",
        region="330102",
        level="county",
        month="2026-11",
        as_of=TODAY,
        generated_at=datetime(2026, 11, 23, tzinfo=UTC),
        indicators=[count_value(count, {"330102001": 2, "330102002": 1}, scope)],
    )
    lines = report_csv([report]).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("service,month,region,level,indicator")
    assert [line.split(",")[2:5] for line in lines[1:]] == [
        ["330102", "county", "received"],
        ["330102001", "township", "received"],
        ["330102002", "township", "received"],
    ]
    assert lines[1].split(",")[7] == "3"
