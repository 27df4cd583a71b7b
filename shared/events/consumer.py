"""Durable pull consumers with an idempotent inbox and a dead-letter table.

One durable consumer per (consuming service, stream); replicas of a service share it. A
handler's effect and the event id commit in one transaction, so redelivery never doubles an
effect. A message that keeps failing is recorded as a dead letter after ``max_deliver``
attempts, and the messages behind it keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared import context
from shared.clock import Clock, SystemClock
from shared.db import Database, utcnow
from shared.events.broker import STREAMS, Broker, ensure_stream
from shared.events.envelope import CloudEvent, subject_for
from shared.events.outbox import Outbox, UnitOfWork
from shared.failpoints import failpoint
from shared.inflight import InFlight

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.observability import ServiceMetrics

log = logging.getLogger("lingju.consumer")

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]


class RetryLater(Exception):
    """A prerequisite has not arrived yet (events are not ordered across streams): try later."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class ReplayFailed(Exception):
    pass


class ConsumerRunner:
    def __init__(
        self,
        service: str,
        db: Database,
        outbox: Outbox,
        broker: Broker,
        settings: Settings,
        metrics: ServiceMetrics,
        handlers: Mapping[str, Handler],
        inflight: InFlight,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.inflight = inflight
        self.clock: Clock = clock or SystemClock()  # handed to each handler's unit of work
        self.db = db
        self.outbox = outbox
        self.tables = outbox.tables
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self.handlers = handlers
        # Group the handled event types by the producing service's stream.
        self.by_stream: dict[str, list[str]] = {}
        for event_type in handlers:
            producer = event_type.split(".")[1]
            self.by_stream.setdefault(STREAMS[producer][0], []).append(event_type)

    @property
    def durable(self) -> str:
        return self.service

    # -- provisioning ----------------------------------------------------------------------

    def consumer_config(self, stream: str) -> ConsumerConfig:
        subjects = sorted({subject_for(t) for t in self.by_stream[stream]})
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.consumer_ack_wait_seconds,
            # One more than our own budget: we dead-letter on the last attempt ourselves; the
            # server's limit only guards against a consumer that crashes on every delivery.
            # Retry delays are given per message with nak(delay=...): JetStream's `backoff`
            # only applies to ack timeouts.
            max_deliver=self.settings.consumer_max_deliver + 1,
            max_ack_pending=1000,
            filter_subjects=subjects,
        )

    async def provision(self) -> None:
        js = self.broker.js
        assert js is not None
        for service, (stream, _) in STREAMS.items():
            if stream in self.by_stream:
                # The producer may not have started yet: declaring its stream is idempotent.
                await ensure_stream(
                    js,
                    service,
                    max_age_days=self.settings.stream_max_age_days,
                    duplicate_window=self.settings.stream_duplicate_window_seconds,
                )
        for stream in self.by_stream:
            config = self.consumer_config(stream)
            try:
                info = await js.consumer_info(stream, self.durable)
            except NotFoundError:
                info = None
            if info is None or _differs(info.config, config):
                # Creates, or updates the durable in place (its position is kept).
                await js.add_consumer(stream, config)
                log.info("consumer declared", extra={"stream": stream, "durable": self.durable})

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        # A task group: if one loop fails, the others stop too, and the supervisor restarts
        # the whole set (no orphaned pull loop left running twice).
        async with asyncio.TaskGroup() as group:
            for stream in self.by_stream:
                group.create_task(self._pull_loop(stream), name=f"{self.durable}-{stream}")
            group.create_task(self._lag_loop(), name=f"{self.durable}-lag")

    async def _pull_loop(self, stream: str) -> None:
        sub: Any = None
        seen_reconnects = -1
        while True:
            try:
                await self.broker.connected.wait()
                if sub is None or seen_reconnects != self.broker.reconnects:
                    # A pull subscription can stall after a server restart: rebuild it.
                    if sub is not None:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                    assert self.broker.js is not None
                    sub = await self.broker.js.pull_subscribe_bind(
                        durable=self.durable, stream=stream
                    )
                    seen_reconnects = self.broker.reconnects
                msgs = await sub.fetch(
                    self.settings.consumer_fetch_batch,
                    timeout=self.settings.consumer_fetch_timeout_seconds,
                )
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nothing to do: normal
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.broker.closing:
                    return  # shutting down
                log.warning("consumer %s/%s: fetch failed: %s", self.durable, stream, e)
                sub = None
                await asyncio.sleep(1)
                continue
            for msg in msgs:
                await self.inflight.run(self._process(stream, msg))

    async def _process(self, stream: str, msg: Msg) -> None:
        """Runs as its own task (InFlight), so the context it sets stays here."""
        attempt = msg.metadata.num_delivered or 1
        event_type = "unknown"
        try:
            event = CloudEvent.model_validate_json(msg.data)
            event_type = event.type
            context.correlation_id.set(event.correlationid or event.id)
            handler = self.handlers.get(event.type)
            if handler is None:
                # A type we do not handle (e.g. a new version on the same subject): not ours.
                log.info("event type %s has no handler here: acknowledged", event.type)
                await msg.ack()
                return
            applied = await self.apply(event, handler)
            failpoint("consumer.after_commit")  # effect committed, not yet acknowledged
            self.metrics.events_handled.labels(
                self.service, event.type, "applied" if applied else "duplicate"
            ).inc()
            await _quietly(msg.ack())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.metrics.events_handled.labels(self.service, event_type, "failed").inc()
            if attempt >= self.settings.consumer_max_deliver:
                log.error(
                    "event dead-lettered after %d attempts: %s",
                    attempt,
                    e,
                    extra={"subject": msg.subject, "event_type": event_type},
                )
                await self._dead_letter(stream, msg, e, attempt)
                await _quietly(msg.term())
            else:
                delay = e.delay if isinstance(e, RetryLater) and e.delay else self._backoff(attempt)
                level = logging.INFO if isinstance(e, RetryLater) else logging.WARNING
                log.log(level, "event failed (attempt %d), retry in %.1fs: %s", attempt, delay, e)
                await _quietly(msg.nak(delay=delay))

    def _backoff(self, attempt: int) -> float:
        steps = self.settings.consumer_backoff_seconds
        return steps[min(attempt, len(steps)) - 1]

    async def apply(self, event: CloudEvent, handler: Handler) -> bool:
        """Run the handler and record the event id in one transaction. False if already applied."""
        inbox = self.tables.inbox
        token_c = context.correlation_id.set(event.correlationid or event.id)
        token_t = context.traceparent.set(event.traceparent)
        try:
            async with UnitOfWork(self.db, self.outbox, self.clock, self.settings) as uow:
                if await self._seen(uow, event.id):
                    return False
                await handler(uow, event)
                await uow.session.execute(
                    insert(inbox).values(
                        consumer=self.durable,
                        event_id=event.id,
                        event_type=event.type,
                        processed_at=utcnow(),
                    )
                )
                try:
                    await uow.commit()
                except IntegrityError:
                    await uow.rollback()
                    if await self._seen(uow, event.id):
                        return False  # another replica applied it first
                    raise
                return True
        finally:
            context.correlation_id.reset(token_c)
            context.traceparent.reset(token_t)

    async def _seen(self, uow: UnitOfWork, event_id: str) -> bool:
        inbox = self.tables.inbox
        found = await uow.session.execute(
            select(inbox.c.event_id).where(
                inbox.c.consumer == self.durable, inbox.c.event_id == event_id
            )
        )
        return found.first() is not None

    async def _dead_letter(self, stream: str, msg: Msg, error: Exception, attempts: int) -> None:
        event_id = event_type = None
        with contextlib.suppress(Exception):
            raw = CloudEvent.model_validate_json(msg.data)
            event_id, event_type = raw.id, raw.type
        async with self.db.session() as s, s.begin():
            await s.execute(
                insert(self.tables.dead_letters).values(
                    id=str(uuid.uuid4()),
                    consumer=self.durable,
                    stream=stream,
                    subject=msg.subject,
                    event_id=event_id,
                    event_type=event_type,
                    payload=msg.data.decode("utf-8", errors="replace"),
                    error=f"{type(error).__name__}: {error}"[:4000],
                    attempts=attempts,
                    status="dead",
                    created_at=utcnow(),
                )
            )
        await self.refresh_dead_letter_gauge()

    async def replay(self, dead_letter_id: str) -> bool:
        """Apply a dead letter again with the current code. Raises ReplayFailed with the reason."""
        dl = self.tables.dead_letters
        async with self.db.session() as s:
            row = (await s.execute(select(dl).where(dl.c.id == dead_letter_id))).first()
        if row is None:
            raise LookupError(dead_letter_id)
        if row.status == "replayed":
            return False
        try:
            event = CloudEvent.model_validate_json(row.payload)
            handler = self.handlers.get(event.type)
            if handler is None:
                raise ReplayFailed(f"no handler for {event.type}")
            applied = await self.apply(event, handler)
        except ReplayFailed:
            raise
        except Exception as e:
            async with self.db.session() as s, s.begin():
                await s.execute(
                    update(dl)
                    .where(dl.c.id == dead_letter_id)
                    .values(error=f"{type(e).__name__}: {e}"[:4000], attempts=dl.c.attempts + 1)
                )
            raise ReplayFailed(f"{type(e).__name__}: {e}") from e
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(dl)
                .where(dl.c.id == dead_letter_id)
                .values(status="replayed", replayed_at=utcnow())
            )
        await self.refresh_dead_letter_gauge()
        return applied

    async def refresh_dead_letter_gauge(self) -> None:
        dl = self.tables.dead_letters
        async with self.db.session() as s:
            n = (await s.execute(select(func.count()).where(dl.c.status == "dead"))).scalar_one()
        self.metrics.dead_letters.labels(self.service).set(n)

    async def _lag_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.consumer_lag_poll_seconds)
            js = self.broker.js
            if js is None or not self.broker.is_connected:
                continue
            for stream in self.by_stream:
                try:
                    info = await js.consumer_info(stream, self.durable)
                    lag = (info.num_pending or 0) + (info.num_ack_pending or 0)
                    self.metrics.consumer_lag.labels(self.service, stream).set(lag)
                except Exception:
                    log.debug("consumer info unavailable", exc_info=True)
            with contextlib.suppress(Exception):
                await self.refresh_dead_letter_gauge()


def _differs(current: ConsumerConfig, wanted: ConsumerConfig) -> bool:
    return (
        sorted(
            current.filter_subjects or ([current.filter_subject] if current.filter_subject else [])
        )
        != sorted(wanted.filter_subjects or [])
        or current.ack_wait != wanted.ack_wait
        or current.max_deliver != wanted.max_deliver
        or current.max_ack_pending != wanted.max_ack_pending
    )


async def _quietly(aw: Awaitable[Any]) -> None:
    """An ack that cannot reach the server is fine: redelivery meets the inbox."""
    try:
        await aw
    except Exception as e:
        log.debug("ack/nak failed: %s", e)
