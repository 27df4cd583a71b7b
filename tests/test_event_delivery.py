"""Nothing is lost, nothing happens twice: outbox, inbox, redelivery and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import nats

from shared.devstack import NatsServer
from tests.support import InProcessStack, eventually


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent as a producer following the documented schemas would send it."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/lingju/{event_type.split('.')[1]}",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def certificate_issued(holders: list[str], child_id: str | None = None) -> dict[str, Any]:
    """A registry.certificate.issued event as its documented schema has it."""
    return envelope(
        "lingju.registry.certificate.issued",
        {
            "certificate_id": str(uuid.uuid4()),
            "certificate_no": "DZ3301022026TEST",
            "certificate_type": "only_child_honor",
            "application_id": str(uuid.uuid4()),
            "holder_ids": holders,
            "child_id": child_id,
            "region_code": "330102001001",
            "issued_on": date.today().isoformat(),
            "submitted_by": "agent-1",
        },
    )


def person_registered(person_id: str, birth: date = date(1975, 5, 1)) -> dict[str, Any]:
    """A registry.person.registered event: benefits needs a holder's facts to enroll them."""
    return envelope(
        "lingju.registry.person.registered",
        {
            "person_id": person_id,
            "name": "测试居民",
            "sex": "female",
            "birth_date": birth.isoformat(),
            "region_code": "330102001001",
            "residency": "registered",
            "household_type": "rural",
            "phone": None,
        },
    )


async def register_family(url: str, holders: list[str], child_id: str) -> None:
    """Announce the holders and their only child (born 2012: under 18 until 2030-05)."""
    events = [person_registered(h) for h in holders] + [
        person_registered(child_id, date(2012, 6, 1))
    ]
    await publish(
        url,
        "lingju.registry.person.registered",
        [json.dumps(e).encode() for e in events],
        [e["id"] for e in events],
    )


async def confirm_all_pending(stack: InProcessStack, expected: int) -> None:
    """A second officer confirms every pending enrollment (maker-checker: none is active at
    once), after waiting for ``expected`` of them."""

    async def pending() -> list[dict[str, Any]]:
        r = await stack.benefits.get(
            "/api/v1/enrollments",
            params={"status": "pending_review", "limit": 200},
            headers=stack.auth("county_officer", "330102"),
        )
        items = r.json()["items"]
        assert len(items) == expected, items
        return items  # type: ignore[no-any-return]

    for e in await eventually(pending, within=60):
        r = await stack.benefits.post(
            f"/api/v1/enrollments/{e['id']}/confirm",
            json={"version": e["version"]},
            headers=stack.auth("township_officer", "330102001", sub="checker-1"),
        )
        assert r.status_code == 200, r.text


async def publish(url: str, subject: str, payloads: list[bytes], msg_ids: list[str | None]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for payload, msg_id in zip(payloads, msg_ids, strict=True):
            await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id} if msg_id else None)
    finally:
        await nc.close()


def handled(stack: InProcessStack, service: str, outcome: str) -> float:
    total = 0.0
    for metric in stack.rt(service).metrics.events_handled.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["outcome"] == outcome:
                total += sample.value
    return total


async def test_events_committed_while_nats_is_down_arrive_exactly_once(
    stack: InProcessStack, nats_server: NatsServer
) -> None:
    certificates = 8
    nats_server.stop(kill=True)
    try:
        await eventually(_disconnected(stack))
        issued = [await stack.issue_certificate() for _ in range(certificates)]
        # Every event is safe in the outbox. Per application: 3 persons registered, 2 review
        # decisions (village, township), 1 certificate issued.
        assert await stack.rt("registry").relay.backlog() == 6 * certificates
    finally:
        nats_server.start()
    holders = [h["id"] for i in issued for h in (i["mother"], i["father"])]

    async def all_enrolled() -> None:
        assert await stack.count_rows("benefits", "enrollments") == len(holders)

    await eventually(all_enrolled, within=60)
    assert await stack.rt("registry").relay.backlog() == 0
    await confirm_all_pending(stack, len(holders))  # residents are told once confirmed
    # Each holder is told twice, once each: the certificate is ready, the enrollment confirmed.
    told = 2 * len(holders)

    async def all_told() -> None:
        assert await stack.count_rows("notify", "inbox_messages") == told

    await eventually(all_told, within=30)
    await asyncio.sleep(2)  # let any straggling redelivery arrive: it must change nothing
    assert await stack.count_rows("benefits", "enrollments") == len(holders)
    assert await stack.count_rows("notify", "inbox_messages") == told
    for person in holders[:2]:
        assert len(await stack.enrollments_of(person)) == 1


def _disconnected(stack: InProcessStack) -> Any:
    async def check() -> None:
        assert not stack.rt("registry").broker.is_connected

    return check


async def test_same_event_twice_gives_one_enrollment(stack: InProcessStack) -> None:
    await register_family(stack.nats.url, ["mother-1", "father-1"], "child-1")

    async def known() -> None:
        assert await stack.count_rows("benefits", "person_facts") == 3

    await eventually(known)
    applied_before = handled(stack, "benefits", "applied")
    event = certificate_issued(["mother-1", "father-1"], "child-1")
    payload = json.dumps(event).encode()
    # Same Nats-Msg-Id (the broker drops the copy), then a new msg id (the inbox drops it).
    await publish(
        stack.nats.url,
        "lingju.registry.certificate.issued",
        [payload, payload, payload],
        [event["id"], event["id"], "a-retry-beyond-the-window"],
    )

    async def duplicate_seen() -> None:
        assert handled(stack, "benefits", "duplicate") == 1

    await eventually(duplicate_seen)
    assert handled(stack, "benefits", "applied") == applied_before + 1
    assert await stack.count_rows("benefits", "enrollments") == 2
    assert await stack.count_rows("benefits", "event_inbox") == 4  # 3 persons, 1 certificate


async def test_poison_events_are_dead_lettered_and_the_rest_flow(stack: InProcessStack) -> None:
    for i in range(5):
        await register_family(stack.nats.url, [f"m{i}", f"f{i}"], f"k{i}")
    good = [certificate_issued([f"m{i}", f"f{i}"], f"k{i}") for i in range(5)]
    bad_shape = certificate_issued(["x"])
    del bad_shape["data"]["holder_ids"]
    payloads = [b"{not json", json.dumps(bad_shape).encode()] + [
        json.dumps(e).encode() for e in good
    ]
    await publish(
        stack.nats.url, "lingju.registry.certificate.issued", payloads, [None] * len(payloads)
    )

    async def settled() -> list[dict[str, Any]]:
        assert await stack.count_rows("benefits", "enrollments") == 10
        r = await stack.benefits.get("/api/v1/admin/dead-letters", headers=stack.auth("admin"))
        assert r.status_code == 200
        items = r.json()["items"]
        assert len(items) == 2
        return items  # type: ignore[no-any-return]

    dead = await eventually(settled)
    max_deliver = stack.settings.consumer_max_deliver
    assert all(d["attempts"] == max_deliver for d in dead)
    assert {d["event_type"] for d in dead} == {None, "lingju.registry.certificate.issued"}
    assert any("holder_ids" in d["error"] for d in dead)

    # A malformed event cannot be replayed into an effect: the admin is told why.
    r = await stack.benefits.post(
        f"/api/v1/admin/dead-letters/{dead[0]['id']}/replay", headers=stack.auth("admin")
    )
    assert r.status_code == 409
    assert r.json()["code"] == "replay_failed"
    # Only admins see dead letters.
    r = await stack.benefits.get(
        "/api/v1/admin/dead-letters", headers=stack.auth("county_officer", "330102")
    )
    assert r.status_code == 403


async def test_dead_letter_replayed_once_its_prerequisite_arrived(stack: InProcessStack) -> None:
    """An enrollment notice for a payee notify has not heard of yet waits, then dead-letters;
    after the person's registration arrives, an admin replays it into exactly one message."""
    person_id = str(uuid.uuid4())
    notice = envelope(
        "lingju.benefits.enrollment.activated",
        {
            "enrollment_id": "e1",
            "program": "only_child_parent_reward",
            "program_name": "独生子女父母奖励费",
            "person_id": person_id,
            "payee_id": person_id,
            "region_code": "330102001001",
            "pays_from": "2026-01",
            "pays_until": "2030-05",
            "monthly_fen": 1000,
        },
    )
    await publish(
        stack.nats.url,
        "lingju.benefits.enrollment.activated",
        [json.dumps(notice).encode()],
        [notice["id"]],
    )

    async def dead_lettered() -> str:
        r = await stack.notify.get("/api/v1/admin/dead-letters", headers=stack.auth("admin"))
        items = r.json()["items"]
        assert len(items) == 1
        return items[0]["id"]  # type: ignore[no-any-return]

    dead_id = await eventually(dead_lettered)
    registered = envelope(
        "lingju.registry.person.registered",
        {
            "person_id": person_id,
            "name": "孙丽",
            "sex": "female",
            "birth_date": "1970-01-01",
            "region_code": "330102001001",
            "residency": "registered",
            "household_type": "rural",
            "phone": "13700137000",
        },
    )
    await publish(
        stack.nats.url,
        "lingju.registry.person.registered",
        [json.dumps(registered).encode()],
        [registered["id"]],
    )

    async def contact_known() -> None:
        assert await stack.count_rows("notify", "contacts") == 1

    await eventually(contact_known)
    admin = stack.auth("admin")
    r = await stack.notify.post(f"/api/v1/admin/dead-letters/{dead_id}/replay", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True
    again = await stack.notify.post(f"/api/v1/admin/dead-letters/{dead_id}/replay", headers=admin)
    assert again.json()["applied"] is False
    inbox = await stack.notify.get(
        "/api/v1/inbox", headers=stack.auth("resident", person_id=person_id)
    )
    assert [m["title"] for m in inbox.json()["items"]] == ["待遇资格已确认"]
    assert await stack.count_rows("notify", "deliveries") == 2  # app + sms, once each


async def test_correlation_id_travels_from_request_into_events(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": 1},
        headers=stack.auth("village_worker", "330102001001"),
    )
    cid = "req-" + uuid.uuid4().hex
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": r.json()["version"]},
        headers={**stack.auth("township_officer", "330102001"), "X-Correlation-ID": cid},
    )
    assert r.headers["x-correlation-id"] == cid
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()

        async def enrollment_events() -> list[dict[str, Any]]:
            sub = await js.subscribe("lingju.benefits.enrollment.created", ordered_consumer=True)
            try:
                events = []
                while True:
                    try:
                        msg = await sub.next_msg(timeout=0.5)
                    except nats.errors.TimeoutError:
                        break
                    events.append(json.loads(msg.data))
            finally:
                await sub.unsubscribe()
            assert len(events) == 2
            return events

        events = await eventually(enrollment_events)
    finally:
        await nc.close()
    assert {e["correlationid"] for e in events} == {cid}
    assert {e["source"] for e in events} == {"/lingju/benefits"}


async def test_metrics_show_outbox_and_consumers(stack: InProcessStack) -> None:
    await stack.issue_certificate()
    await confirm_all_pending(stack, 2)

    async def flowed() -> None:
        # The holders are told: the certificate is issued, then each enrollment activated.
        assert await stack.count_rows("notify", "inbox_messages") == 4

    await eventually(flowed)
    text = (await stack.registry.get("/metrics")).text
    assert 'lingju_outbox_backlog{service="registry"} 0.0' in text
    assert 'lingju_events_published_total{service="registry"} 6.0' in text
