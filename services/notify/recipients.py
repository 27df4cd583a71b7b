"""Who a route tells, resolved from notify's own directories (never a call to another service):
residents from ``contacts`` (registry events), staff from ``staff_contacts``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.domain.routing import Recipients
from services.notify.models import (
    CONTACT_OPENID,
    CONTACT_PHONE,
    STAFF_OPENID,
    STAFF_PHONE,
    STAFF_WEBHOOK_PREVIOUS_SECRET,
    STAFF_WEBHOOK_SECRET,
    STAFF_WEBHOOK_URL,
    Contact,
    StaffContact,
    person_key,
    staff_key,
)
from services.notify.sealed import secrets_in_force, unseal
from shared.auth import Principal, Role
from shared.crypto import FieldCipher
from shared.events.consumer import RetryLater


@dataclass(frozen=True)
class Recipient:
    key: str  # person:<id> | staff:<sub>
    name: str
    region_code: str
    phone: str | None = None
    wechat_openid: str | None = None
    webhook_url: str | None = None

    def address(self, channel: str) -> str | None:
        return {"sms": self.phone, "wechat": self.wechat_openid, "webhook": self.webhook_url}.get(
            channel
        )


def recipient_of(principal: Principal) -> str:
    """The inbox and preferences key of the caller: a resident's person, else staff by sub."""
    if principal.role is Role.resident and principal.person_id:
        return person_key(principal.person_id)
    return staff_key(principal.sub)


def person_recipient(c: Contact, cipher: FieldCipher) -> Recipient:
    return Recipient(
        person_key(c.person_id),
        c.name,
        c.region_code,
        unseal(cipher, c.phone_enc, CONTACT_PHONE),
        unseal(cipher, c.wechat_openid_enc, CONTACT_OPENID),
    )


def staff_recipient(c: StaffContact, cipher: FieldCipher) -> Recipient:
    return Recipient(
        staff_key(c.sub),
        c.name,
        c.region_code,
        unseal(cipher, c.phone_enc, STAFF_PHONE),
        unseal(cipher, c.wechat_openid_enc, STAFF_OPENID),
        unseal(cipher, c.webhook_url_enc, STAFF_WEBHOOK_URL),
    )


def signing_secrets(c: StaffContact, cipher: FieldCipher, now: datetime) -> tuple[str, ...]:
    """The secrets a webhook to ``c`` is signed with at ``now`` (sealed.secrets_in_force)."""
    return secrets_in_force(
        cipher,
        (c.webhook_secret_enc, STAFF_WEBHOOK_SECRET),
        (c.webhook_previous_secret_enc, STAFF_WEBHOOK_PREVIOUS_SECRET),
        c.webhook_previous_secret_until,
        now,
    )


async def resolve(
    session: AsyncSession, cipher: FieldCipher, spec: Recipients, data: Mapping[str, Any]
) -> list[Recipient]:
    """The recipients ``spec`` names in an event's data, each once, in a stable order.

    A resident notify has not heard of yet raises ``RetryLater``: events are not ordered across
    streams, and ``person.registered`` may still be on its way. A sub that is not in the staff
    directory (or inactive) is nobody to tell: an agent or worker gets messages once an admin
    lists them.
    """
    raw = data.get(spec.field)
    if spec.kind == "person":
        ids = raw if isinstance(raw, list) else [raw]
        out = []
        for pid in dict.fromkeys(str(i) for i in ids if i):
            contact = await session.get(Contact, pid)
            if contact is None:
                raise RetryLater(f"contact {pid} not known yet")
            out.append(person_recipient(contact, cipher))
        return out
    if spec.kind == "staff":
        if not raw:
            return []
        staff = await session.get(StaffContact, str(raw))
        return [staff_recipient(staff, cipher)] if staff is not None and staff.active else []
    region = str(raw or "")[: spec.digits]
    if not region:
        return []
    rows = await session.scalars(
        select(StaffContact)
        .where(
            StaffContact.role == spec.role,
            StaffContact.region_code == region,
            StaffContact.active.is_(True),  # type: ignore[attr-defined]
        )
        .order_by(StaffContact.sub)  # type: ignore[arg-type]
    )
    return [staff_recipient(c, cipher) for c in rows]
