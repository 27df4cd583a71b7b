"""benefits, visits and notify keep copies of a person from registry's events, in order."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from services.benefits.models import PersonFacts as BenefitsFacts
from services.notify.models import CONTACT_PHONE, Contact
from services.visits.models import PersonFacts as VisitsFacts
from tests.support import TOWNSHIP, InProcessStack, eventually, published
from tests.test_event_delivery import publish


async def copies(stack: InProcessStack, person_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for service, model in (
        ("benefits", BenefitsFacts),
        ("visits", VisitsFacts),
        ("notify", Contact),
    ):
        async with stack.rt(service).db.session() as s:
            out[service] = (
                await s.scalars(select(model).where(model.person_id == person_id))
            ).first()
    return out


def notify_phone(stack: InProcessStack, contact: Contact) -> str:
    """Notify keeps the phone sealed (services/notify/models.py ENCRYPTED_COLUMNS)."""
    return stack.rt("notify").cipher.decrypt(contact.phone_enc or "", context=CONTACT_PHONE)


async def test_an_update_reaches_every_copy_and_a_late_old_event_changes_nothing(
    stack: InProcessStack,
) -> None:
    person = await stack.register_person(household_type="rural")
    r = await stack.registry.patch(
        f"/api/v1/persons/{person['id']}",
        headers=stack.auth("township_officer", TOWNSHIP),
        json={"household_type": "urban", "phone": "13911112222", "version": 1},
    )
    assert r.status_code == 200, r.text

    async def updated() -> dict[str, Any]:
        c = await copies(stack, person["id"])
        assert c["benefits"] is not None and c["benefits"].household_type == "urban"
        assert c["visits"] is not None and c["visits"].source_version == 2
        assert c["notify"] is not None and notify_phone(stack, c["notify"]) == "13911112222"
        return c

    await eventually(updated)

    # The registration (version 1) delivered again, late: the copies stay at version 2.
    registered = await published(stack, "registry", "lingju.registry.person.registered")
    late = {**registered[0], "id": str(uuid.uuid4())}  # a redelivery beyond the inbox's reach
    await publish(
        stack.nats.url,
        "lingju.registry.person.registered",
        [json.dumps(late).encode()],
        [late["id"]],
    )

    async def handled_late() -> None:
        for service in ("benefits", "visits", "notify"):
            total = sum(
                s.value
                for m in stack.rt(service).metrics.events_handled.collect()
                for s in m.samples
                if s.name.endswith("_total")
                and s.labels["outcome"] == "applied"
                and s.labels["type"] == "lingju.registry.person.registered"
            )
            assert total == 2  # the original and the late copy, both consumed

    await eventually(handled_late)
    c = await copies(stack, person["id"])
    assert c["benefits"].household_type == "urban" and c["benefits"].source_version == 2
    assert notify_phone(stack, c["notify"]) == "13911112222"
