"""A recipient's preferences as pure rules (no I/O): which of a route's channels they still
want, when quiet hours hold a message back, and the morning digest's day and text.

Quiet hours are Asia/Shanghai wall times. A window may cross midnight (21:00-08:00) or not
(12:00-14:00); its start is inclusive and its end exclusive; a window whose start equals its
end is no window at all. Only the channels that wake a phone (SMS, WeChat) wait; the inbox
and webhooks never do, and a critical category ignores quiet hours altogether.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from shared.clock import SHANGHAI

QUIET_CHANNELS = ("sms", "wechat")
ALWAYS_ON = "app"  # the inbox is the record of what the person was told: never turned off

MORE_TEXT = "……另有 {n} 项，请在App中查看"


def channels_for(route_channels: Sequence[str], channels_off: Sequence[str]) -> tuple[str, ...]:
    """The route's channels minus those the recipient turned off, in the route's order;
    "app" stays whatever ``channels_off`` says."""
    off = set(channels_off)
    return tuple(c for c in route_channels if c == ALWAYS_ON or c not in off)


def _shanghai(now: datetime) -> datetime:
    """``now`` on the county's wall clock (a naive datetime is taken as Shanghai time)."""
    if now.tzinfo is None:
        return now.replace(tzinfo=SHANGHAI)
    return now.astimezone(SHANGHAI)


def hold_until(
    now: datetime, channel: str, critical: bool, quiet_start: time, quiet_end: time
) -> datetime | None:
    """None when a message on ``channel`` may go at ``now``; otherwise the moment (aware,
    Asia/Shanghai) the recipient's quiet hours end."""
    if channel not in QUIET_CHANNELS or critical:
        return None
    start, end = _wall(quiet_start), _wall(quiet_end)
    if start == end:
        return None
    local = _shanghai(now)
    t = local.time()
    today = local.date()
    if start < end:  # within one day: 12:00-14:00
        if start <= t < end:
            return datetime.combine(today, end, SHANGHAI)
        return None
    # across midnight: 21:00-08:00
    if t >= start:
        return datetime.combine(today + timedelta(days=1), end, SHANGHAI)
    if t < end:
        return datetime.combine(today, end, SHANGHAI)
    return None


def _wall(t: time) -> time:
    """A wall time without a zone (quiet hours are always Shanghai's)."""
    return t.replace(tzinfo=None)


def quiet_hours(
    pref_start: time | None,
    pref_end: time | None,
    default_start: time,
    default_end: time,
) -> tuple[time, time]:
    """The recipient's window when they chose one (both ends), else the defaults."""
    if pref_start is None or pref_end is None:
        return default_start, default_end
    return pref_start, pref_end


def digest_day(now: datetime, hour: int) -> date:
    """The Shanghai day whose morning digest (made at ``hour``) carries an item arriving at
    ``now``: today's while that hour has not come, else tomorrow's."""
    local = _shanghai(now)
    if local.hour < hour:
        return local.date()
    return local.date() + timedelta(days=1)


def digest_text(lines: Sequence[str], limit: int = 20) -> tuple[str, int]:
    """The lines numbered ("1. ...", "2. ..."), one a line, at most ``limit`` of them and then
    how many more there are; and the count of all lines."""
    total = len(lines)
    shown = max(limit, 0)
    out = [f"{i}. {line}" for i, line in enumerate(lines[:shown], start=1)]
    if total > shown:
        out.append(MORE_TEXT.format(n=total - shown))
    return "\n".join(out), total
