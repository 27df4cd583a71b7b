"""The county's clock: business days and months are Asia/Shanghai's (DESIGN §4).

Business code asks the clock it was given for today's date — ``rt.clock`` in a route or a
worker, ``uow.clock`` in a use case or an event handler — never the module functions below
directly, so a test moves a service through time by setting its runtime's clock
(``FixedClock``) instead of patching a module. Timestamps of rows and events (``utcnow``)
stay on the real clock: they say when something was written, not which business day it is.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from fastapi import Query

SHANGHAI = ZoneInfo("Asia/Shanghai")

# The days a caller may name as a business day (``as_of`` of the admin sweeps): the calendar
# arithmetic around them (ages, plan intervals, months back) stays inside date's years 1-9999.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)

# The ``?as_of=`` of a route that runs a sweep for a given business day (default: today).
AsOfQuery = Annotated[
    date | None,
    Query(ge=EARLIEST_DAY, le=LATEST_DAY, description="The business day; default today"),
]


def now() -> datetime:
    """Now, as an aware datetime in Asia/Shanghai."""
    return datetime.now(SHANGHAI)


def today() -> date:
    """Today in the county: at 2025-01-31T20:00Z it is already 1 February there."""
    return now().date()


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    """The real clock (every service in production)."""

    def now(self) -> datetime:
        return now()

    def today(self) -> date:
        return today()


class FixedClock:
    """A clock that stands still where a test puts it (time travel without sleeps)."""

    def __init__(self, at: datetime | date) -> None:
        self._at = self._aware(at)

    @staticmethod
    def _aware(at: datetime | date) -> datetime:
        if isinstance(at, datetime):
            return at if at.tzinfo else at.replace(tzinfo=SHANGHAI)
        return datetime.combine(at, time(9, 0), SHANGHAI)  # a working morning

    def set(self, at: datetime | date) -> None:
        self._at = self._aware(at)

    def advance(self, *, days: int = 0, hours: int = 0) -> None:
        self._at += timedelta(days=days, hours=hours)

    def now(self) -> datetime:
        return self._at

    def today(self) -> date:
        return self._at.astimezone(SHANGHAI).date()
