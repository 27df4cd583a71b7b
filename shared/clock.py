"""The county's clock: business days and months are Asia/Shanghai's (DESIGN §4)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    """Now, as an aware datetime in Asia/Shanghai."""
    return datetime.now(SHANGHAI)


def today() -> date:
    """Today in the county: at 2025-01-31T20:00Z it is already 1 February there."""
    return now().date()
