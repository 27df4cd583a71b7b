"""No phone, WeChat openid, webhook URL or webhook secret in clear in notify's database.

A resident is registered in registry (notify copies the contact from the event) and binds
WeChat; a worker is put in the staff directory with a phone and a webhook, and binds WeChat;
both are told something by SMS (the development file provider), the worker also by webhook. Then
every cell of every notify table is read by SQL, not through the ORM, and none holds any of
those values, while the messages still went out to the real number and URL.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from services.notify.models import ENCRYPTED_COLUMNS, Contact, Delivery
from services.notify.tests.fake_providers import FakeProviders
from services.notify.tests.test_delivery import emit, rows, sample
from shared.db import Database
from tests.support import VILLAGE, InProcessStack, eventually
from tests.test_event_delivery import envelope

RESIDENT_PHONE = "13912345678"
RESIDENT_OPENID = "oResidentSealed0000000000001"
WORKER, WORKER_PHONE = "worker-sealed", "13700001111"
WORKER_OPENID = "oWorkerSealed00000000000002"


def _messages(path: Path) -> list[dict[str, object]]:
    """What the development provider sent (one JSON line each)."""
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


async def _cells(url: str) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every non-null cell of the database."""
    db = Database(url)
    out: list[tuple[str, str, str]] = []
    try:
        async with db.session() as s:
            if url.startswith("sqlite"):
                names = (
                    await s.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
                ).scalars()
                tables = list(names)
            else:
                tables = list(
                    (
                        await s.execute(
                            text(
                                "SELECT table_name FROM information_schema.tables"
                                " WHERE table_schema = current_schema()"
                                " AND table_type = 'BASE TABLE'"
                            )
                        )
                    ).scalars()
                )
            for table in tables:
                result = await s.execute(text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if value is not None:
                            out.append((table, column, str(value)))
    finally:
        await db.dispose()
    return out


async def test_contact_details_are_sealed_at_rest_and_still_delivered(
    stack: InProcessStack, fake: FakeProviders
) -> None:
    notify = stack.notify
    admin = stack.auth("admin")

    # The resident, through registry and its event; they bind WeChat in the app.
    person = await stack.register_person(phone=RESIDENT_PHONE)
    pid = person["id"]

    async def copied() -> None:
        assert await rows(stack, Contact, Contact.person_id == pid)

    await eventually(copied, within=10)
    me = stack.auth("resident", person_id=pid)
    r = await notify.put("/api/v1/me/wechat", headers=me, json={"openid": RESIDENT_OPENID})
    assert r.status_code == 200, r.text

    # The worker, with a phone and a webhook (a real receiver on loopback); binds WeChat too.
    hook_url = fake.webhook_url("clinic/key-7f3a9c")
    r = await notify.put(
        f"/api/v1/staff-contacts/{WORKER}",
        json={
            "name": "王芳",
            "role": "village_worker",
            "region_code": VILLAGE,
            "phone": WORKER_PHONE,
            "webhook_url": hook_url,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    webhook_secret = r.json()["webhook_secret"]
    worker = stack.auth("village_worker", VILLAGE, sub=WORKER)
    r = await notify.put("/api/v1/me/wechat", headers=worker, json={"openid": WORKER_OPENID})
    assert r.status_code == 200, r.text

    # Each is told something: an SMS to the resident, an SMS and a webhook to the worker.
    paid = {
        **sample("lingju.benefits.payment.disbursed"),
        "person_id": pid,
        "payee_id": pid,
        "region_code": VILLAGE,
    }
    await emit(stack, envelope("lingju.benefits.payment.disbursed", paid))
    overdue = {
        **sample("lingju.registry.application.overdue"),
        "level": "village",
        "region_code": VILLAGE,
    }
    await emit(stack, envelope("lingju.registry.application.overdue", overdue))

    message_file = Path(stack.settings.notify_file_provider_path or "")

    async def delivered() -> list[dict[str, object]]:
        sent = _messages(message_file)
        assert {m["address"] for m in sent if m["channel"] == "sms"} == {
            RESIDENT_PHONE,
            WORKER_PHONE,
        }
        assert len(fake.requests_to("webhook")) == 1
        hooks = await rows(stack, Delivery, Delivery.channel == "webhook")
        assert [d.status for d in hooks] == ["delivered"]
        return sent

    await eventually(delivered, within=15)
    (hook,) = fake.requests_to("webhook")
    assert hook.path == "/webhook/clinic/key-7f3a9c"

    # Officers see where a message went, masked; the dispatcher opened the real addresses.
    r = await notify.get(
        "/api/v1/notifications", params={"recipient": f"person:{pid}"}, headers=admin
    )
    (n,) = r.json()["items"]
    assert {d["address"] for d in n["deliveries"] if d["channel"] == "sms"} == {"139****5678"}
    # The directory shows the worker's phone masked, even to an admin.
    r = await notify.get(f"/api/v1/staff-contacts/{WORKER}", headers=admin)
    assert r.json()["phone"] == "137****1111" and r.json()["wechat_bound"] is True

    # Now the database itself, cell by cell.
    cells = await _cells(stack.databases["notify"])
    secrets = {
        "resident phone": RESIDENT_PHONE,
        "resident openid": RESIDENT_OPENID,
        "worker phone": WORKER_PHONE,
        "worker openid": WORKER_OPENID,
        "webhook URL": hook_url,
        "webhook key": "key-7f3a9c",
        "webhook secret": webhook_secret,
    }
    found = [
        f"{table}.{column} holds the {what}"
        for table, column, value in cells
        for what, needle in secrets.items()
        if needle in value
    ]
    assert not found, found
    # The scan sees what is stored in clear (the person's id) and the sealed columns are full.
    assert any(pid in value for _, _, value in cells)
    sealed = {(c.table, c.column) for c in ENCRYPTED_COLUMNS}
    filled = {(t, c) for t, c, _ in cells if (t, c) in sealed}
    assert {
        ("contacts", "phone_enc"),
        ("contacts", "wechat_openid_enc"),
        ("staff_contacts", "phone_enc"),
        ("staff_contacts", "wechat_openid_enc"),
        ("staff_contacts", "webhook_url_enc"),
        ("staff_contacts", "webhook_secret_enc"),
        ("deliveries", "address_enc"),
    } <= filled
