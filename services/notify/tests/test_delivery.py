"""Telling people, end to end on SQLite and PostgreSQL: events on the real broker, notify's
handler, its dispatcher, and a real HTTP server on loopback standing in for Aliyun, Tencent and
WeChat (it fails on command). Every routed event tells each recipient once; retries fall back
and back off; quiet hours hold; digests group; receipts arrive; inboxes stay their owners'."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any, get_args, get_origin

import httpx
from sqlalchemy import func, select

from services.notify.events import on_routed_event, routing
from services.notify.models import (
    CONTACT_OPENID,
    CONTACT_PHONE,
    Contact,
    Delivery,
    DeliveryAttempt,
    DigestItem,
    Notification,
)
from services.notify.sealed import seal
from services.notify.tests.conftest import RECEIPT_TOKEN, sms_template_ids
from services.notify.tests.fake_providers import FakeProviders
from services.notify.views import VIEWS
from shared.clock import SHANGHAI, FixedClock
from shared.events import CloudEvent
from tests.support import TOWNSHIP, VILLAGE, InProcessStack, eventually
from tests.test_event_delivery import envelope, handled, publish

DISTRICT = VILLAGE[:6]
PERSON, SPOUSE = str(uuid.uuid4()), str(uuid.uuid4())
AGENT, WORKER, OFFICER_T, OFFICER_C = "agent-1", "worker-1", "officer-t", "officer-c"
STAFF = {
    AGENT: ("village_agent", TOWNSHIP, "13900000001"),
    WORKER: ("village_worker", VILLAGE, "13900000002"),
    OFFICER_T: ("township_officer", TOWNSHIP, "13900000003"),
    OFFICER_C: ("county_officer", DISTRICT, "13900000004"),
}
# Who each routed event's sample tells (the route's recipients, resolved).
FIELD_VALUES: dict[str, Any] = {
    "applicant_id": PERSON,
    "payee_id": PERSON,
    "person_id": PERSON,
    "holder_ids": [PERSON, SPOUSE],
    "submitted_by": AGENT,
    "assignee": WORKER,
    "assignee_sub": WORKER,
    "previous_assignee_sub": "worker-gone",  # not in the directory: nobody to tell
    "region_code": VILLAGE,
    "decision": "return",
    "level": "township",
    "missing": [{"code": "hukou", "name": "户口簿"}],
    "amount_fen": 36000,
    "starts_at": "2030-01-06T01:00:00+00:00",
    "ends_at": "2030-01-06T03:00:00+00:00",
}


def sample(event_type: str) -> dict[str, Any]:
    """An event's data as its producer's documented schema has it (every field notify reads)."""
    data: dict[str, Any] = {}
    for name, f in VIEWS[event_type].model_fields.items():
        if name in FIELD_VALUES:
            data[name] = FIELD_VALUES[name]
            continue
        kind = f.annotation
        if get_origin(kind) is not None and type(None) in get_args(kind):
            kind = next(a for a in get_args(kind) if a is not type(None))
        if kind is date:
            data[name] = "2030-01-05"
        elif kind is int:
            data[name] = 1
        elif get_origin(kind) is list:
            data[name] = []
        else:
            data[name] = f"{name}-示例"
    return data


def api(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.notify


async def add_people(stack: InProcessStack) -> None:
    """Two residents in the contact directory (what person.registered writes) and the staff."""
    async with stack.rt("notify").db.session() as s:
        for pid, name, phone in ((PERSON, "王秀英", "13800138001"), (SPOUSE, "李建国", None)):
            phone_enc = seal(stack.rt("notify").cipher, phone, CONTACT_PHONE)
            s.add(Contact(person_id=pid, name=name, phone_enc=phone_enc, region_code=VILLAGE))
        await s.commit()
    admin = stack.auth("admin")
    for sub, (role, region, phone) in STAFF.items():
        r = await api(stack).put(
            f"/api/v1/staff-contacts/{sub}",
            json={"name": f"{sub}姓名", "role": role, "region_code": region, "phone": phone},
            headers=admin,
        )
        assert r.status_code in (200, 201), r.text


async def emit(stack: InProcessStack, event: dict[str, Any]) -> None:
    """Put an event on the broker and wait until notify has handled it."""
    before = handled(stack, "notify", "applied") + handled(stack, "notify", "duplicate")
    await publish(stack.nats.url, event["type"], [json.dumps(event).encode()], [None])

    async def done() -> None:
        after = handled(stack, "notify", "applied") + handled(stack, "notify", "duplicate")
        assert after > before

    await eventually(done, within=10)


async def rows(stack: InProcessStack, model: Any, *where: Any) -> list[Any]:
    async with stack.rt("notify").db.session() as s:
        return list((await s.scalars(select(model).where(*where))).all())


async def count(stack: InProcessStack, model: Any) -> int:
    async with stack.rt("notify").db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def expected_recipients(event_type: str, data: dict[str, Any]) -> set[tuple[str, str]]:
    """(recipient key, template) the routing file promises for a sample, digests aside."""
    out: set[tuple[str, str]] = set()
    for route in routing().for_event(event_type, data):
        for spec in route.recipients:
            if spec.kind == "person":
                raw = data[spec.field]
                keys = [f"person:{p}" for p in (raw if isinstance(raw, list) else [raw])]
            elif spec.kind == "staff":
                keys = [f"staff:{data[spec.field]}"] if data[spec.field] in STAFF else []
                if route.digest:
                    keys = []  # staff get these in their morning digest
            else:
                keys = [
                    f"staff:{sub}"
                    for sub, (role, region, _) in STAFF.items()
                    if role == spec.role and region == data[spec.field][: spec.digits]
                ]
            out |= {(k, route.template) for k in keys}
    return out


# -- routing, once -----------------------------------------------------------------------------


async def test_every_routed_event_tells_each_recipient_once(notify_stack: InProcessStack) -> None:
    stack = notify_stack
    await add_people(stack)
    for event_type in VIEWS:
        data = sample(event_type)
        event = envelope(event_type, data)
        await emit(stack, event)
        # The same event again (a producer's retry after the broker's duplicate window, a
        # replay): the consumer's inbox has it; nothing new.
        await emit(stack, event)
        # And past the inbox, straight into the handler: the notifications' unique key holds.
        async with stack.rt("notify").uow() as uow:
            await on_routed_event(uow, CloudEvent.model_validate(event))
            await uow.commit()
        told = {
            (n.recipient, n.template)
            for n in await rows(stack, Notification, Notification.event_id == event["id"])
        }
        assert told == expected_recipients(event_type, data), event_type
        routed = {r.template: r.channels for r in routing().for_event(event_type, data)}
        for n in await rows(stack, Notification, Notification.event_id == event["id"]):
            channels = sorted(
                d.channel for d in await rows(stack, Delivery, Delivery.notification_id == n.id)
            )
            # The inbox always; SMS where routed and there is a number (the spouse has none);
            # WeChat only with a bound openid (nobody here).
            assert "app" in channels, (event_type, n.recipient)
            has_phone = n.recipient != f"person:{SPOUSE}"
            assert ("sms" in channels) == ("sms" in routed[n.template] and has_phone), n
            assert "wechat" not in channels
            assert "{" not in n.title and n.title, (event_type, n.title)
    # The worker's due and overdue visits wait for the morning digest instead.
    items = await rows(stack, DigestItem)
    assert (
        sorted(i.event_id for i in items) == sorted(e for e in {i.event_id for i in items})
        and len(items) == 2
    )
    assert {i.recipient for i in items} == {f"staff:{WORKER}"}


async def test_sms_fall_back_to_the_next_provider_then_back_off_until_one_answers(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await add_people(stack)
    # Aliyun is down (HTTP 500) for 3 requests and Tencent times out once, then answers 500 once.
    fake.fail_next("aliyun", 3)
    fake.hang_next("tencent", 1)
    fake.fail_next("tencent", 1)
    # WeChat is fine: the same notification's WeChat copy must not wait for the SMS.
    async with stack.rt("notify").db.session() as s:
        contact = await s.get(Contact, PERSON)
        assert contact is not None
        contact.wechat_openid_enc = seal(stack.rt("notify").cipher, "openid-wang", CONTACT_OPENID)
        await s.commit()
    # The county has its WeChat template for bookings: an admin saves its id (version 2).
    admin = stack.auth("admin")
    current = (await api(stack).get("/api/v1/templates/appointment_booked", headers=admin)).json()
    edit = {k: current["current"][k] for k in ("title", "app_body", "sms_body", "wechat")}
    edit["wechat"]["template_id"] = "wx-tpl-booked"
    r = await api(stack).put(
        "/api/v1/templates/appointment_booked",
        json={**edit, "version": current["current"]["version"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    event = envelope("lingju.visits.appointment.booked", sample("lingju.visits.appointment.booked"))
    await emit(stack, event)

    async def sent() -> Delivery:
        (sms,) = await rows(stack, Delivery, Delivery.channel == "sms")
        assert sms.status == "sent", (sms.status, sms.attempts, sms.last_error)
        return sms

    sms = await eventually(sent, within=20)
    fake.release()
    (wechat,) = await rows(stack, Delivery, Delivery.channel == "wechat")
    assert wechat.status == "sent" and wechat.sent_at is not None and sms.sent_at is not None
    sent_to_wechat = fake.requests_to("wechat_send")[-1].json()
    assert sent_to_wechat["template_id"] == "wx-tpl-booked"
    assert sent_to_wechat["touser"] == "openid-wang"
    assert wechat.sent_at < sms.sent_at  # the failing SMS platforms held nothing else up
    # A template the county has no WeChat template id for yet goes by the other channels only.
    reminder = envelope(
        "lingju.visits.appointment.reminder", sample("lingju.visits.appointment.reminder")
    )
    await emit(stack, reminder)
    (n_reminder,) = await rows(stack, Notification, Notification.event_id == reminder["id"])
    channels = {
        d.channel for d in await rows(stack, Delivery, Delivery.notification_id == n_reminder.id)
    }
    assert channels == {"app", "sms"}
    attempts = await rows(stack, DeliveryAttempt, DeliveryAttempt.delivery_id == sms.id)
    log = [(a.provider, a.outcome) for a in sorted(attempts, key=lambda a: a.id)]
    assert log == [
        ("aliyun", "unavailable"),
        ("tencent", "timeout"),  # falls back at once, then the round has failed: back off
        ("aliyun", "unavailable"),
        ("tencent", "unavailable"),
        ("aliyun", "unavailable"),
        ("tencent", "sent"),
    ]
    assert sms.attempts == 6 and sms.provider == "tencent"
    # Tencent got our text's variables as its template's parameters, and our id to match.
    body = fake.requests_to("tencent")[-1].json()
    assert body["SessionContext"] == sms.id
    # 01:00 UTC is 09:00 in Shanghai: the SMS template's first variable, filtered.
    assert body["TemplateParamSet"] == ["1月6日 09:00", "station_name-示例"]

    # Tencent's receipt says it reached the phone; an officer sees whether and when.
    receipt = [
        {
            "user_receive_time": "2030-01-05 09:00:05",
            "nationcode": "86",
            "mobile": "13800138001",
            "report_status": "SUCCESS",
            "errmsg": "DELIVRD",
            "description": "用户短信送达成功",
            "sid": sms.provider_message_id,
        }
    ]
    r = await api(stack).post(
        "/api/v1/receipts/tencent", params={"token": RECEIPT_TOKEN}, json=receipt
    )
    assert r.json() == {"received": 1, "applied": 1}, r.text
    r = await api(stack).post("/api/v1/receipts/tencent", params={"token": "wrong"}, json=receipt)
    assert r.status_code == 401
    officer = stack.auth("township_officer", TOWNSHIP)
    listed = (
        await api(stack).get(
            "/api/v1/notifications",
            params={"recipient": f"person:{PERSON}", "event_id": event["id"]},
            headers=officer,
        )
    ).json()
    (n,) = listed["items"]
    by_channel = {d["channel"]: d for d in n["deliveries"]}
    assert by_channel["sms"]["status"] == "delivered"
    assert by_channel["sms"]["delivered_at"].startswith("2030-01-05T01:00:05")
    assert by_channel["sms"]["address"] == "138****8001"  # masked for the officer
    assert [a["outcome"] for a in by_channel["sms"]["attempt_log"]][-1] == "sent"
    assert by_channel["app"]["status"] == "delivered"


async def test_a_spent_retry_budget_or_a_wrong_number_fails_visibly(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await add_people(stack)
    # Both platforms down for the whole budget: 6 attempts, alternating.
    fake.fail_next("aliyun", 3)
    fake.fail_next("tencent", 3)
    await emit(
        stack,
        envelope("lingju.benefits.payment.disbursed", sample("lingju.benefits.payment.disbursed")),
    )

    async def failed() -> Delivery:
        (sms,) = await rows(stack, Delivery, Delivery.channel == "sms")
        assert sms.status == "failed", (sms.status, sms.attempts)
        return sms

    sms = await eventually(failed, within=20)
    assert sms.attempts == 6 and "retry budget of 6 spent" in (sms.last_error or "")

    # A number the platform says is invalid: no other provider is asked, no retry.
    fake.requests.clear()
    fake.error_next("aliyun", "isv.MOBILE_NUMBER_ILLEGAL")
    await emit(
        stack, envelope("lingju.benefits.claim.decided", sample("lingju.benefits.claim.decided"))
    )

    async def rejected() -> Delivery:
        (d,) = [d for d in await rows(stack, Delivery, Delivery.channel == "sms") if d.id != sms.id]
        assert d.status == "failed"
        return d

    d = await eventually(rejected, within=10)
    assert d.attempts == 1 and "recipient_rejected" in (d.last_error or "")
    assert fake.requests_to("tencent") == []


# -- quiet hours, preferences, digests ----------------------------------------------------------


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


async def test_quiet_hours_hold_sms_until_morning_but_not_a_critical_change(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await add_people(stack)
    night = date(2030, 1, 1)
    clock = FixedClock(at(night, 23, 30))
    stack.rt("notify").clock = clock
    await emit(
        stack,
        envelope("lingju.benefits.payment.disbursed", sample("lingju.benefits.payment.disbursed")),
    )
    cancelled = sample("lingju.visits.appointment.cancelled")
    await emit(stack, envelope("lingju.visits.appointment.cancelled", cancelled))

    async def critical_sent() -> None:
        assert len(fake.requests_to("aliyun")) == 1

    await eventually(critical_sent, within=10)
    held = [
        d for d in await rows(stack, Delivery, Delivery.channel == "sms") if d.status == "queued"
    ]
    assert [(d.held, d.not_before) for d in held] == [
        ("quiet_hours", at(night + timedelta(days=1), 8))
    ]
    # What went out at 23:30 is the cancellation (its own approved template at Aliyun).
    assert (
        fake.requests_to("aliyun")[0].form()["TemplateCode"]
        == sms_template_ids("SMS_")["appointment_cancelled"]
    )

    clock.set(at(night + timedelta(days=1), 8))  # morning

    async def morning_sent() -> None:
        assert len(fake.requests_to("aliyun")) == 2

    await eventually(morning_sent, within=10)

    # A resident who turns SMS off for benefits gets the inbox copy only.
    r = await api(stack).put(
        "/api/v1/preferences/benefits",
        json={"channels_off": ["sms"]},
        headers=stack.auth("resident", VILLAGE, person_id=PERSON),
    )
    assert r.status_code == 200, r.text
    event = envelope(
        "lingju.benefits.payment.disbursed", sample("lingju.benefits.payment.disbursed")
    )
    await emit(stack, event)
    (n,) = await rows(stack, Notification, Notification.event_id == event["id"])
    assert [d.channel for d in await rows(stack, Delivery, Delivery.notification_id == n.id)] == [
        "app"
    ]


async def test_a_worker_gets_one_morning_digest_of_the_days_due_visits(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    from services.notify.digests import send_digests

    stack = notify_stack
    await add_people(stack)
    day = date(2030, 3, 4)
    clock = FixedClock(at(day, 0, 10))  # the visits sweep announces just after midnight
    stack.rt("notify").clock = clock
    for k in range(3):
        data = {
            **sample("lingju.visits.task.due"),
            "task_id": f"task-{k}",
            "step_name": f"第{k + 1}次访视",
        }
        await emit(stack, envelope("lingju.visits.task.due", data))
    items = await rows(stack, DigestItem)
    assert len(items) == 3 and {i.day for i in items} == {day}
    rt = stack.rt("notify")
    assert (await send_digests(rt, at(day, 7, 59))).sent == []  # not yet: the morning hour
    first = await send_digests(rt, at(day, 8, 0))
    assert len(first.sent) == 1
    assert (await send_digests(rt, at(day, 8, 1))).sent == []  # once
    (n,) = await rows(stack, Notification, Notification.template == "digest_due_visits")
    assert n.recipient == f"staff:{WORKER}"
    inbox = (
        await api(stack).get(
            "/api/v1/inbox", headers=stack.auth("village_worker", VILLAGE, sub=WORKER)
        )
    ).json()["items"]
    (message,) = inbox
    assert (
        "3" in message["body"] and "第1次访视" in message["body"] and "第3次访视" in message["body"]
    )
    # The residents were told one by one (their own visit, offered).
    residents = await rows(stack, Notification, Notification.template == "visit_due_resident")
    assert len(residents) == 3


async def test_an_important_messages_sms_waits_for_the_inbox_and_is_dropped_once_read(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await add_people(stack)
    day = date(2030, 5, 6)
    clock = FixedClock(at(day, 10))
    stack.rt("notify").clock = clock
    resident = stack.auth("resident", VILLAGE, person_id=PERSON)
    for _ in range(2):
        await emit(
            stack,
            envelope("lingju.benefits.payment.failed", sample("lingju.benefits.payment.failed")),
        )
    waiting = await rows(stack, Delivery, Delivery.channel == "sms")
    assert {(d.status, d.held) for d in waiting} == {("queued", "unread")}
    assert {d.not_before for d in waiting} == {at(day + timedelta(days=1), 10)}
    inbox = (await api(stack).get("/api/v1/inbox", headers=resident)).json()["items"]
    assert [m["important"] for m in inbox] == [True, True]
    assert (await api(stack).get("/api/v1/inbox/unread-count", headers=resident)).json() == {
        "unread": 2
    }
    r = await api(stack).post(f"/api/v1/inbox/{inbox[0]['id']}/read", headers=resident)
    assert r.status_code == 200 and r.json()["read"] is True
    clock.set(at(day + timedelta(days=1), 10))  # a day later: the unread one goes by SMS

    async def escalated() -> None:
        statuses = sorted(d.status for d in await rows(stack, Delivery, Delivery.channel == "sms"))
        assert statuses == ["sent", "skipped"]

    await eventually(escalated, within=10)
    assert len(fake.requests_to("aliyun")) == 1


# -- inbox ownership and officers' view -------------------------------------------------------


async def test_an_inbox_is_its_owners_alone(notify_stack: InProcessStack) -> None:
    stack = notify_stack
    await add_people(stack)
    await emit(
        stack,
        envelope(
            "lingju.registry.certificate.issued", sample("lingju.registry.certificate.issued")
        ),
    )
    mine = stack.auth("resident", VILLAGE, person_id=PERSON)
    spouse = stack.auth("resident", VILLAGE, person_id=SPOUSE)
    agent = stack.auth("village_agent", TOWNSHIP, sub=AGENT)
    (m,) = (await api(stack).get("/api/v1/inbox", headers=mine)).json()["items"]
    assert len((await api(stack).get("/api/v1/inbox", headers=spouse)).json()["items"]) == 1
    assert len((await api(stack).get("/api/v1/inbox", headers=agent)).json()["items"]) == 1
    # Another's message answers exactly like a missing one, and stays unread.
    r = await api(stack).post(f"/api/v1/inbox/{m['id']}/read", headers=spouse)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await api(stack).get("/api/v1/inbox/unread-count", headers=mine)).json()["unread"] == 1
    no_person = stack.auth("resident", VILLAGE)
    assert (await api(stack).get("/api/v1/inbox", headers=no_person)).status_code == 403
    assert (await api(stack).get("/api/v1/inbox")).status_code == 401

    # Officers see the messages of their region only; residents not at all.
    inside = stack.auth("township_officer", TOWNSHIP)
    outside = stack.auth("township_officer", TOWNSHIP[:6] + "999")
    assert len((await api(stack).get("/api/v1/notifications", headers=inside)).json()["items"]) == 3
    assert (await api(stack).get("/api/v1/notifications", headers=outside)).json()["items"] == []
    nid = (await api(stack).get("/api/v1/notifications", headers=inside)).json()["items"][0]["id"]
    r = await api(stack).get(f"/api/v1/notifications/{nid}", headers=outside)
    assert r.status_code == 403 and r.json()["code"] == "out_of_region"
    r = await api(stack).get("/api/v1/notifications", headers=mine)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


async def test_a_slow_provider_holds_up_no_other_recipient_and_webhooks_are_signed(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

    stack = notify_stack
    await add_people(stack)
    # The worker's clinic system takes messages by webhook (on loopback here, plain http: the
    # tests' settings allow private receivers; a county's are https on public hosts).
    role, region, phone = STAFF[WORKER]
    r = await api(stack).put(
        f"/api/v1/staff-contacts/{WORKER}",
        json={
            "name": "王芳",
            "role": role,
            "region_code": region,
            "phone": phone,
            "webhook_url": fake.webhook_url("clinic"),
        },
        headers=stack.auth("admin"),
    )
    assert r.status_code == 200, r.text
    webhook_secret = r.json()["webhook_secret"]
    # Aliyun hangs on the first message (until our timeout); the others must not wait for it.
    fake.hang_next("aliyun", 1)
    first = envelope(
        "lingju.benefits.payment.disbursed", sample("lingju.benefits.payment.disbursed")
    )
    await emit(stack, first)
    changed = {**sample("lingju.visits.assignment.changed"), "assignee_sub": WORKER}
    await emit(stack, envelope("lingju.visits.assignment.changed", changed))
    for _ in range(2):
        await emit(
            stack,
            envelope("lingju.benefits.claim.decided", sample("lingju.benefits.claim.decided")),
        )

    async def all_out() -> list[Delivery]:
        out = await rows(stack, Delivery, Delivery.channel.in_(("sms", "webhook")))  # type: ignore[attr-defined]
        assert sorted(d.status for d in out) == ["delivered", "sent", "sent", "sent"]
        return out

    deliveries = await eventually(all_out, within=15)
    fake.release()
    # Whichever SMS reached Aliyun first hung until our timeout, then went through Tencent;
    # the other two were sent meanwhile.
    (slow,) = [d for d in deliveries if d.channel == "sms" and d.attempts == 2]
    others = [d for d in deliveries if d.channel == "sms" and d is not slow]
    assert [d.attempts for d in others] == [1, 1] and slow.provider == "tencent"
    assert all(o.sent_at is not None and slow.sent_at is not None for o in others)
    assert all(o.sent_at < slow.sent_at for o in others)  # type: ignore[operator]
    # The webhook carried the event, signed, with our delivery id to drop a repeat.
    (hook,) = fake.requests_to("webhook")
    verify(
        webhook_secret,  # the worker's own
        hook.headers.get(TIMESTAMP_HEADER.lower()),
        hook.headers.get(SIGNATURE_HEADER.lower()),
        hook.body,
        max_age_seconds=300,
    )
    assert hook.json()["type"] == "lingju.visits.assignment.changed"
    (webhook,) = [d for d in deliveries if d.channel == "webhook"]
    assert hook.headers.get("x-lingju-delivery") == webhook.id
