"""Handlers of the events notify consumes: the contact directory and routed messages."""

from __future__ import annotations

import tomllib
import uuid
from functools import lru_cache
from pathlib import Path

from services.notify.domain.routing import Route, parse_routes, render
from services.notify.models import Contact, Delivery, InboxMessage
from shared.db import utcnow
from shared.events import CloudEvent
from shared.events.consumer import RetryLater
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy

ROUTING_FILE = Path(__file__).with_name("routing.toml")


@lru_cache(maxsize=1)
def routes() -> dict[str, list[Route]]:
    return parse_routes(tomllib.loads(ROUTING_FILE.read_text("utf-8")))


class PersonRegisteredView(ConsumedData):
    person_id: str
    name: str
    region_code: str
    phone: str | None = None
    version: int = 1  # person.registered carries none: it is the first


async def on_person_contact(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep the contact directory current."""
    data = PersonRegisteredView.model_validate(event.data)
    await apply_copy(uow, Contact, "person_id", data.model_dump(exclude={"version"}), data.version)


async def on_routed_event(uow: UnitOfWork, event: CloudEvent) -> None:
    """Write one delivery per (event, recipient, template, channel); the inbox row at once."""
    for route in routes().get(event.type, []):
        recipient = event.data.get(route.recipient)
        if not recipient:
            continue
        contact = await uow.session.get(Contact, recipient)
        if contact is None and "sms" in route.channels:
            # Events are not ordered across streams: the person may not be in the directory yet.
            raise RetryLater(f"contact {recipient} not known yet")
        values = {**event.data, "name": contact.name if contact else ""}
        for channel in route.channels:
            delivery = Delivery(
                id=str(uuid.uuid4()),
                event_id=event.id,
                recipient_id=recipient,
                template=route.template,
                channel=channel,
                body="",
                status="pending",
            )
            if channel == "app":
                delivery.body = render(route.body, values)
                delivery.status, delivery.sent_at = "delivered", utcnow()
                uow.session.add(delivery)
                uow.session.add(
                    InboxMessage(
                        id=str(uuid.uuid4()),
                        person_id=recipient,
                        delivery_id=delivery.id,
                        title=render(route.title, values),
                        body=delivery.body,
                    )
                )
            elif channel == "sms":
                if contact is None or not contact.phone:
                    continue  # nobody to text: the inbox still has it
                delivery.address, delivery.body = contact.phone, render(route.sms, values)
                uow.session.add(delivery)


HANDLERS = {
    "lingju.registry.person.registered": on_person_contact,
    "lingju.registry.person.updated": on_person_contact,
    **{event_type: on_routed_event for event_type in routes()},
}
