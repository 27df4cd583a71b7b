"""Statutory time limits in working days on the official Chinese holiday calendar.

``chinese-calendar`` knows each year's official schedule (holidays and make-up working days)
only once the State Council publishes it; for a year it does not cover yet we fall back to
Monday–Friday minus a configurable holiday list, and never crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import chinese_calendar


def is_working_day(day: date, fallback_holidays: Iterable[date] = ()) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5 and day not in set(fallback_holidays)


def add_working_days(start: date, days: int, fallback_holidays: Iterable[date] = ()) -> date:
    """The date ``days`` working days after ``start`` (the day of submission does not count)."""
    holidays = frozenset(fallback_holidays)
    day = start
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            remaining -= 1
    return day
