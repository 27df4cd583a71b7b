"""The outbound event feed: every event Lingju publishes, POSTed to the systems that subscribed.

- **Catalogue** (``publishable_event_types``): the types the services' events modules declare
  (each ``EventData`` subclass's ``TYPE``); a subscription names only these.
- **Fan-out** (``fan_out``): notify's consumers receive every publishable type; in the handler's
  transaction each active subscription wanting the type gets one ``feed_deliveries`` row,
  unique per (subscription, event): an event delivered twice is sent once.
- **Dispatch** (``FeedDispatcher``, a worker): claims due deliveries with a lease (a guarded
  UPDATE, so replicas never send one at once), POSTs the CloudEvent JSON through the webhook
  provider (signed with the subscription's secrets, the URL checked against internal hosts
  right before the send), records each attempt, and retries with exponential backoff and full
  jitter. After ``notify_feed_max_attempts``, or at once when the receiver is gone (410) or
  its URL is refused, the delivery is ``failed`` (dead) until the API puts it back.
A sender that dies after the POST leaves the delivery ``sending``; when its lease expires it
is sent again: receivers dedupe by ``X-Lingju-Delivery`` (or the event id).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, or_, select, update

from services.notify.dispatcher import backoff
from services.notify.models import (
    FEED_PREVIOUS_SECRET,
    FEED_SECRET,
    FEED_URL,
    FeedAttempt,
    FeedDelivery,
    FeedSubscription,
)
from services.notify.providers.base import Accepted, OutgoingMessage, SendError
from services.notify.providers.webhook import WebhookProvider
from services.notify.sealed import secrets_in_force, unseal
from shared.config import Settings
from shared.crypto import FieldCipher
from shared.db import Database, dialect_insert, utcnow
from shared.events import CloudEvent, EventData
from shared.events.outbox import UnitOfWork

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.service import Runtime

log = logging.getLogger("lingju.notify.feed")

EVENT_TYPE_HEADER = "X-Lingju-Event-Type"
# The producing services, whose events modules declare what they publish.
PRODUCERS = ("registry", "benefits", "visits")
IDLE_SECONDS = 0.5
LEASE_SECONDS = 60.0


def _declared(cls: type[EventData]) -> set[str]:
    found: set[str] = set()
    for sub in cls.__subclasses__():
        if "TYPE" in sub.__dict__:
            found.add(sub.TYPE)
        found |= _declared(sub)
    return found


@lru_cache(maxsize=1)
def publishable_event_types() -> tuple[str, ...]:
    """Every event type Lingju publishes, sorted: the schemas in the producers' events modules."""
    prefixes = tuple(f"services.{p}.events" for p in PRODUCERS)
    for module in prefixes:
        importlib.import_module(module)
    return tuple(
        sorted(
            t for t in _declared(EventData) if any(t.startswith(f"lingju.{p}.") for p in PRODUCERS)
        )
    )


# -- fan-out -------------------------------------------------------------------------------------


async def fan_out(uow: UnitOfWork, event: CloudEvent) -> int:
    """One queued delivery per active subscription wanting ``event.type``; how many were new."""
    s = uow.session
    subscriptions = (
        await s.scalars(select(FeedSubscription).where(FeedSubscription.active.is_(True)))  # type: ignore[attr-defined]
    ).all()
    now = uow.clock.now()
    payload = event.model_dump(mode="json", exclude_none=True)
    added = 0
    for sub in subscriptions:
        if event.type not in sub.event_types:
            continue
        row = {
            "id": str(uuid.uuid4()),
            "subscription_id": sub.id,
            "event_id": event.id,
            "event_type": event.type,
            "payload": payload,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        result = await s.execute(
            dialect_insert(s, FeedDelivery.__table__).values(row).on_conflict_do_nothing()
        )
        added += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return added


def signing_secrets(sub: FeedSubscription, cipher: FieldCipher, now: datetime) -> tuple[str, ...]:
    """The subscription's secrets at ``now`` (sealed.secrets_in_force)."""
    return secrets_in_force(
        cipher,
        (sub.secret_enc, FEED_SECRET),
        (sub.previous_secret_enc, FEED_PREVIOUS_SECRET),
        sub.previous_secret_until,
        now,
    )


# -- dispatch ------------------------------------------------------------------------------------


class FeedDispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        cipher: FieldCipher,
        sender: WebhookProvider,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self.sender = sender
        self.now = now  # the runtime's clock: a test moves it instead of waiting

    def _due(self, now: datetime) -> Any:
        t = FeedDelivery
        return or_(
            and_(t.status == "queued", t.next_attempt_at <= now),  # type: ignore[operator]
            and_(t.status == "sending", t.lease_until < now),  # type: ignore[operator]
        )

    async def claim(self, limit: int) -> list[FeedDelivery]:
        """Up to ``limit`` due deliveries, each moved to ``sending`` with its attempt counted."""
        now = self.now()
        async with self.db.session() as s:
            ids = list(
                (
                    await s.scalars(
                        select(FeedDelivery.id)
                        .where(self._due(now))
                        .order_by(FeedDelivery.next_attempt_at, FeedDelivery.created_at)  # type: ignore[arg-type]
                        .limit(limit)
                    )
                ).all()
            )
        out: list[FeedDelivery] = []
        lease = timedelta(seconds=LEASE_SECONDS + self.settings.notify_send_timeout_seconds)
        for delivery_id in ids:
            async with self.db.session() as s, s.begin():
                won = await s.execute(
                    update(FeedDelivery)
                    .where(FeedDelivery.id == delivery_id, self._due(now))  # type: ignore[arg-type]
                    .values(
                        status="sending",
                        lease_until=now + lease,
                        attempts=FeedDelivery.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another replica took it
                row = await s.get(FeedDelivery, delivery_id, populate_existing=True)
                assert row is not None
                out.append(row)
        return out

    async def _message(self, d: FeedDelivery) -> OutgoingMessage:
        async with self.db.session() as s:
            sub = await s.get(FeedSubscription, d.subscription_id)
        if sub is None or not sub.active:
            raise SendError("recipient_rejected", "the subscription is no longer active")
        try:
            url = unseal(self.cipher, sub.url_enc, FEED_URL) or ""
            secrets = signing_secrets(sub, self.cipher, self.now())
        except (InvalidTag, KeyError, ValueError) as e:
            # A key missing from LINGJU_DATA_KEYS or a damaged value: no attempt does better.
            raise SendError("recipient_rejected", f"cannot decrypt ({type(e).__name__})") from e
        return OutgoingMessage(
            delivery_id=d.id,
            channel="webhook",
            address=url,
            text="",
            template="",
            payload=d.payload,
            signing_secrets=secrets,
            headers={EVENT_TYPE_HEADER: d.event_type},
        )

    async def send(self, d: FeedDelivery) -> str:
        """One attempt for a claimed delivery; its new status."""
        started = utcnow()
        clock = time.monotonic()
        error: SendError | None = None
        accepted: Accepted | None = None
        timeout = self.settings.notify_send_timeout_seconds
        try:
            message = await self._message(d)
            accepted = await asyncio.wait_for(self.sender.send(message), timeout)
        except SendError as e:
            error = e
        except TimeoutError:
            error = SendError("timeout", f"no answer in {timeout}s")
        except Exception as e:  # a bug must not stop the loop
            error = SendError("unavailable", f"{type(e).__name__}: {e}")
        now = self.now()
        answered = accepted.http_status if accepted is not None else None
        values: dict[str, Any] = {"lease_until": None, "updated_at": now}
        if error is None:
            status = "delivered"
            values.update(delivered_at=now, last_error=None)
        else:
            reason = f"{error.kind}: {error}"[:1000]
            budget = self.settings.notify_feed_max_attempts
            if error.kind == "recipient_rejected":
                status = "failed"  # gone (410) or a refused URL: no later attempt does better
            elif d.attempts >= budget:
                status = "failed"
                reason = f"{reason} (retry budget of {d.attempts} spent)"[:1000]
            else:
                status = "queued"
                wait = backoff(
                    d.attempts,
                    self.settings.notify_feed_backoff_base_seconds,
                    self.settings.notify_feed_backoff_cap_seconds,
                    error.retry_after,
                )
                values["next_attempt_at"] = now + timedelta(seconds=wait)
            values["last_error"] = reason
            if status == "failed":
                values["failed_at"] = now
        values["status"] = status
        async with self.db.session() as s, s.begin():
            if await s.get(FeedDelivery, d.id) is None:
                return "deleted"  # its subscription ended while it was being sent
            s.add(
                FeedAttempt(
                    delivery_id=d.id,
                    started_at=started,
                    duration_ms=int((time.monotonic() - clock) * 1000),
                    outcome="delivered" if error is None else error.kind,
                    http_status=error.http_status if error else answered,
                    error=str(error)[:500] if error else None,
                )
            )
            await s.execute(
                update(FeedDelivery)
                # Still this claim's: a sender that outlived its lease writes only its attempt.
                .where(
                    FeedDelivery.id == d.id,  # type: ignore[arg-type]
                    FeedDelivery.status == "sending",  # type: ignore[arg-type]
                    FeedDelivery.attempts == d.attempts,  # type: ignore[arg-type]
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return status

    async def run(self, rt: Runtime) -> None:
        limit = self.settings.notify_feed_concurrency
        running: set[asyncio.Task[Any]] = set()
        while True:
            free = limit - len(running)
            try:
                claimed = await self.claim(free) if free > 0 else []
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("claiming feed deliveries failed: %s", e)
                claimed = []
            for delivery in claimed:
                task = asyncio.create_task(self._guarded(rt, delivery))
                running.add(task)
                task.add_done_callback(running.discard)
            if not claimed:
                await asyncio.sleep(IDLE_SECONDS)

    async def _guarded(self, rt: Runtime, delivery: FeedDelivery) -> None:
        try:
            await rt.inflight.run(self.send(delivery))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed delivery %s failed unexpectedly", delivery.id)


async def run_feed_dispatcher(rt: Runtime) -> None:
    sender = WebhookProvider(
        timeout=rt.settings.notify_provider_timeout_seconds,
        allow_private=rt.settings.notify_webhook_allow_private,
    )
    dispatcher = FeedDispatcher(rt.db, rt.settings, rt.cipher, sender, now=lambda: rt.clock.now())
    try:
        await dispatcher.run(rt)
    finally:
        await sender.aclose()
