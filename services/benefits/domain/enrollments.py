"""How an enrollment ends: the reason, and the last period it is paid for.

Pure: no I/O. Periods are Chinese calendar months (Asia/Shanghai): an aware datetime is first
moved to Beijing time, a date is taken as it is (registry's dates are already Beijing dates).

- certificate revoked: paid through the month of revocation, nothing "from the next period";
- death: paid for the month of death, nothing after it (a death on the 31st or on the 1st
  both end with that month).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, NamedTuple

from services.benefits.domain.programs import Period

EndReason = Literal["certificate_revoked", "death"]
END_REASONS: frozenset[str] = frozenset({"certificate_revoked", "death"})


class Ending(NamedTuple):
    reason: str
    ends_after: Period  # the last period paid; nothing is due from the next one


def ending(reason: str, on: date | datetime) -> Ending:
    """The ending of an enrollment for ``reason`` happening ``on`` (revocation or death day)."""
    if reason not in END_REASONS:
        raise ValueError(f"unknown ending reason {reason!r}")
    return Ending(reason, Period.of(on))
