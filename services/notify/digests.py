"""Morning digests: a worker gets one message listing the day's due visits instead of ten.

Routes with a ``digest`` leave a line per item in ``digest_items`` (events.py). Once the
digest hour has come (``notify_digest_hour``, Asia/Shanghai) the lines of each (recipient,
digest, day) become one notification through the template ``digest_<code>``, told like any
other (preferences, quiet hours, channels). Its event id is derived from (digest, recipient,
day), so the notifications' unique key makes a second sender (another replica, a re-run) tell
nobody twice; the lines are marked in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from services.notify import templates
from services.notify.domain import preferences as prefs
from services.notify.events import Message, deliver, routing
from services.notify.models import DigestItem, StaffContact
from services.notify.recipients import staff_recipient
from shared.clock import SHANGHAI
from shared.db import utcnow

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.notify.digests")

INTERVAL_SECONDS = 60
_NAMESPACE = uuid.UUID("6f1c2d0e-5b7a-4c61-9d3e-2a8b4f0c7e19")  # digest event ids


@dataclass
class DigestResult:
    sent: list[str] = field(default_factory=list)  # notification ids


def digest_event_id(digest: str, recipient: str, day: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{digest}:{recipient}:{day}"))


async def send_digests(rt: Runtime, now: datetime) -> DigestResult:
    """Tell every recipient whose digest morning has come, once."""
    local = now.astimezone(SHANGHAI)
    # Today's digests once the hour has come; before it, only earlier days' left unsent.
    due_day = local.date()
    if local.hour < rt.settings.notify_digest_hour:
        due_day -= timedelta(days=1)
    result = DigestResult()
    async with rt.db.session() as s:
        groups = list(
            (
                await s.execute(
                    select(DigestItem.recipient, DigestItem.digest, DigestItem.day)
                    .where(DigestItem.sent_at.is_(None), DigestItem.day <= due_day)  # type: ignore[union-attr,operator]
                    .group_by(DigestItem.recipient, DigestItem.digest, DigestItem.day)
                    .order_by(DigestItem.day, DigestItem.recipient)
                )
            ).all()
        )
    for recipient_key, digest, day in groups:
        async with rt.uow() as uow:
            s = uow.session
            items = list(
                (
                    await s.scalars(
                        select(DigestItem)
                        .where(
                            DigestItem.recipient == recipient_key,
                            DigestItem.digest == digest,
                            DigestItem.day == day,
                            DigestItem.sent_at.is_(None),  # type: ignore[union-attr]
                        )
                        .order_by(DigestItem.created_at, DigestItem.id)  # type: ignore[arg-type]
                    )
                ).all()
            )
            if not items:
                continue
            staff = await s.get(StaffContact, recipient_key.removeprefix("staff:"))
            if staff is None or not staff.active:
                # Gone from the directory, or inactive, since the lines were written: nobody to
                # tell; the lines are closed so they are not looked at every minute.
                log.info(
                    "digest %s for %s dropped: not an active staff contact", digest, recipient_key
                )
                notification_id = None
            else:
                routes = [r for rs in routing().routes.values() for r in rs if r.digest == digest]
                channels = tuple(dict.fromkeys(c for r in routes for c in r.channels))
                lines, count = prefs.digest_text([i.line for i in items])
                template = await templates.current(s, f"digest_{digest}")
                recipient = staff_recipient(staff, rt.cipher)
                notification_id = await deliver(
                    uow,
                    Message(
                        event_id=digest_event_id(digest, recipient_key, day.isoformat()),
                        event_type=f"digest.{digest}",
                        template=template,
                        values={
                            "count": count,
                            "lines": lines,
                            "day": day.isoformat(),
                            "recipient_name": staff.name,
                        },
                        category=routing().categories[routes[0].category],
                        channels=channels,
                    ),
                    recipient,
                )
            await s.execute(
                update(DigestItem)
                .where(DigestItem.id.in_([i.id for i in items]))  # type: ignore[union-attr]
                .values(sent_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
            if notification_id:
                result.sent.append(notification_id)
    return result


async def run_digests(rt: Runtime) -> None:
    """A worker: every minute, the digests whose morning has come."""
    while True:
        try:
            result = await rt.inflight.run(send_digests(rt, rt.clock.now()))
            if result.sent:
                log.info("sent %d digests", len(result.sent))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("digests failed; next in %ds", INTERVAL_SECONDS)
        await asyncio.sleep(INTERVAL_SECONDS)
