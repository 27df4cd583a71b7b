"""Handlers of the events notify consumes: the contact directory, and routed messages.

A routed event becomes, in the handler's own transaction (so a redelivered event, already in
the consumer's inbox, does nothing again):
- per route and recipient, one ``notifications`` row, unique per (event, recipient,
  template): the database refuses a second whatever delivers the event twice;
- per channel the recipient has on, one ``deliveries`` row. The app channel is the inbox,
  written at once. SMS, WeChat and webhook deliveries are queued for the dispatcher, held until
  the recipient's quiet hours end unless the category is critical;
- for a route with a digest, staff recipients get a ``digest_items`` line instead, sent as one
  message the next digest morning (``digests.py``).
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.notify import feed, templates
from services.notify.domain import preferences as prefs
from services.notify.domain.routing import (
    Category,
    Route,
    Routing,
    parse_routing,
    render,
)
from services.notify.domain.templates import placeholders
from services.notify.models import (
    CONTACT_PHONE,
    DELIVERY_ADDRESS,
    Contact,
    Delivery,
    DigestItem,
    InboxMessage,
    Notification,
    Preference,
    Template,
)
from services.notify.recipients import Recipient, resolve
from services.notify.sealed import cipher_of, seal, unseal
from services.notify.views import VIEWS
from shared.crypto import EVENT_PHONE_CONTEXT
from shared.db import dialect_insert, utcnow
from shared.events import CloudEvent
from shared.events.consumer import Handler
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy

ROUTING_FILE = Path(__file__).with_name("routing.toml")


@lru_cache(maxsize=1)
def routing() -> Routing:
    """The county's routing, read once: the file changes with a deployment, not at run time."""
    return parse_routing(tomllib.loads(ROUTING_FILE.read_text("utf-8")), set(VIEWS))


# -- the contact directory -----------------------------------------------------------------------


class PersonRegisteredView(ConsumedData):
    person_id: str
    name: str
    region_code: str
    phone_enc: str | None = None  # v2: sealed by registry (shared.crypto.EVENT_PHONE_CONTEXT)
    phone: str | None = None  # v1, still in a stream written before v2: in clear
    version: int = 1  # person.registered carries none: it is the first


async def on_person_contact(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep the contact directory current."""
    data = PersonRegisteredView.model_validate(event.data)
    cipher = cipher_of(uow.settings)
    phone = unseal(cipher, data.phone_enc, EVENT_PHONE_CONTEXT) or data.phone
    values = data.model_dump(exclude={"version", "phone", "phone_enc"})
    values["phone_enc"] = seal(cipher, phone, CONTACT_PHONE)
    await apply_copy(uow, Contact, "person_id", values, data.version)


# -- routed events -------------------------------------------------------------------------------


async def on_routed_event(uow: UnitOfWork, event: CloudEvent) -> None:
    """Every route the event matches, for every recipient it names (see the module doc)."""
    VIEWS[event.type].model_validate(event.data)  # a malformed event dead-letters, named
    person_name = await _person_name(uow, event.data)  # once per event, not per recipient
    cipher = cipher_of(uow.settings)
    for route in routing().for_event(event.type, event.data):
        template = await templates.current(uow.session, route.template)  # once per route
        told: set[str] = set()
        for spec in route.recipients:
            for recipient in await resolve(uow.session, cipher, spec, event.data):
                if recipient.key in told:  # named twice by one route (agent = officer)
                    continue
                told.add(recipient.key)
                await _tell(uow, event, route, template, recipient, person_name)


async def _person_name(uow: UnitOfWork, data: Mapping[str, Any]) -> str:
    pid = data.get("person_id")
    if not pid:
        return ""
    contact = await uow.session.get(Contact, str(pid))
    return contact.name if contact else ""


def _insert_ignore(uow: UnitOfWork, table: Any, row: dict[str, Any]) -> Any:
    return dialect_insert(uow.session, table).values(row).on_conflict_do_nothing()


async def _tell(
    uow: UnitOfWork,
    event: CloudEvent,
    route: Route,
    template: Template,
    recipient: Recipient,
    person_name: str,
) -> None:
    s = uow.session
    values = {
        **event.data,
        "recipient_name": recipient.name,
        "person_name": person_name,
    }
    if route.digest and recipient.key.startswith("staff:"):
        day = prefs.digest_day(uow.clock.now(), uow.settings.notify_digest_hour)
        await s.execute(
            _insert_ignore(
                uow,
                DigestItem.__table__,
                {
                    "recipient": recipient.key,
                    "digest": route.digest,
                    "day": day,
                    "event_id": event.id,
                    "region_code": recipient.region_code,
                    "line": render(template.app_body, values)[:300],
                    "created_at": utcnow(),
                },
            )
        )
        return
    await deliver(
        uow,
        Message(
            event_id=event.id,
            event_type=event.type,
            template=template,
            values=values,
            category=routing().categories[route.category],
            channels=route.channels,
            important=route.important,
            payload=event.model_dump(mode="json"),
        ),
        recipient,
        fallback_region=str(event.data.get("region_code", "")),
    )


@dataclass(frozen=True)
class Message:
    """One thing to tell, before it is told to one recipient."""

    event_id: str
    event_type: str
    template: Template
    values: Mapping[str, Any]
    category: Category
    channels: tuple[str, ...]
    important: bool = False
    payload: dict[str, Any] | None = None  # a webhook's body


async def deliver(
    uow: UnitOfWork, message: Message, recipient: Recipient, fallback_region: str = ""
) -> str | None:
    """Write the notification and its deliveries; the notification's id, or None when this
    event already told this recipient with this template (the database's unique key)."""
    s = uow.session
    template, values, category = message.template, message.values, message.category
    notification_id = str(uuid.uuid4())
    inserted = await s.execute(
        _insert_ignore(
            uow,
            Notification.__table__,
            {
                "id": notification_id,
                "event_id": message.event_id,
                "event_type": message.event_type,
                "recipient": recipient.key,
                "template": template.code,
                "template_version": template.version,
                "category": category.code,
                "critical": category.critical,
                "important": message.important,
                "region_code": recipient.region_code or fallback_region,
                "title": render(template.title, values)[:100],
                "created_at": utcnow(),
            },
        )
    )
    if inserted.rowcount != 1:  # type: ignore[attr-defined]
        return None
    preference = await s.get(Preference, (recipient.key, category.code))
    settings = uow.settings
    quiet = prefs.quiet_hours(
        preference.quiet_start if preference else None,
        preference.quiet_end if preference else None,
        settings.notify_quiet_start,
        settings.notify_quiet_end,
    )
    now = uow.clock.now()
    for channel in prefs.channels_for(
        message.channels, preference.channels_off if preference else []
    ):
        if channel == "app":
            body = render(template.app_body, values)
            delivery = new_delivery(notification_id, channel, None, body, None, delivered=True)
            s.add(delivery)
            await s.flush()
            s.add(
                InboxMessage(
                    id=str(uuid.uuid4()),
                    recipient=recipient.key,
                    notification_id=notification_id,
                    delivery_id=delivery.id,
                    title=render(template.title, values)[:100],
                    body=body,
                    important=message.important,
                )
            )
            continue
        address = recipient.address(channel)
        if not address:
            continue  # no number, openid or URL for this channel: the inbox still has it
        if channel == "wechat" and not (template.wechat or {}).get("template_id"):
            continue  # the county has no WeChat template for it yet: nothing WeChat would take
        body, params = _channel_text(channel, template, values, message.payload)
        at, held = now, None
        if message.important and channel == "sms" and "app" in message.channels:
            # App first: the SMS waits, and is dropped if the inbox message is read meanwhile.
            at, held = now + timedelta(hours=settings.notify_escalate_after_hours), "unread"
        quiet_end = prefs.hold_until(at, channel, category.critical, *quiet)
        if quiet_end is not None:
            at, held = quiet_end, held or "quiet_hours"
        s.add(
            new_delivery(
                notification_id,
                channel,
                seal(cipher_of(settings), address, DELIVERY_ADDRESS),
                body,
                params,
                not_before=at if held else None,
                held=held,
            )
        )
    return notification_id


def _channel_text(
    channel: str, template: Template, values: Mapping[str, Any], payload: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """The text of a channel, and what its provider needs besides (see Delivery.params)."""
    if channel == "sms":
        # An SMS platform's approved template takes the variables themselves, in order.
        try:
            found = placeholders(template.sms_body)
        except ValueError:  # saved templates are checked; a broken one still sends its text
            found = []
        params = {
            name: render("{" + name + (f"|{flt}" if flt else "") + "}", values)
            for name, flt in found
        }
        return render(template.sms_body, values), {"template": template.code, "vars": params}
    if channel == "wechat":
        wechat = template.wechat or {}
        fields = {k: render(str(v), values) for k, v in (wechat.get("fields") or {}).items()}
        return render(template.title, values), {
            "template": template.code,
            "template_id": wechat.get("template_id") or None,
            "vars": fields,
        }
    # webhook: the event itself, as the producer published it
    return render(template.title, values), {"template": template.code, "payload": payload}


def new_delivery(
    notification_id: str,
    channel: str,
    address_enc: str | None,
    body: str,
    params: dict[str, Any] | None,
    *,
    not_before: datetime | None = None,
    held: str | None = None,
    delivered: bool = False,
) -> Delivery:
    """A delivery row: the app channel is delivered as it is written; the others queue.
    ``address_enc``: the address sealed with context ``DELIVERY_ADDRESS``."""
    now = utcnow()
    return Delivery(
        id=str(uuid.uuid4()),
        notification_id=notification_id,
        channel=channel,
        address_enc=address_enc,
        body=body[:2000],
        params=params,
        status="delivered" if delivered else "queued",
        not_before=not_before,
        held=held,
        created_at=now,
        updated_at=now,
        sent_at=now if delivered else None,
        delivered_at=now if delivered else None,
    )


def with_feed(handler: Handler | None) -> Handler:
    """``handler`` (if any), then the event feed's fan-out, in the same transaction."""

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        if handler is not None:
            await handler(uow, event)
        await feed.fan_out(uow, event)

    handle.__name__ = getattr(handler, "__name__", "feed_only")
    return handle


_OWN: dict[str, Handler] = {
    "lingju.registry.person.registered": on_person_contact,
    "lingju.registry.person.updated": on_person_contact,
    **{event_type: on_routed_event for event_type in routing().routes},
}
# Every type Lingju publishes reaches notify (its durable consumers' filter subjects follow
# these keys), so the event feed can pass on any of them.
HANDLERS: dict[str, Handler] = {
    event_type: with_feed(_OWN.get(event_type))
    for event_type in sorted({*_OWN, *feed.publishable_event_types()})
}
