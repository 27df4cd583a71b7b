"""Sends queued deliveries through their channel's providers, outside any business transaction.

One loop per channel, each handing up to ``notify_channel_concurrency`` messages at once to its
providers, so a slow or failing SMS platform never holds up WeChat, webhooks or other
recipients. A delivery is claimed by a guarded UPDATE (queued and due, or ``sending`` with an
expired lease: its sender died) that moves it to ``sending`` and counts the attempt; the send
happens outside the database; its outcome and the attempt's record are written in one
transaction guarded by the same claim.

Which provider, and when again (``next_step``):
- the channel's providers are tried in their configured order, one per attempt: a failure
  moves on to the next provider at once (fallback), and only after the whole list has failed
  does the delivery wait, exponentially longer each round, with full jitter, at least as long as
  a provider's ``Retry-After``;
- a provider that refused the message itself (``rejected``) is not asked again for it; when
  every provider has refused it, or the address is wrong (``recipient_rejected``), or the retry
  budget (``notify_max_attempts``) is spent, the delivery is ``failed`` with the reason.
A sender that dies between the hand-over and the write leaves the delivery ``sending``; it is
claimed again when the lease expires, so a message may be handed over twice (providers are
at-least-once anyway; each gets our delivery id to recognise it), but is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, or_, select, update

from services.notify.models import (
    DELIVERY_ADDRESS,
    Delivery,
    DeliveryAttempt,
    Notification,
    StaffContact,
)
from services.notify.providers import aclose_providers, build_providers
from services.notify.providers.base import (
    Accepted,
    OutgoingMessage,
    Provider,
    Receipt,
    SendError,
)
from services.notify.recipients import signing_secrets
from services.notify.sealed import unseal
from shared.config import Settings
from shared.crypto import FieldCipher
from shared.db import Database, utcnow
from shared.failpoints import failpoint

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.notify.dispatcher")

IDLE_SECONDS = 0.5
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Outcome:
    """What to write after one attempt."""

    status: str  # sending -> sent | delivered | queued (again) | failed
    not_before: datetime | None = None
    error: str | None = None


def backoff(round_no: int, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds to wait after the ``round_no``-th round of every provider failed: exponential,
    full jitter (a random point in [0, base * 2^(round-1)], capped), never less than the
    provider's Retry-After."""
    ceiling = min(cap, base * 2 ** max(0, round_no - 1))
    return max(random.uniform(0, ceiling), retry_after or 0.0)


def next_step(
    *,
    chain: list[str],
    provider: str,
    attempts: int,
    refused_by: set[str],
    error: SendError | None,
    settings: Settings,
    now: datetime,
    webhook: bool = False,
) -> Outcome:
    """The delivery's state after an attempt with ``provider`` (the ``attempts``-th in all)."""
    if error is None:
        return Outcome("delivered" if webhook else "sent")
    reason = f"{provider}: {error.kind}: {error}"[:1000]
    if error.kind == "recipient_rejected":
        return Outcome("failed", error=reason)
    refused = refused_by | ({provider} if error.kind == "rejected" else set())
    if all(p in refused for p in chain):
        return Outcome("failed", error=f"{reason} (every provider refused the message)"[:1000])
    if attempts >= settings.notify_max_attempts:
        return Outcome("failed", error=f"{reason} (retry budget of {attempts} spent)"[:1000])
    position = chain.index(provider) if provider in chain else len(chain) - 1
    if any(p not in refused for p in chain[position + 1 :]):
        return Outcome("queued", not_before=now, error=reason)  # the next provider, at once
    usable = max(1, sum(1 for p in chain if p not in refused))
    round_no = -(-attempts // usable)  # rounds of every usable provider so far
    wait = backoff(
        round_no,
        settings.notify_backoff_base_seconds,
        settings.notify_backoff_cap_seconds,
        error.retry_after,
    )
    return Outcome("queued", not_before=now + timedelta(seconds=wait), error=reason)


def choose(chain: list[str], last: str | None, refused_by: set[str]) -> str | None:
    """The provider for the next attempt: the one after ``last`` in the chain (wrapping round),
    skipping those that refused this message."""
    usable = [p for p in chain if p not in refused_by]
    if not usable:
        return None
    if last is None or last not in chain:
        return usable[0]
    start = chain.index(last) + 1
    for p in chain[start:] + chain[:start]:
        if p in usable:
            return p
    return None


def message_of(d: Delivery, cipher: FieldCipher, secrets: tuple[str, ...] = ()) -> OutgoingMessage:
    """What the provider gets: the address opened (it is sealed in the row) and, for a webhook,
    the recipient's signing secrets."""
    params: dict[str, Any] = d.params or {}
    return OutgoingMessage(
        delivery_id=d.id,
        channel=d.channel,
        address=unseal(cipher, d.address_enc, DELIVERY_ADDRESS) or "",
        text=d.body,
        template=str(params.get("template", "")),
        params={str(k): str(v) for k, v in (params.get("vars") or {}).items()},
        wechat_template_id=params.get("template_id"),
        payload=params.get("payload"),
        signing_secrets=secrets,
    )


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        providers: dict[str, list[Provider]],
        cipher: FieldCipher,
        now: Callable[[], datetime] = utcnow,
    ):
        self.db = db
        self.cipher = cipher
        self.settings = settings
        self.providers = providers
        # The clock deliveries are due by (quiet hours end, backoff): the runtime's, so a test
        # moves it to the morning instead of waiting for it.
        self.now = now
        self.by_name = {(c, p.name): p for c, ps in providers.items() for p in ps}

    def chain(self, channel: str) -> list[str]:
        return [p.name for p in self.providers.get(channel, [])]

    async def run(self, rt: Runtime) -> None:
        await asyncio.gather(*(self._channel_loop(rt, c) for c in self.providers))

    async def _channel_loop(self, rt: Runtime, channel: str) -> None:
        slots = asyncio.Semaphore(self.settings.notify_channel_concurrency)
        running: set[asyncio.Task[None]] = set()
        while True:
            try:
                free = self.settings.notify_channel_concurrency - len(running)
                claimed = await self.claim(channel, free) if free > 0 else []
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("claiming %s deliveries failed: %s", channel, e)
                claimed = []
            for delivery in claimed:
                await slots.acquire()
                task = asyncio.create_task(self._guarded(rt, delivery, slots))
                running.add(task)
                task.add_done_callback(running.discard)
            if not claimed:
                await asyncio.sleep(IDLE_SECONDS)

    async def _guarded(self, rt: Runtime, delivery: Delivery, slots: asyncio.Semaphore) -> None:
        try:
            await rt.inflight.run(self.send(delivery))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sending delivery %s failed unexpectedly", delivery.id)
        finally:
            slots.release()

    def _due(self, now: datetime) -> Any:
        t = Delivery
        return or_(
            and_(
                t.status == "queued",
                or_(t.not_before.is_(None), t.not_before <= now),  # type: ignore[union-attr,operator]
            ),
            and_(t.status == "sending", t.lease_until < now),  # type: ignore[operator]
        )

    async def claim(self, channel: str, limit: int) -> list[Delivery]:
        """Up to ``limit`` due deliveries of ``channel``, each moved to ``sending`` by a guarded
        UPDATE (so two replicas never send one message at once), its attempt counted."""
        now = self.now()
        async with self.db.session() as s:
            ids = list(
                (
                    await s.scalars(
                        select(Delivery.id)
                        .where(Delivery.channel == channel, self._due(now))
                        .order_by(Delivery.not_before, Delivery.created_at)  # type: ignore[arg-type]
                        .limit(limit)
                    )
                ).all()
            )
        out: list[Delivery] = []
        for delivery_id in ids:
            async with self.db.session() as s, s.begin():
                won = await s.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id, self._due(now))  # type: ignore[arg-type]
                    .values(
                        status="sending",
                        lease_until=now
                        + timedelta(
                            seconds=LEASE_SECONDS + self.settings.notify_send_timeout_seconds
                        ),
                        attempts=Delivery.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another sender took it
                row = await s.get(Delivery, delivery_id, populate_existing=True)
                assert row is not None
                out.append(row)
        return out

    async def _refused_by(self, delivery_id: str) -> set[str]:
        async with self.db.session() as s:
            return set(
                (
                    await s.scalars(
                        select(DeliveryAttempt.provider).where(
                            DeliveryAttempt.delivery_id == delivery_id,
                            DeliveryAttempt.outcome == "rejected",
                        )
                    )
                ).all()
            )

    async def _signing_secrets(self, d: Delivery) -> tuple[str, ...]:
        """A webhook's secrets as they are now (a rotation after queueing counts)."""
        async with self.db.session() as s:
            recipient = await s.scalar(
                select(Notification.recipient).where(Notification.id == d.notification_id)  # type: ignore[arg-type]
            )
            staff = (
                await s.get(StaffContact, recipient.removeprefix("staff:"))
                if recipient and recipient.startswith("staff:")
                else None
            )
        return signing_secrets(staff, self.cipher, self.now()) if staff else ()

    async def _message(self, d: Delivery) -> OutgoingMessage:
        secrets = await self._signing_secrets(d) if d.channel == "webhook" else ()
        try:
            return message_of(d, self.cipher, secrets)
        except (InvalidTag, KeyError, ValueError) as e:
            # A key missing from LINGJU_DATA_KEYS or a damaged value: no attempt will do better.
            raise SendError(
                "recipient_rejected", f"cannot decrypt the address ({type(e).__name__})"
            ) from e

    async def send(self, d: Delivery) -> str:
        """One attempt for a claimed delivery; its new status."""
        chain = self.chain(d.channel)
        refused = await self._refused_by(d.id)
        name = choose(chain, d.provider if d.attempts > 1 else None, refused)
        started = utcnow()
        clock = time.monotonic()
        error: SendError | None = None
        accepted: Accepted | None = None
        if name is None:
            error = SendError("rejected", f"no provider configured for {d.channel}")
            name = "none"
        else:
            provider = self.by_name[(d.channel, name)]
            try:
                message = await self._message(d)
                accepted = await asyncio.wait_for(
                    provider.send(message), self.settings.notify_send_timeout_seconds
                )
            except SendError as e:
                error = e
            except TimeoutError:
                error = SendError(
                    "timeout", f"no answer in {self.settings.notify_send_timeout_seconds}s"
                )
            except Exception as e:  # an adapter's bug must not stop the channel
                error = SendError("unavailable", f"{type(e).__name__}: {e}")
        failpoint("notify.after_send")  # handed to the provider, not yet written down
        now = self.now()
        outcome = next_step(
            chain=chain,
            provider=name,
            attempts=d.attempts,
            refused_by=refused,
            error=error,
            settings=self.settings,
            now=now,
            webhook=d.channel == "webhook",
        )
        values: dict[str, Any] = {
            "status": outcome.status,
            "provider": name,
            "lease_until": None,
            "updated_at": now,
        }
        if accepted is not None:
            values.update(provider_message_id=accepted.provider_message_id, sent_at=now)
            if outcome.status == "delivered":
                values["delivered_at"] = now
        else:
            values.update(last_error=outcome.error, not_before=outcome.not_before, held="retry")
            if outcome.status == "failed":
                values["failed_at"] = now
        async with self.db.session() as s, s.begin():
            s.add(
                DeliveryAttempt(
                    delivery_id=d.id,
                    provider=name,
                    started_at=started,
                    duration_ms=int((time.monotonic() - clock) * 1000),
                    outcome="sent" if error is None else error.kind,
                    http_status=error.http_status if error else None,
                    error=str(error)[:500] if error else None,
                )
            )
            await s.execute(
                update(Delivery)
                # Still this claim's: a sender that outlived its lease finds the delivery
                # claimed again (another attempt) and writes nothing but its attempt record.
                .where(
                    Delivery.id == d.id,  # type: ignore[arg-type]
                    Delivery.status == "sending",  # type: ignore[arg-type]
                    Delivery.attempts == d.attempts,  # type: ignore[arg-type]
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return outcome.status

    async def apply_receipts(self, provider: str, receipts: list[Receipt]) -> int:
        """Reflect a provider's delivery receipts; the number of deliveries they changed. A
        receipt for a message we do not know, or one already final, changes nothing."""
        changed = 0
        now = self.now()
        async with self.db.session() as s, s.begin():
            for r in receipts:
                values: dict[str, Any] = {"updated_at": now}
                if r.delivered:
                    values.update(status="delivered", delivered_at=r.at or now)
                else:
                    values.update(status="failed", failed_at=r.at or now, last_error=r.error)
                result = await s.execute(
                    update(Delivery)
                    .where(
                        Delivery.provider == provider,  # type: ignore[arg-type]
                        Delivery.provider_message_id == r.provider_message_id,  # type: ignore[arg-type]
                        Delivery.status.in_(("sent", "sending")),  # type: ignore[attr-defined]
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return changed


_DISPATCHERS: WeakKeyDictionary[Runtime, Dispatcher] = WeakKeyDictionary()


def dispatcher_for(rt: Runtime) -> Dispatcher:
    """The runtime's dispatcher and providers (built once, from its settings)."""
    if rt not in _DISPATCHERS:
        _DISPATCHERS[rt] = Dispatcher(
            rt.db,
            rt.settings,
            build_providers(rt.settings),
            rt.cipher,
            now=lambda: rt.clock.now(),
        )
    return _DISPATCHERS[rt]


async def run_dispatcher(rt: Runtime) -> None:
    dispatcher = dispatcher_for(rt)
    try:
        await dispatcher.run(rt)
    finally:  # the service stops: close the providers' connections
        await aclose_providers(dispatcher.providers)
