"""Notify's indicators over HTTP, on SQLite and PostgreSQL: messages told through the real flow
(events on the broker, the handler, the dispatcher and the fake providers on loopback) over
three months, then every figure checked twice: against the number the seeding makes it, and
against a count taken in notify's database with plain SQL, for the county, a township and a
village and for each row of the breakdown.

Rows are stamped on the real clock (``utcnow``) while the dispatcher's ``sent_at`` follows the
runtime's clock (``FixedClock``); ``written_at`` moves the rows a step just wrote to the
simulated instant, as if the test had run on that day (see the report: notify's handler does
not take ``created_at`` from its clock).
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select, text, update

from services.notify.models import CHANNELS, Delivery, InboxMessage, Notification
from services.notify.reports import INDICATORS
from services.notify.tests.fake_providers import FakeProviders
from services.notify.tests.test_delivery import (
    DISTRICT,
    PERSON,
    add_people,
    emit,
    rows,
    sample,
)
from shared.clock import SHANGHAI, FixedClock
from shared.db import UtcDateTime
from shared.reports import Month
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, eventually
from tests.test_event_delivery import envelope

V1, T1 = VILLAGE, TOWNSHIP  # PERSON and SPOUSE live here
V2 = TOWNSHIP + "002"  # the same township, another village
V3 = OTHER_TOWNSHIP + "001"
P2, P3 = str(uuid.uuid4()), str(uuid.uuid4())  # in V2 and V3
URL = "/api/v1/reports/indicators"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


class Seeder:
    """Tells people things at simulated instants; remembers which notifications are stamped."""

    def __init__(self, stack: InProcessStack, clock: FixedClock) -> None:
        self.stack, self.clock = stack, clock
        self.stamped: set[str] = set()

    async def tell(self, event_type: str, **data: Any) -> list[Notification]:
        await emit(self.stack, envelope(event_type, {**sample(event_type), **data}))
        return await self.written_at(self.clock.now())

    async def written_at(self, instant: datetime) -> list[Notification]:
        """The notifications (and their deliveries) written since the last step, as of
        ``instant``: created then, and the inbox copy delivered then."""
        async with self.stack.rt("notify").db.session() as s, s.begin():
            new = [
                i for i in (await s.scalars(select(Notification.id))).all() if i not in self.stamped
            ]
            await s.execute(
                update(Notification).where(Notification.id.in_(new)).values(created_at=instant)  # type: ignore[attr-defined]
            )
            await s.execute(
                update(Delivery)
                .where(Delivery.notification_id.in_(new))  # type: ignore[attr-defined]
                .values(created_at=instant)
            )
            await s.execute(
                update(Delivery)
                .where(Delivery.notification_id.in_(new), Delivery.channel == "app")  # type: ignore[attr-defined]
                .values(sent_at=instant, delivered_at=instant)
            )
        self.stamped |= set(new)
        return await rows(self.stack, Notification, Notification.id.in_(new))  # type: ignore[attr-defined]


async def sms_statuses(stack: InProcessStack, *statuses: str) -> None:
    async def settled() -> None:
        got = sorted(d.status for d in await rows(stack, Delivery, Delivery.channel == "sms"))
        assert got == sorted(statuses), got

    await eventually(settled, within=15)


async def seed(stack: InProcessStack, fake: FakeProviders) -> None:
    """March, April and May 2030 (see the expectations below for what each step leaves)."""
    clock = FixedClock(at(date(2030, 3, 10), 10))
    stack.rt("notify").clock = clock
    await add_people(stack)  # PERSON (phone) and SPOUSE (none) in V1; the staff
    for pid, name, region, phone in (
        (P2, "赵敏", V2, "13800138002"),
        (P3, "钱进", V3, "13800138003"),
    ):
        await emit(
            stack,
            envelope(
                "lingju.registry.person.registered",
                {
                    "person_id": pid,
                    "name": name,
                    "sex": "female",
                    "birth_date": "1960-05-01",
                    "household_type": "rural",
                    "region_code": region,
                    "phone": phone,
                },
            ),
        )
    s = Seeder(stack, clock)
    paid = "lingju.benefits.payment.disbursed"
    # 10 March, 10:00: PERSON is paid (app + SMS at once).
    await s.tell(paid, person_id=PERSON, payee_id=PERSON)
    await sms_statuses(stack, "sent")
    # P2's number is wrong: the SMS fails at once.
    fake.error_next("aliyun", "isv.MOBILE_NUMBER_ILLEGAL")
    await s.tell(paid, person_id=P2, payee_id=P2)
    await sms_statuses(stack, "sent", "failed")
    # An application overdue at the township: its officer (T1) and the county's (6 digits).
    told = await s.tell("lingju.registry.application.overdue", region_code=V1, level="township")
    assert sorted(n.region_code for n in told) == [DISTRICT, T1]
    await sms_statuses(stack, "sent", "failed", "sent", "sent")
    # 23:30: P3 is paid; the SMS waits for the morning (08:00, 30 600 s later).
    clock.set(at(date(2030, 3, 10), 23, 30))
    await s.tell(paid, person_id=P3, payee_id=P3)
    clock.set(at(date(2030, 3, 11), 8))
    await sms_statuses(stack, "sent", "failed", "sent", "sent", "sent")

    # 30 April, 23:30: PERSON is paid; the SMS goes on 1 May at 08:00 (created in April, sent
    # in May).
    clock.set(at(date(2030, 4, 30), 23, 30))
    await s.tell(paid, person_id=PERSON, payee_id=PERSON)
    clock.set(at(date(2030, 5, 1), 8))
    await sms_statuses(stack, "sent", "failed", "sent", "sent", "sent", "sent")
    # 1 May, 08:00: another overdue application; then P3's payment fails (important: the SMS
    # waits a day for the inbox copy to be read, and P3 reads it: skipped).
    await s.tell("lingju.registry.application.overdue", region_code=V1, level="township")
    await sms_statuses(stack, "sent", "failed", "sent", "sent", "sent", "sent", "sent", "sent")
    (failed,) = await s.tell("lingju.benefits.payment.failed", person_id=P3, payee_id=P3)
    (message,) = await rows(stack, InboxMessage, InboxMessage.notification_id == failed.id)
    r = await stack.notify.post(
        f"/api/v1/inbox/{message.id}/read", headers=stack.auth("resident", V3, person_id=P3)
    )
    assert r.status_code == 200, r.text
    await sms_statuses(
        stack, "sent", "failed", "sent", "sent", "sent", "sent", "sent", "sent", "skipped"
    )


# -- the same figures, counted directly -----------------------------------------------------------


def _typed(sql: str) -> Any:
    return text(sql).bindparams(
        bindparam("start", type_=UtcDateTime()), bindparam("end", type_=UtcDateTime())
    )


async def direct_success(
    stack: InProcessStack, region: str, month: Month, channel: str | None
) -> tuple[int, int]:
    sql = (
        "SELECT COALESCE(SUM(CASE WHEN d.status IN ('sent', 'delivered') THEN 1 ELSE 0 END), 0),"
        " COUNT(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE n.region_code LIKE :region AND d.created_at >= :start AND d.created_at < :end"
    )
    params: dict[str, Any] = {"region": region + "%", "start": month.start, "end": month.end}
    if channel:
        sql += " AND d.channel = :channel"
        params["channel"] = channel
    async with stack.rt("notify").db.session() as s:
        num, den = (await s.execute(_typed(sql), params)).one()
    return int(num), int(den)


async def direct_delays(
    stack: InProcessStack, region: str, month: Month, channel: str
) -> list[float]:
    rt = stack.rt("notify")
    seconds = (
        "(julianday(d.sent_at) - julianday(n.created_at)) * 86400"
        if rt.db.is_sqlite
        else "EXTRACT(EPOCH FROM d.sent_at - n.created_at)"
    )
    sql = (
        f"SELECT {seconds} FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE n.region_code LIKE :region AND d.channel = :channel"
        " AND d.sent_at >= :start AND d.sent_at < :end"
    )
    params = {"region": region + "%", "channel": channel, "start": month.start, "end": month.end}
    async with rt.db.session() as s:
        return sorted(round(float(v), 1) for (v,) in (await s.execute(_typed(sql), params)).all())


def median(values: list[float]) -> float | None:
    return values[math.ceil(len(values) / 2) - 1] if values else None


async def check_against_database(
    stack: InProcessStack, report: dict[str, Any], month: Month
) -> None:
    """Every figure of the report, and of each breakdown row, as counted directly."""
    for ind in report["indicators"]:
        kind, _, channel = ind["code"].partition(".")
        places = [(report["region"], ind)] + [(r["region"], r) for r in ind["by_region"]]
        for region, fig in places:
            if kind == "delivery_success":
                num, den = await direct_success(stack, region, month, channel or None)
                assert (fig["numerator"], fig["denominator"]) == (num, den), (ind["code"], region)
                assert fig["value"] == (round(num / den, 4) if den else None)
            else:
                delays = await direct_delays(stack, region, month, channel)
                assert fig["denominator"] == len(delays), (ind["code"], region)
                value = fig["value"]
                assert (None if value is None else round(value, 1)) == median(delays)


async def report_of(stack: InProcessStack, region: str, month: str) -> dict[str, Any]:
    officer = stack.auth("county_officer", DISTRICT)
    r = await stack.notify.get(URL, params={"region": region, "month": month}, headers=officer)
    assert r.status_code == 200, r.text
    return r.json()


def figures(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """code -> (value, numerator, denominator, {breakdown region: (value, num, den)})."""
    return {
        i["code"]: (
            i["value"],
            i["numerator"],
            i["denominator"],
            {r["region"]: (r["value"], r["numerator"], r["denominator"]) for r in i["by_region"]},
        )
        for i in report["indicators"]
    }


NO_SAMPLE = (None, None, 0.0, {})
NOTHING = (None, 0.0, 0.0, {})
# What the seeding leaves, month by month (the county's officer is "" : in no township).
EXPECTED: dict[tuple[str, str], dict[str, tuple[Any, ...]]] = {
    ("2030-03", DISTRICT): {
        # app: PERSON, P2, P3, the township and the county officer; SMS: the same, P2's failed.
        "delivery_success": (
            0.9,
            9.0,
            10.0,
            {T1: (0.8333, 5.0, 6.0), OTHER_TOWNSHIP: (1.0, 2.0, 2.0)},
        ),
        "delivery_success.app": (
            1.0,
            5.0,
            5.0,
            {T1: (1.0, 3.0, 3.0), OTHER_TOWNSHIP: (1.0, 1.0, 1.0)},
        ),
        "delivery_success.sms": (
            0.8,
            4.0,
            5.0,
            {T1: (0.6667, 2.0, 3.0), OTHER_TOWNSHIP: (1.0, 1.0, 1.0)},
        ),
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": (
            0.0,
            None,
            5.0,
            {T1: (0.0, None, 3.0), OTHER_TOWNSHIP: (0.0, None, 1.0)},
        ),
        # sent at once (0 s) three times; P3's at 08:00 after 23:30 (30 600 s)
        "delivery_delay_median.sms": (
            0.0,
            None,
            4.0,
            {T1: (0.0, None, 2.0), OTHER_TOWNSHIP: (30600.0, None, 1.0)},
        ),
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
    ("2030-03", T1): {
        # the township officer's messages count in T1 but in neither village
        "delivery_success": (0.8333, 5.0, 6.0, {V1: (1.0, 2.0, 2.0), V2: (0.5, 1.0, 2.0)}),
        "delivery_success.app": (1.0, 3.0, 3.0, {V1: (1.0, 1.0, 1.0), V2: (1.0, 1.0, 1.0)}),
        "delivery_success.sms": (0.6667, 2.0, 3.0, {V1: (1.0, 1.0, 1.0), V2: (0.0, 0.0, 1.0)}),
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": (0.0, None, 3.0, {V1: (0.0, None, 1.0), V2: (0.0, None, 1.0)}),
        "delivery_delay_median.sms": (0.0, None, 2.0, {V1: (0.0, None, 1.0)}),
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
    ("2030-03", V2): {
        "delivery_success": (0.5, 1.0, 2.0, {}),
        "delivery_success.app": (1.0, 1.0, 1.0, {}),
        "delivery_success.sms": (0.0, 0.0, 1.0, {}),
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": (0.0, None, 1.0, {}),
        "delivery_delay_median.sms": NO_SAMPLE,  # it failed: never handed over
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
    ("2030-04", DISTRICT): {
        # PERSON's payment at 23:30 on the 30th: created in April, its SMS sent in May
        "delivery_success": (1.0, 2.0, 2.0, {T1: (1.0, 2.0, 2.0)}),
        "delivery_success.app": (1.0, 1.0, 1.0, {T1: (1.0, 1.0, 1.0)}),
        "delivery_success.sms": (1.0, 1.0, 1.0, {T1: (1.0, 1.0, 1.0)}),
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": (0.0, None, 1.0, {T1: (0.0, None, 1.0)}),
        "delivery_delay_median.sms": NO_SAMPLE,
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
    ("2030-05", DISTRICT): {
        # the officers' overdue application (4), P3's failed payment: app read, SMS skipped
        "delivery_success": (
            0.8333,
            5.0,
            6.0,
            {T1: (1.0, 2.0, 2.0), OTHER_TOWNSHIP: (0.5, 1.0, 2.0)},
        ),
        "delivery_success.app": (
            1.0,
            3.0,
            3.0,
            {T1: (1.0, 1.0, 1.0), OTHER_TOWNSHIP: (1.0, 1.0, 1.0)},
        ),
        "delivery_success.sms": (
            0.6667,
            2.0,
            3.0,
            {T1: (1.0, 1.0, 1.0), OTHER_TOWNSHIP: (0.0, 0.0, 1.0)},
        ),
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": (
            0.0,
            None,
            3.0,
            {T1: (0.0, None, 1.0), OTHER_TOWNSHIP: (0.0, None, 1.0)},
        ),
        # April's held SMS (30 600 s, V1) and the two officers' (0 s)
        "delivery_delay_median.sms": (0.0, None, 3.0, {T1: (0.0, None, 2.0)}),
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
    ("2030-05", V1): {
        "delivery_success": NOTHING,
        "delivery_success.app": NOTHING,
        "delivery_success.sms": NOTHING,
        "delivery_success.wechat": NOTHING,
        "delivery_success.webhook": NOTHING,
        "delivery_delay_median.app": NO_SAMPLE,
        "delivery_delay_median.sms": (30600.0, None, 1.0, {}),
        "delivery_delay_median.wechat": NO_SAMPLE,
        "delivery_delay_median.webhook": NO_SAMPLE,
    },
}


async def test_every_indicator_matches_the_seeding_and_a_direct_count(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await seed(stack, fake)
    for (month, region), expected in EXPECTED.items():
        report = await report_of(stack, region, month)
        assert [i["code"] for i in report["indicators"]] == [i.code for i in INDICATORS]
        assert figures(report) == expected, (month, region)
        await check_against_database(stack, report, Month.parse(month))
    # The other views the checks above leave out, against the database alone.
    for month in ("2030-03", "2030-04", "2030-05"):
        for region in (OTHER_TOWNSHIP, V1, V3):
            await check_against_database(
                stack, await report_of(stack, region, month), Month.parse(month)
            )

    # A month before anything was told: counts 0, rates and medians null.
    quiet = await report_of(stack, DISTRICT, "2030-02")
    assert {c: (v, n, d) for c, (v, n, d, _) in figures(quiet).items()} == {
        i.code: (None, 0.0, 0.0) if i.unit == "rate" else (None, None, 0.0) for i in INDICATORS
    }
    assert all(i["by_region"] == [] for i in quiet["indicators"])

    # CSV: one row per indicator and region (the report's, then each of its breakdown).
    officer = stack.auth("county_officer", DISTRICT)
    r = await stack.notify.get(
        URL, params={"region": DISTRICT, "month": "2030-03", "format": "csv"}, headers=officer
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    march = await report_of(stack, DISTRICT, "2030-03")
    assert len(table) == sum(1 + len(i["by_region"]) for i in march["indicators"])
    assert {(row["indicator"], row["region"]) for row in table} == {
        (i["code"], region)
        for i in march["indicators"]
        for region in [DISTRICT, *(b["region"] for b in i["by_region"])]
    }
    sms = next(
        row for row in table if row["indicator"] == "delivery_success.sms" and row["region"] == T1
    )
    assert (sms["value"], sms["numerator"], sms["denominator"], sms["level"]) == (
        "0.6667",
        "2",
        "3",
        "township",
    )


async def test_the_report_stays_in_the_callers_region_and_in_begun_months(
    notify_stack: InProcessStack,
) -> None:
    stack = notify_stack
    stack.rt("notify").clock = FixedClock(at(date(2030, 5, 1), 8))
    township = stack.auth("township_officer", T1)
    r = await stack.notify.get(URL, params={"region": OTHER_TOWNSHIP}, headers=township)
    assert r.status_code == 403 and r.json()["code"] == "out_of_region"
    r = await stack.notify.get(URL, params={"region": DISTRICT}, headers=township)
    assert r.status_code == 403 and r.json()["code"] == "out_of_region"
    r = await stack.notify.get(URL, params={"region": V1, "month": "2030-06"}, headers=township)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    assert r.headers["content-type"].startswith("application/problem+json")
    # Its own township, this month by default: every indicator, nothing yet.
    r = await stack.notify.get(URL, headers=township)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["region"], body["level"], body["month"]) == (T1, "township", "2030-05")
    assert len(body["indicators"]) == len(INDICATORS) == 1 + 2 * len(CHANNELS)
    r = await stack.notify.get(URL, headers=stack.auth("resident", V1, person_id=PERSON))
    assert r.status_code == 403
