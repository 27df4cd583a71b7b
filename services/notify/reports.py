"""Notify's indicators (issue 8): how well messages reach people, per channel, region and month.

Region: a delivery counts where its notification's ``region_code`` lies, which is the
recipient's own region (a resident's village; a member of staff's village, township or county
as the staff directory has it), or the event's region when the recipient has none. So a
message to a township or county officer counts in that township's or county's figures but in
no row of a breakdown below it: a breakdown's rows may then add up to less than the total.

Time: notify does not keep an event's own ``time``; the delay is counted from the
notification's ``created_at``, when notify handled the event (for a digest: when the digest
was made). Delivery rows keep their status as it is now, so a month's success rate moves
while its deliveries are still queued, and settles once they are sent, failed or skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, case, func, select

from services.notify.models import CHANNELS, Delivery, Notification
from shared.reports import (
    Indicator,
    IndicatorValue,
    ReportScope,
    quantile_value,
    rate_value,
)

if TYPE_CHECKING:
    from shared.service import Runtime

CHANNEL_NAMES = {"app": "App站内信", "sms": "短信", "wechat": "微信", "webhook": "Webhook"}
SUCCESS = ("sent", "delivered")

_REGION = (
    "The region is the notification's region_code (the recipient's village, or a staff "
    "member's village, township or county code), matched by prefix; months are Asia/Shanghai's."
)


def _success(channel: str | None) -> Indicator:
    which = f"on the {channel} channel" if channel else "on any channel"
    return Indicator(
        code=f"delivery_success.{channel}" if channel else "delivery_success",
        name=f"{CHANNEL_NAMES[channel]}送达成功率" if channel else "消息送达成功率",
        unit="rate",
        formula=(
            f"Deliveries {which} whose created_at falls in the month: numerator those whose "
            "status is now sent or delivered, denominator all of them (failed, skipped, and "
            f"still queued or sending count as not reached). {_REGION}"
        ),
    )


def _delay(channel: str) -> Indicator:
    sent = "written to the inbox" if channel == "app" else "handed to the provider"
    return Indicator(
        code=f"delivery_delay_median.{channel}",
        name=f"{CHANNEL_NAMES[channel]}发送时延中位数",
        unit="seconds",
        formula=(
            f"Median (nearest rank) of sent_at minus the notification's created_at (when notify "
            f"handled the event; the event's own time is not kept), in seconds, over the "
            f"{channel} deliveries whose sent_at ({sent}) falls in the month; null when there "
            f"are none. {_REGION}"
        ),
    )


SUCCESS_OVERALL = _success(None)
SUCCESS_BY_CHANNEL = {c: _success(c) for c in CHANNELS}
DELAY_BY_CHANNEL = {c: _delay(c) for c in CHANNELS}

INDICATORS: tuple[Indicator, ...] = (
    SUCCESS_OVERALL,
    *SUCCESS_BY_CHANNEL.values(),
    *DELAY_BY_CHANNEL.values(),
)


def _part(scope: ReportScope, prefix: str) -> str:
    """The breakdown key of a grouped region prefix: "" when the report has no breakdown, or
    when the record sits above the breakdown's level (a township officer's, in a county)."""
    digits = scope.breakdown_digits
    return prefix if digits and len(prefix) == digits else ""


async def compute(rt: Runtime, scope: ReportScope) -> list[IndicatorValue]:
    n, d = Notification.__table__.c, Delivery.__table__.c  # type: ignore[attr-defined]
    part = func.substr(n.region_code, 1, scope.breakdown_digits or len(scope.region))
    joined = d.notification_id == n.id
    in_region = n.region_code.like(f"{scope.region}%")
    start, end = scope.month.start, scope.month.end
    success = func.sum(case((d.status.in_(SUCCESS), 1), else_=0)).cast(Integer)
    async with rt.db.session() as s:
        counted = (
            await s.execute(
                select(part, d.channel, func.count(), success)
                .select_from(Delivery.__table__.join(Notification.__table__, joined))
                .where(in_region, d.created_at >= start, d.created_at < end)
                .group_by(part, d.channel)
            )
        ).all()
        # The month's hand-overs, two timestamps each: the seconds between them are taken here,
        # the same on both databases.
        sent = (
            await s.execute(
                select(part, d.channel, n.created_at, d.sent_at)
                .select_from(Delivery.__table__.join(Notification.__table__, joined))
                .where(in_region, and_(d.sent_at >= start, d.sent_at < end))
            )
        ).all()

    made: dict[str, dict[str, int]] = {c: {} for c in CHANNELS}
    reached: dict[str, dict[str, int]] = {c: {} for c in CHANNELS}
    for prefix, channel, total, ok in counted:
        if channel not in made:
            continue  # not one of notify's channels: nothing writes one
        key = _part(scope, prefix)
        made[channel][key] = made[channel].get(key, 0) + int(total)
        reached[channel][key] = reached[channel].get(key, 0) + int(ok or 0)
    delays: dict[str, list[tuple[str, float]]] = {c: [] for c in CHANNELS}
    for prefix, channel, created_at, sent_at in sent:
        if channel in delays:
            seconds = (sent_at - created_at).total_seconds()
            delays[channel].append((_part(scope, prefix), round(seconds, 3)))

    return [
        rate_value(SUCCESS_OVERALL, _sum(reached), _sum(made), scope),
        *(rate_value(SUCCESS_BY_CHANNEL[c], reached[c], made[c], scope) for c in CHANNELS),
        *(quantile_value(DELAY_BY_CHANNEL[c], delays[c], 0.5, scope) for c in CHANNELS),
    ]


def _sum(per_channel: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in per_channel.values():
        for key, value in counts.items():
            out[key] = out.get(key, 0) + int(value)
    return out
