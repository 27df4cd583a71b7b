"""The rules of an enrollment's life: which months it pays, how it moves, how it ends.

Pure: no I/O. Periods are Chinese calendar months (Asia/Shanghai): an aware datetime is first
moved to Beijing time, a date is taken as it is (registry's dates are already Beijing dates).

Lifecycle (maker-checker: the officer who confirms is never the one who prepared it)::

    pending_review --confirm--> active --suspend--> suspended --resume--> active
    pending_review --reject--> ended            any open status --end--> ended

Endings, each with the last period paid (``ends_after``; nothing is due from the next one):

- certificate revoked: paid through the month of revocation, nothing "from the next period";
- death: paid for the month of death, nothing after it (a death on the 31st or on the 1st
  both end with that month);
- child died (the only child of a reward's holders): paid through the month of that death;
- age out: paid through the last month of the window (``pays_until``), e.g. the month before
  a child's 3rd or 18th birthday month;
- rejected: never confirmed, so nothing is owed: the last payable period is the one before
  ``pays_from`` (an empty window).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, NamedTuple

from services.benefits.domain.eligibility import Eligibility, month_of_birthday
from services.benefits.domain.programs import Period

EndReason = Literal["certificate_revoked", "death", "child_died", "age_out", "rejected"]
END_REASONS: frozenset[str] = frozenset(
    {"certificate_revoked", "death", "child_died", "age_out", "rejected"}
)

OPEN = frozenset({"pending_review", "active", "suspended"})

# Why money sent for months after an ending is to be recovered (ledger corrections, zh-CN).
OVERPAID_ZH: dict[str, str] = {
    "death": "死亡后多发，待追回",
    "child_died": "子女去世后多发，待追回",
    "certificate_revoked": "证件注销后多发，待追回",
    "age_out": "超龄后多发，待追回",
    "rejected": "未获确认的发放，待追回",
}

# Why an enrollment ended, as the person reads it (the ``reason_name`` of enrollment.ended).
ENDED_ZH: dict[str, str] = {
    "certificate_revoked": "所依据的证件已注销",
    "death": "享受人去世",
    "child_died": "子女去世，按政策转由其他项目扶助",
    "age_out": "已不在享受年龄范围内",
    "rejected": "审核未通过",
}


class Ending(NamedTuple):
    reason: str
    ends_after: Period  # the last period paid; nothing is due from the next one


def ending(reason: str, on: date | datetime | Period) -> Ending:
    """The ending of an enrollment for ``reason`` happening ``on`` (a day, or a period)."""
    if reason not in END_REASONS:
        raise ValueError(f"unknown ending reason {reason!r}")
    return Ending(reason, on if isinstance(on, Period) else Period.of(on))


def rejection(pays_from: Period) -> Ending:
    """A rejected enrollment owes nothing: its window closes before its first period."""
    return Ending("rejected", pays_from.previous())


def capped_until(pays_until: Period | None, ends_after: Period) -> Period:
    """Every ending caps the window: ``min(pays_until, ends_after)`` (None is open-ended).

    The payment run pays an ended, once-confirmed enrollment for its months up to
    ``pays_until`` not yet settled (the month of death, say), and never a month after it.
    """
    return ends_after if pays_until is None else min(pays_until, ends_after)


def overpaid_months(
    ends_after: Period, settled_through: Period | None, pays_from: Period
) -> tuple[Period, Period] | None:
    """The months already sent to the bank after the last payable one, as (first, last), or
    None. Only months from ``pays_from`` on were ever paid: a death recorded late, before the
    enrollment's first month, recovers only what was sent."""
    if settled_through is None or settled_through <= ends_after:
        return None
    first = max(ends_after.next(), pays_from)
    if settled_through < first:
        return None
    return first, settled_through


def pays_window(
    eligibility: Eligibility, not_before: Period | None = None
) -> tuple[Period, Period | None] | None:
    """The months an enrollment founded on ``eligibility`` pays: its window, starting no
    earlier than ``not_before`` (e.g. the certificate's issue month). None: nothing is owed
    (no window, or it closes before it would open)."""
    start, until = eligibility.from_period, eligibility.until_period
    if start is None:
        return None
    if not_before is not None and not_before > start:
        start = not_before
    if until is not None and until < start:
        return None
    return start, until


def aged_out(pays_until: Period | None, period: Period) -> bool:
    """An enrollment whose window closed before ``period`` has aged out."""
    return pays_until is not None and pays_until < period


def reached_age(birth_date: date, age: int, period: Period) -> bool:
    """Whether the ``age``-th birthday month is at or before ``period`` (the sweep's test: a
    29 February birthday counts in February, whatever the year)."""
    return month_of_birthday(birth_date, age) <= period


# -- transitions --------------------------------------------------------------------------------

Action = Literal["confirm", "reject", "suspend", "resume"]

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "confirm": (frozenset({"pending_review"}), "active"),
    "reject": (frozenset({"pending_review"}), "ended"),
    "suspend": (frozenset({"active"}), "suspended"),
    "resume": (frozenset({"suspended"}), "active"),
}


class InvalidTransition(ValueError):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} an enrollment that is {status}")
        self.action = action
        self.status = status


def next_status(action: str, status: str) -> str:
    """The status after ``action``; raises InvalidTransition when ``status`` does not allow it."""
    allowed, target = TRANSITIONS[action]
    if status not in allowed:
        raise InvalidTransition(action, status)
    return target
