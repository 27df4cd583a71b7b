"""Staff webhooks: each signed with its own secret, rotated with a grace period during which the
old secret still verifies, and never pointed at an internal host (at registration, and again
right before each send). Real broker, real dispatcher, a real HTTP receiver on loopback."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.notify.models import STAFF_WEBHOOK_SECRET, STAFF_WEBHOOK_URL, Delivery, StaffContact
from services.notify.sealed import seal
from services.notify.tests.fake_providers import WEBHOOK_SECRET, FakeProviders, RecordedRequest
from services.notify.tests.test_delivery import WORKER, add_people, emit, rows, sample
from services.notify.webhook_targets import TargetRefused, check_address
from shared.clock import SHANGHAI, FixedClock
from shared.devstack import NatsServer
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureInvalid, verify
from tests.support import (
    OTHER_TOWNSHIP,
    TOWNSHIP,
    VILLAGE,
    InProcessStack,
    clean_stack,
    eventually,
)
from tests.test_event_delivery import envelope

URL = "/api/v1/staff-contacts"
CJK = re.compile(r"[\u4e00-\u9fff]")


def worker_entry(webhook_url: str | None) -> dict[str, object]:
    return {
        "name": "王芳",
        "role": "village_worker",
        "region_code": VILLAGE,
        "phone": "13900000002",
        "webhook_url": webhook_url,
    }


async def hook_after_an_event(stack: InProcessStack, fake: FakeProviders) -> RecordedRequest:
    """The webhook request an assignment change for the worker makes."""
    fake.requests.clear()
    changed = {**sample("lingju.visits.assignment.changed"), "assignee_sub": WORKER}
    await emit(stack, envelope("lingju.visits.assignment.changed", changed))

    async def arrived() -> RecordedRequest:
        hooks = fake.requests_to("webhook")
        assert len(hooks) == 1, [
            (d.status, d.last_error)
            for d in await rows(stack, Delivery, Delivery.channel == "webhook")
        ]
        (hook,) = hooks
        return hook

    return await eventually(arrived, within=10)


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


def signatures(hook: RecordedRequest) -> int:
    return len(hook.headers[SIGNATURE_HEADER.lower()].split(","))


async def test_each_webhook_has_its_own_secret_and_rotation_keeps_the_old_one_for_a_while(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    await add_people(stack)
    admin = stack.auth("admin")
    r = await stack.notify.put(
        f"{URL}/{WORKER}", json=worker_entry(fake.webhook_url("clinic")), headers=admin
    )
    assert r.status_code == 200, r.text
    secret = r.json()["webhook_secret"]
    assert secret and secret != WEBHOOK_SECRET

    hook = await hook_after_an_event(stack, fake)
    assert verifies(secret, hook) and signatures(hook) == 1
    assert not verifies(WEBHOOK_SECRET, hook)  # the one setting signs nothing any more

    # Saving the entry again with the same URL keeps the secret (and does not show it).
    r = await stack.notify.put(
        f"{URL}/{WORKER}", json=worker_entry(fake.webhook_url("clinic")), headers=admin
    )
    assert r.status_code == 200 and r.json()["webhook_secret"] is None

    # Rotation: a new secret, answered once; the old one still signs for the grace period.
    before = datetime.now(SHANGHAI)
    r = await stack.notify.post(f"{URL}/{WORKER}/webhook-secret/rotate", headers=admin)
    assert r.status_code == 200, r.text
    rotated = r.json()
    new = rotated["webhook_secret"]
    assert new and new != secret and rotated["sub"] == WORKER
    until = datetime.fromisoformat(rotated["previous_valid_until"])
    assert timedelta(hours=24) <= until - before < timedelta(hours=24, minutes=5)

    hook = await hook_after_an_event(stack, fake)
    assert signatures(hook) == 2
    assert verifies(new, hook)
    assert verifies(secret, hook)  # a receiver that has not switched yet still verifies

    # Nearly a day later it still does; once the grace period is over, only the new one.
    clock = FixedClock(before + timedelta(hours=23))
    stack.rt("notify").clock = clock
    hook = await hook_after_an_event(stack, fake)
    assert verifies(secret, hook) and verifies(new, hook)
    clock.set(until + timedelta(minutes=1))
    hook = await hook_after_an_event(stack, fake)
    assert verifies(new, hook) and signatures(hook) == 1
    assert not verifies(secret, hook)

    # Another URL is another receiver: a secret of its own, no grace for the old one.
    r = await stack.notify.put(
        f"{URL}/{WORKER}", json=worker_entry(fake.webhook_url("clinic-2")), headers=admin
    )
    third = r.json()["webhook_secret"]
    assert third and third not in (secret, new)
    hook = await hook_after_an_event(stack, fake)
    assert hook.path == "/webhook/clinic-2"
    assert verifies(third, hook) and not verifies(new, hook)


async def test_who_may_rotate_a_webhook_secret(stack: InProcessStack) -> None:
    admin = stack.auth("admin")
    r = await stack.notify.put(
        f"{URL}/w-1", json=worker_entry("https://hooks.example.cn/t/k"), headers=admin
    )
    assert r.status_code == 201, r.text
    r = await stack.notify.put(f"{URL}/w-2", json=worker_entry(None), headers=admin)
    assert r.status_code == 201, r.text

    county = stack.auth("county_officer", VILLAGE[:6], sub="county-1")
    r = await stack.notify.post(f"{URL}/w-1/webhook-secret/rotate", headers=county)
    assert r.status_code == 200, r.text
    assert r.json()["webhook_secret"]

    refusals = [
        ("w-1", stack.auth("township_officer", TOWNSHIP), 403, "forbidden"),
        ("w-1", stack.auth("village_worker", VILLAGE, sub="w-1"), 403, "forbidden"),
        ("w-1", stack.auth("county_officer", OTHER_TOWNSHIP[:4] + "99"), 403, "out_of_region"),
        ("w-2", admin, 409, "no_webhook"),
        ("nobody", admin, 404, "not_found"),
    ]
    for sub, headers, status, code in refusals:
        r = await stack.notify.post(f"{URL}/{sub}/webhook-secret/rotate", headers=headers)
        assert (r.status_code, r.json()["code"]) == (status, code), (sub, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


# -- no requests to internal hosts ---------------------------------------------------------------


@pytest.fixture
async def strict_stack(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[InProcessStack]:
    """The stack as production runs it: webhooks only to public https hosts."""
    async with clean_stack(
        databases, nats_server, tmp_path, notify_webhook_allow_private=False
    ) as stack:
        yield stack


FORBIDDEN_URLS = [
    "http://hooks.example.cn/t",  # not https
    "https://127.0.0.1/hook",
    "https://10.0.0.5/hook",
    "https://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
    "https://[::1]/hook",
    "https://localhost/hook",  # a name that resolves to loopback
    "https://localhost:8443/hook",
]


async def test_a_webhook_to_an_internal_host_is_refused_at_registration(
    strict_stack: InProcessStack,
) -> None:
    stack = strict_stack
    officer = stack.auth("county_officer", VILLAGE[:6])
    for url in FORBIDDEN_URLS:
        r = await stack.notify.put(f"{URL}/w-ssrf", json=worker_entry(url), headers=officer)
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "webhook_url_forbidden", url
        assert CJK.search(r.json()["detail"]), r.json()
    r = await stack.notify.get(f"{URL}/w-ssrf", headers=stack.auth("admin"))
    assert r.status_code == 404  # nothing was written
    # Not a web address at all: a plain validation error.
    r = await stack.notify.put(
        f"{URL}/w-ssrf", json=worker_entry("ftp://hooks.example.cn/x"), headers=officer
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed")


async def test_a_webhook_whose_host_now_resolves_inside_is_refused_at_send_time(
    strict_stack: InProcessStack,
) -> None:
    stack = strict_stack
    await add_people(stack)
    # Registered while its name pointed elsewhere; now it resolves to loopback (DNS changed).
    cipher = stack.rt("notify").cipher
    async with stack.rt("notify").db.session() as s:
        worker = await s.get(StaffContact, WORKER)
        assert worker is not None
        worker.webhook_url_enc = seal(cipher, "https://localhost/hooks/clinic", STAFF_WEBHOOK_URL)
        worker.webhook_secret_enc = seal(cipher, "a-secret", STAFF_WEBHOOK_SECRET)
        await s.commit()
    changed = {**sample("lingju.visits.assignment.changed"), "assignee_sub": WORKER}
    await emit(stack, envelope("lingju.visits.assignment.changed", changed))

    async def failed() -> Delivery:
        (d,) = await rows(stack, Delivery, Delivery.channel == "webhook")
        assert d.status == "failed", (d.status, d.last_error)
        return d

    d = await eventually(failed, within=10)
    # One attempt, refused with the reason, not retried.
    assert d.attempts == 1
    assert "URL refused" in (d.last_error or "") and "loopback" in (d.last_error or "")
    assert "localhost" not in (d.last_error or "")  # the URL (it may hold a key) is not quoted


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # loopback written as IPv6
        "::ffff:10.0.0.5",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(TargetRefused):
        check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "223.5.5.5", "2400:3200::1"])
def test_public_addresses_pass(address: str) -> None:
    check_address(ipaddress.ip_address(address))
