"""Every notify route x every role x inside / outside, held to the policy declared in
services/notify/api/access.py (the harness: tests/access_matrix.py).

The records come through the real flows: residents and a certificate from the registry (notify
learns the contacts and tells the holders and their agent), overdue applications from the
registry's deadline sweep (notify tells the village worker and the township and county
officers), the staff directory and preferences through notify's own routes. An inbox is its
owner's: the inside caller of each role is the person or member of staff the messages went
to, the outside one another resident (the spouse) or member of staff of another region.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.notify.api.access import POLICY
from services.notify.tests.conftest import RECEIPT_TOKEN
from services.notify.tests.fake_providers import FakeProviders
from services.registry.deadlines import sweep_overdue
from shared.auth import Role
from shared.clock import FixedClock
from tests.access_matrix import Headers, World, check_matrix
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, eventually

COUNTY = VILLAGE[:6]
OTHER_COUNTY = "330103"
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"
# The registry's flows apply as the township's agent (tests/support.py): its token's sub.
AGENT = f"village_agent-{TOWNSHIP}"
WORKER, OFFICER_T, OFFICER_C = "matrix-worker", "matrix-officer-t", "matrix-officer-c"
ADMIN, AUDITOR, BUREAU = "matrix-admin", "matrix-auditor", "county-bureau"
STAFF = {
    AGENT: ("village_agent", TOWNSHIP, "13900000001"),
    WORKER: ("village_worker", VILLAGE, "13900000002"),
    OFFICER_T: ("township_officer", TOWNSHIP, "13900000003"),
    OFFICER_C: ("county_officer", COUNTY, "13900000004"),
}
# Set by every inside caller before the matrix runs: their own preferences show it, nobody
# else's do (the county's default quiet hours start at another time).
QUIET_START = "22:17"


def inside_tokens(stack: InProcessStack, resident: str) -> dict[Role, Headers]:
    return {
        Role.resident: stack.auth("resident", person_id=resident),
        Role.village_agent: stack.auth("village_agent", TOWNSHIP, sub=AGENT),
        Role.village_worker: stack.auth("village_worker", VILLAGE, sub=WORKER),
        Role.township_officer: stack.auth("township_officer", TOWNSHIP, sub=OFFICER_T),
        Role.county_officer: stack.auth("county_officer", COUNTY, sub=OFFICER_C),
        Role.bureau_system: stack.auth("bureau_system", COUNTY, sub=BUREAU),
        Role.admin: stack.auth("admin", "", sub=ADMIN),
        Role.auditor: stack.auth("auditor", COUNTY, sub=AUDITOR),
    }


def outside_tokens(stack: InProcessStack, resident: str) -> dict[Role, Headers]:
    """Another resident; staff of another village, township or county (an admin has none)."""
    return {
        Role.resident: stack.auth("resident", person_id=resident),
        Role.village_agent: stack.auth("village_agent", OTHER_TOWNSHIP, sub="agent-away"),
        Role.village_worker: stack.auth("village_worker", OTHER_VILLAGE, sub="worker-away"),
        Role.township_officer: stack.auth("township_officer", OTHER_TOWNSHIP, sub="town-away"),
        Role.county_officer: stack.auth("county_officer", OTHER_COUNTY, sub="county-away"),
        # Another system: the event feed's subscriptions are their owner's (the token's sub).
        Role.bureau_system: stack.auth("bureau_system", OTHER_COUNTY, sub="bureau-away"),
        Role.auditor: stack.auth("auditor", OTHER_COUNTY, sub="auditor-away"),
    }


def staff_entry(sub: str, webhook_url: str | None = None) -> dict[str, Any]:
    role, region, phone = STAFF[sub]
    entry = {"name": f"{sub}姓名", "role": role, "region_code": region, "phone": phone}
    return {**entry, "webhook_url": webhook_url} if webhook_url else entry


async def inbox_of(stack: InProcessStack, headers: Headers) -> list[dict[str, Any]]:
    r = await stack.notify.get("/api/v1/inbox", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_every_route_role_and_region_is_held_to_the_policy(
    notify_stack: InProcessStack, fake: FakeProviders
) -> None:
    stack = notify_stack
    admin = stack.auth("admin", sub=ADMIN)
    hook = fake.webhook_url("matrix")
    for sub in STAFF:
        r = await stack.notify.put(
            f"/api/v1/staff-contacts/{sub}",
            json=staff_entry(sub, hook if sub == WORKER else None),
            headers=admin,
        )
        assert r.status_code == 201, r.text

    # The bureau's event feed: one subscription to certificates (its delivery is the retry
    # route's record), two more for the bureau's and the admin's DELETE.
    bureau = inside_tokens(stack, "nobody")[Role.bureau_system]
    feed = {"url": fake.webhook_url("feed"), "event_types": ["lingju.registry.certificate.issued"]}
    subscriptions = []
    for _ in range(3):
        r = await stack.notify.post("/api/v1/feed/subscriptions", json=feed, headers=bureau)
        assert r.status_code == 201, r.text
        subscriptions.append(r.json()["id"])
    subscription = subscriptions[0]

    # One application waits at the village, one at the township; both run out of time. A third
    # is issued: its holders and the agent are told.
    clock = FixedClock(date(2026, 6, 1))
    stack.rt("registry").clock = clock
    at_village = await stack.submit_application()
    at_township = await stack.submit_application()
    r = await stack.registry.post(
        f"/api/v1/applications/{at_township['id']}/review",
        json={"decision": "approve", "version": at_township["version"]},
        headers=stack.auth("village_worker", VILLAGE),
    )
    assert r.status_code == 200, r.text
    issued = await stack.issue_certificate()
    mother, father = issued["mother"], issued["father"]
    due = max(date.fromisoformat(a["due_date"]) for a in (at_village, at_township))
    clock.set(due + timedelta(days=1))
    await sweep_overdue(stack.rt("registry"))

    inside = inside_tokens(stack, mother["id"])
    told = {  # how many messages each inside caller's inbox holds
        Role.resident: 1,
        Role.village_agent: 1,
        Role.village_worker: 1,
        Role.township_officer: 2,
        Role.county_officer: 1,
    }

    async def all_told() -> dict[Role, list[dict[str, Any]]]:
        got = {role: await inbox_of(stack, inside[role]) for role in told}
        assert {role: len(items) for role, items in got.items()} == told
        return got

    inboxes = await eventually(all_told, within=30)

    async def fed() -> str:
        r = await stack.notify.get(
            f"/api/v1/feed/subscriptions/{subscription}/deliveries", headers=bureau
        )
        (delivery,) = r.json()["items"]
        return str(delivery["id"])

    feed_delivery = await eventually(fed, within=30)
    messages = {role: [m["id"] for m in items] for role, items in inboxes.items()}
    r = await stack.notify.get(
        "/api/v1/notifications",
        params={"recipient": f"person:{mother['id']}"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    (notification,) = r.json()["items"]
    assert notification["region_code"] == VILLAGE

    for role, headers in inside.items():
        if role in (Role.bureau_system, Role.auditor):
            continue
        r = await stack.notify.put(
            "/api/v1/preferences/application",
            json={"quiet_start": QUIET_START, "quiet_end": "07:00"},
            headers=headers,
        )
        assert r.status_code == 200, r.text

    # The spouse has read theirs: an unread count that leaked the mother's would show.
    spouse = stack.auth("resident", person_id=father["id"])
    (theirs,) = await inbox_of(stack, spouse)
    r = await stack.notify.post(f"/api/v1/inbox/{theirs['id']}/read", headers=spouse)
    assert r.status_code == 200, r.text

    r = await stack.notify.get("/api/v1/templates/certificate_issued", headers=admin)
    assert r.status_code == 200, r.text
    template = r.json()["current"]

    world = World(
        params={
            "message_id": messages[Role.resident][0],
            "category": "application",
            "notification_id": notification["id"],
            "provider": "aliyun",
            "sub": WORKER,
            "code": "certificate_issued",
            "dead_letter_id": "00000000-0000-0000-0000-000000000000",
            "subscription_id": subscription,
            "delivery_id": feed_delivery,
        },
        # The spouse is told of the same certificate: a message of their own, not the mother's.
        inside=inside,
        outside=outside_tokens(stack, father["id"]),
        params_for={
            "POST /api/v1/inbox/{message_id}/read": {
                role: {"message_id": ids[0]} for role, ids in messages.items()
            },
            "DELETE /api/v1/feed/subscriptions/{subscription_id}": {
                Role.bureau_system: {"subscription_id": subscriptions[1]},
                Role.admin: {"subscription_id": subscriptions[2]},
            },
        },
        bodies={
            "PUT /api/v1/preferences/{category}": {"channels_off": ["wechat"]},
            "PUT /api/v1/me/wechat": {"openid": "oMatrixOpenid0001"},
            "PUT /api/v1/staff-contacts/{sub}": staff_entry(WORKER, hook),
            "PUT /api/v1/templates/{code}": {
                "version": template["version"],
                "title": template["title"],
                "app_body": template["app_body"],
                "sms_body": template["sms_body"],
                "wechat": template["wechat"],
                "note": "访问矩阵",
            },
            "POST /api/v1/templates/{code}/preview": {"values": {}},
            "POST /api/v1/receipts/{provider}": [],  # Aliyun's format: a list of reports
            "POST /api/v1/feed/subscriptions": feed,
            "PATCH /api/v1/feed/subscriptions/{subscription_id}": {"active": True},
        },
        queries={"POST /api/v1/receipts/{provider}": {"token": RECEIPT_TOKEN}},
        markers={
            "GET /api/v1/inbox": messages,
            # Compact JSON: each inside caller's own count of unread messages, none read yet
            # (so no outside call marked one read either).
            "GET /api/v1/inbox/unread-count": {
                role: [f'"unread":{len(ids)}'] for role, ids in messages.items()
            },
            "GET /api/v1/preferences": [QUIET_START],
            "GET /api/v1/notifications": [notification["id"]],
            "GET /api/v1/staff-contacts": [WORKER],
            "GET /api/v1/feed/subscriptions": [subscription],
            "GET /api/v1/feed/subscriptions/{subscription_id}/deliveries": [feed_delivery],
        },
        no_outside={
            key: "the record is the caller's own, found by the token: no other's can be named"
            for key in (
                "PUT /api/v1/preferences/{category}",
                "PUT /api/v1/me/wechat",
                "DELETE /api/v1/me/wechat",
            )
        },
    )
    wrong = await check_matrix(stack.notify, POLICY, world)
    assert wrong == [], "\n".join(wrong)

    # The inside calls reached their records: each owner's first message is read now.
    for role in told:
        r = await stack.notify.get("/api/v1/inbox/unread-count", headers=inside[role])
        assert r.json()["unread"] == told[role] - 1, (role, r.text)
