"""Statutory time limits in working days on the official Chinese calendar, with a fallback."""

from __future__ import annotations

from datetime import date

import chinese_calendar
import pytest

from services.registry.domain.workdays import add_working_days, is_working_day


def calendar_covers(year: int) -> bool:
    """Whether the installed chinese-calendar knows ``year``'s official schedule."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def test_the_installed_calendar_covers_2025_and_not_2099() -> None:
    """The tests below rely on 2025 being known and 2099 not."""
    assert calendar_covers(2025)
    assert not calendar_covers(2099)
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2099, 1, 5))


# -- National Day 2025: Oct 1-8 off; Sun Sep 28 and Sat Oct 11 are make-up working days -----


@pytest.mark.parametrize("day", [date(2025, 10, d) for d in range(1, 9)])
def test_national_day_2025_holidays_are_not_working_days(day: date) -> None:
    """Oct 1-8 2025 are days off, including the weekdays among them."""
    assert is_working_day(day) is False


@pytest.mark.parametrize("day", [date(2025, 9, 28), date(2025, 10, 11)])
def test_make_up_weekend_days_are_working_days(day: date) -> None:
    """Sunday Sep 28 and Saturday Oct 11 2025 are official working days."""
    assert day.weekday() >= 5
    assert is_working_day(day) is True


def test_ordinary_weekend_is_not_a_working_day() -> None:
    """An ordinary Saturday is a day off."""
    assert is_working_day(date(2025, 10, 18)) is False


def test_one_working_day_before_national_day_lands_on_the_sunday_make_up_day() -> None:
    """From Friday Sep 26, the next working day is Sunday Sep 28 (Saturday is off)."""
    assert add_working_days(date(2025, 9, 26), 1) == date(2025, 9, 28)


def test_the_day_after_submission_across_the_holiday_is_october_9() -> None:
    """Submitted Sep 30: the whole holiday is skipped, the first working day is Oct 9."""
    assert add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)


def test_counting_through_the_saturday_make_up_day() -> None:
    """Oct 9, Oct 10, then Saturday Oct 11 counts; Sunday Oct 12 does not."""
    assert add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 11)
    assert add_working_days(date(2025, 9, 30), 4) == date(2025, 10, 13)


def test_twenty_working_day_limit_across_national_day() -> None:
    """The 20-working-day limit of a certificate submitted Sep 30 2025 ends Nov 4 2025."""
    assert add_working_days(date(2025, 9, 30), 20) == date(2025, 11, 4)


def test_submission_on_a_holiday_counts_from_the_next_working_day() -> None:
    """The day of submission never counts, even when it is itself a holiday."""
    assert add_working_days(date(2025, 10, 3), 1) == date(2025, 10, 9)


@pytest.mark.parametrize("days", [0, -1])
def test_zero_or_negative_days_is_the_start_date(days: int) -> None:
    """No working days to add: the limit is the start date itself."""
    assert add_working_days(date(2025, 10, 3), days) == date(2025, 10, 3)


# -- Spring Festival 2026: Feb 15-23 off; Sat Feb 14 and Sat Feb 28 are working days --------


@pytest.mark.skipif(not calendar_covers(2026), reason="installed chinese-calendar lacks 2026")
def test_spring_festival_2026() -> None:
    """Across Spring Festival 2026 the holiday is skipped and the make-up Saturdays count."""
    assert is_working_day(date(2026, 2, 14)) is True
    assert all(not is_working_day(date(2026, 2, d)) for d in range(15, 24))
    assert add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert add_working_days(date(2026, 2, 14), 5) == date(2026, 2, 28)


# -- a year the calendar does not cover: Monday-Friday minus the fallback list ---------------


def test_uncovered_year_falls_back_to_monday_to_friday() -> None:
    """2099 is unknown: weekdays work, weekends do not, and nothing crashes."""
    assert is_working_day(date(2099, 1, 1)) is True  # a Thursday
    assert is_working_day(date(2099, 1, 3)) is False  # a Saturday
    assert add_working_days(date(2098, 12, 31), 2) == date(2099, 1, 2)


def test_uncovered_year_honours_the_fallback_holiday_list() -> None:
    """Fallback holidays are skipped like weekends in a year the calendar lacks."""
    holidays = [date(2099, 1, 1), date(2099, 1, 2)]
    assert is_working_day(date(2099, 1, 1), holidays) is False
    assert is_working_day(date(2099, 1, 5), holidays) is True
    assert add_working_days(date(2098, 12, 31), 2, holidays) == date(2099, 1, 6)


def test_fallback_list_may_be_a_one_shot_iterable() -> None:
    """A generator of holidays is honoured on every day counted, not just the first."""
    holidays = (d for d in [date(2099, 1, 1), date(2099, 1, 2), date(2099, 1, 5)])
    assert add_working_days(date(2098, 12, 31), 2, holidays) == date(2099, 1, 7)


def test_fallback_list_does_not_override_the_official_calendar() -> None:
    """In a covered year the official schedule wins over the fallback list."""
    assert is_working_day(date(2025, 10, 9), [date(2025, 10, 9)]) is True
    assert is_working_day(date(2025, 10, 11), [date(2025, 10, 11)]) is True


def test_year_before_the_calendar_starts_falls_back_too() -> None:
    """Years before the calendar's first year also fall back to Monday-Friday."""
    assert not calendar_covers(2003)
    assert is_working_day(date(2003, 10, 1)) is True  # a Wednesday, no fallback list
    assert is_working_day(date(2003, 10, 1), [date(2003, 10, 1)]) is False


@pytest.mark.skipif(
    not calendar_covers(2026) or calendar_covers(2027),
    reason="needs a calendar that covers 2026 but not 2027",
)
def test_year_end_from_a_covered_year_into_an_uncovered_one() -> None:
    """Dec 31 2026 counts on the official calendar, Jan 2027 on the fallback."""
    assert is_working_day(date(2026, 12, 31)) is True
    assert add_working_days(date(2026, 12, 30), 3) == date(2027, 1, 4)
    assert add_working_days(date(2026, 12, 30), 3, [date(2027, 1, 1)]) == date(2027, 1, 5)


def test_year_end_into_the_first_uncovered_year() -> None:
    """Whatever the installed calendar's last year is, counting across its end never crashes."""
    last = 2004
    while calendar_covers(last + 1):
        last += 1
    new_year = date(last + 1, 1, 1)
    start = date(last, 12, 24)
    plain = add_working_days(start, 10)
    with_holiday = add_working_days(start, 10, [new_year])
    assert plain.year == last + 1
    # A fallback holiday on a weekday of the uncovered year pushes the limit out by one day.
    if new_year.weekday() < 5:
        assert with_holiday > plain
    else:
        assert with_holiday == plain
