"""The outbound event feed: subscriptions, fan-out once per event, signed delivery, retries with
backoff, dead letters and their retry, the delivery log, ownership, SSRF. Real broker, real
dispatcher, a real HTTP receiver on loopback (FakeProviders' webhook endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.notify.feed import fan_out, publishable_event_types
from services.notify.models import FeedDelivery
from services.notify.tests.fake_providers import FakeProviders, RecordedRequest
from services.notify.tests.test_delivery import emit, rows
from shared.devstack import NatsServer
from shared.events import CloudEvent
from shared.events.outbox import UnitOfWork
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureInvalid, verify
from tests.support import InProcessStack, clean_stack, eventually
from tests.test_event_delivery import envelope

URL = "/api/v1/feed/subscriptions"
# Types notify alone consumes (no other service's handler chews on the tests' small payloads).
BORN = "lingju.visits.visit.recorded"
DIED = "lingju.visits.procedure.recorded"
CREATED = "lingju.benefits.enrollment.created"
BUREAU = "county-bureau"


@pytest.fixture
async def feed_stack(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path, fake: FakeProviders
) -> AsyncIterator[InProcessStack]:
    async with clean_stack(
        databases,
        nats_server,
        tmp_path,
        notify_feed_backoff_base_seconds=0.05,
        notify_feed_backoff_cap_seconds=0.2,
        notify_feed_max_attempts=3,
        notify_provider_timeout_seconds=2.0,
    ) as stack:
        yield stack


def bureau(stack: InProcessStack, sub: str = BUREAU) -> dict[str, str]:
    return stack.auth("bureau_system", "330102", sub=sub)


async def subscribe(
    stack: InProcessStack, url: str, types: list[str], sub: str = BUREAU
) -> dict[str, Any]:
    r = await stack.notify.post(
        URL, json={"url": url, "event_types": types}, headers=bureau(stack, sub)
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["secret"] and body["owner"] == sub and body["event_types"] == types
    return body


def verifies(secret: str, hook: RecordedRequest) -> bool:
    try:
        verify(
            secret,
            hook.headers.get(TIMESTAMP_HEADER.lower()),
            hook.headers.get(SIGNATURE_HEADER.lower()),
            hook.body,
            max_age_seconds=300,
        )
    except SignatureInvalid:
        return False
    return True


def hooks(fake: FakeProviders, name: str) -> list[RecordedRequest]:
    return [h for h in fake.requests_to("webhook") if h.path == f"/webhook/{name}"]


async def log_of(stack: InProcessStack, sid: str, **params: str) -> list[dict[str, Any]]:
    r = await stack.notify.get(f"{URL}/{sid}/deliveries", params=params, headers=bureau(stack))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_the_catalogue_is_what_the_services_publish() -> None:
    types = publishable_event_types()
    assert {BORN, DIED, CREATED, "lingju.registry.child.born"} <= set(types)
    assert "lingju.benefits.payment.disbursed" in types
    assert all(t.split(".")[1] in ("registry", "benefits", "visits") for t in types)


async def test_a_subscription_gets_exactly_its_types_once_each_signed(
    feed_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = feed_stack
    a = await subscribe(stack, fake.webhook_url("a"), [BORN, DIED])
    b = await subscribe(stack, fake.webhook_url("b"), [CREATED, BORN])
    r = await stack.notify.patch(  # b changes its mind: not BORN after all
        f"{URL}/{b['id']}", json={"event_types": [CREATED]}, headers=bureau(stack)
    )
    assert r.status_code == 200 and r.json()["event_types"] == [CREATED], r.text
    born = envelope(BORN, {"person_id": "p-1", "region_code": "330102001001"})
    await emit(stack, born)
    await emit(stack, born)  # delivered twice by the broker
    await emit(stack, envelope(DIED, {"person_id": "p-2"}))
    await emit(stack, envelope(CREATED, {"enrollment_id": "e-1"}))

    async def arrived() -> None:
        assert len(hooks(fake, "a")) == 2 and len(hooks(fake, "b")) == 1

    await eventually(arrived, within=10)
    # The same event once more, straight into the fan-out (as a replay would): nothing new.
    rt = stack.rt("notify")
    async with UnitOfWork(rt.db, rt.outbox, rt.clock, rt.settings) as uow:
        assert await fan_out(uow, CloudEvent.model_validate(born)) == 0
        await uow.commit()
    await asyncio.sleep(1.0)  # a second POST, if any were coming, would have come by now
    got_a, got_b = hooks(fake, "a"), hooks(fake, "b")
    assert sorted(h.headers["x-lingju-event-type"] for h in got_a) == sorted([BORN, DIED])
    assert [h.headers["x-lingju-event-type"] for h in got_b] == [CREATED]
    assert len(await rows(stack, FeedDelivery)) == 3

    first = next(h for h in got_a if h.headers["x-lingju-event-type"] == BORN)
    assert verifies(a["secret"], first) and not verifies(b["secret"], first)
    assert verifies(b["secret"], got_b[0])
    event = first.json()
    assert event["specversion"] == "1.0" and event["id"] == born["id"]
    assert event["type"] == BORN and event["data"] == born["data"]
    delivered = await log_of(stack, a["id"], status="delivered")
    (logged,) = [d for d in delivered if d["event_id"] == born["id"]]
    # The log names the delivery the receiver was told (its duplicate key).
    assert any(d["id"] == first.headers["x-lingju-delivery"] for d in await log_of(stack, a["id"]))
    assert logged["attempts"] == 1 and logged["log"][0]["outcome"] == "delivered"

    # Rotation: the next deliveries are signed with both secrets during the grace period.
    r = await stack.notify.post(f"{URL}/{a['id']}/secret/rotate", headers=bureau(stack))
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != a["secret"] and r.json()["previous_valid_until"]
    await emit(stack, envelope(DIED, {"person_id": "p-3"}))

    async def third() -> RecordedRequest:
        assert len(hooks(fake, "a")) == 3
        return hooks(fake, "a")[-1]

    hook = await eventually(third, within=10)
    assert verifies(new, hook) and verifies(a["secret"], hook)


async def test_a_failing_receiver_gets_it_after_retries_and_a_dead_one_can_be_retried(
    feed_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = feed_stack
    sub = await subscribe(stack, fake.webhook_url("flaky"), [BORN])

    # Fails twice, then answers: delivered on the third attempt, each attempt logged.
    fake.fail_next("webhook", 2, status=503)
    await emit(stack, envelope(BORN, {"person_id": "p-1"}))

    async def delivered() -> dict[str, Any]:
        (d,) = await log_of(stack, sub["id"])
        assert d["status"] == "delivered", d
        return d

    d = await eventually(delivered, within=10)
    assert d["attempts"] == 3
    assert [a["outcome"] for a in d["log"]] == ["unavailable", "unavailable", "delivered"]
    assert [a["http_status"] for a in d["log"]] == [503, 503, 204]
    sent = hooks(fake, "flaky")
    assert len(sent) == 3 and len({h.headers["x-lingju-delivery"] for h in sent}) == 1

    # Always failing: dead after the budget (3), shown in the log; the retry route re-queues.
    fake.requests.clear()
    fake.fail_next("webhook", 3, status=500)
    await emit(stack, envelope(BORN, {"person_id": "p-2"}))

    async def dead() -> dict[str, Any]:
        found = await log_of(stack, sub["id"], status="failed")
        assert len(found) == 1, await log_of(stack, sub["id"])
        return found[0]

    dead_one = await eventually(dead, within=10)
    assert dead_one["attempts"] == 3 and len(dead_one["log"]) == 3
    assert "retry budget" in dead_one["last_error"]
    assert len(hooks(fake, "flaky")) == 3

    r = await stack.notify.post(
        f"/api/v1/feed/deliveries/{dead_one['id']}/retry", headers=bureau(stack)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("queued", "sending", "delivered")

    async def revived() -> None:
        (d,) = [x for x in await log_of(stack, sub["id"]) if x["id"] == dead_one["id"]]
        assert d["status"] == "delivered", d
        assert len(d["log"]) == 4 and d["log"][-1]["outcome"] == "delivered"

    await eventually(revived, within=10)
    assert len(hooks(fake, "flaky")) == 4
    # Only a dead one goes back.
    r = await stack.notify.post(
        f"/api/v1/feed/deliveries/{dead_one['id']}/retry", headers=bureau(stack)
    )
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


async def test_a_client_reaches_only_its_own_subscriptions(
    feed_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = feed_stack
    mine = await subscribe(stack, fake.webhook_url("mine"), [BORN])
    theirs = await subscribe(stack, fake.webhook_url("theirs"), [BORN], sub="other-bureau")
    await emit(stack, envelope(BORN, {"person_id": "p-1"}))

    async def sent() -> list[dict[str, Any]]:
        items = await log_of(stack, mine["id"], status="delivered")
        assert len(items) == 1
        return items

    (delivery,) = await eventually(sent, within=10)
    other = bureau(stack, "other-bureau")
    r = await stack.notify.get(URL, headers=other)
    assert [s["id"] for s in r.json()["items"]] == [theirs["id"]]
    calls = [
        ("GET", f"{URL}/{mine['id']}", None),
        ("PATCH", f"{URL}/{mine['id']}", {"active": False}),
        ("DELETE", f"{URL}/{mine['id']}", None),
        ("POST", f"{URL}/{mine['id']}/secret/rotate", None),
        ("GET", f"{URL}/{mine['id']}/deliveries", None),
        ("POST", f"/api/v1/feed/deliveries/{delivery['id']}/retry", None),
    ]
    for method, path, body in calls:
        r = await stack.notify.request(method, path, json=body, headers=other)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # Other roles have no feed at all.
    r = await stack.notify.get(URL, headers=stack.auth("county_officer", "330102"))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    # An admin sees and manages every subscription.
    admin = stack.auth("admin")
    r = await stack.notify.get(URL, headers=admin)
    assert {s["id"] for s in r.json()["items"]} == {mine["id"], theirs["id"]}
    r = await stack.notify.patch(
        f"{URL}/{mine['id']}", json={"event_types": [DIED], "active": False}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["event_types"] == [DIED] and not r.json()["active"]
    assert r.json()["secret"] is None  # the same URL keeps its secret
    r = await stack.notify.get(f"{URL}/{mine['id']}", headers=bureau(stack))
    assert r.status_code == 200 and not r.json()["active"]
    r = await stack.notify.delete(f"{URL}/{mine['id']}", headers=bureau(stack))
    assert r.status_code == 204, r.text
    r = await stack.notify.get(f"{URL}/{mine['id']}", headers=bureau(stack))
    assert r.status_code == 404


async def test_unknown_event_types_are_named(feed_stack: InProcessStack) -> None:
    stack = feed_stack
    r = await stack.notify.post(
        URL,
        json={"url": "https://hooks.example.cn/x", "event_types": [BORN, "lingju.registry.nope"]},
        headers=bureau(stack),
    )
    assert (r.status_code, r.json()["code"]) == (422, "unknown_event_type"), r.text
    assert "lingju.registry.nope" in r.json()["detail"] and BORN not in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await stack.notify.get(URL, headers=bureau(stack))
    assert r.json()["items"] == []  # nothing written


@pytest.fixture
async def strict_stack(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[InProcessStack]:
    """As production runs it: webhooks only to public https hosts."""
    async with clean_stack(
        databases, nats_server, tmp_path, notify_webhook_allow_private=False
    ) as stack:
        yield stack


async def test_a_feed_to_an_internal_host_is_refused(strict_stack: InProcessStack) -> None:
    stack = strict_stack
    for url in (
        "http://hooks.example.cn/t",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
    ):
        r = await stack.notify.post(
            URL, json={"url": url, "event_types": [BORN]}, headers=bureau(stack)
        )
        assert (r.status_code, r.json()["code"]) == (422, "webhook_url_forbidden"), (url, r.text)
    r = await stack.notify.get(URL, headers=bureau(stack))
    assert r.json()["items"] == []
