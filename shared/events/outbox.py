"""Transactional outbox: events are rows written with the business change, then relayed.

The relay publishes pending rows to JetStream with ``Nats-Msg-Id`` = event id, marks them
published, retries with backoff while NATS is down, and wakes as soon as a unit of work
commits (not only on its slow poll). On PostgreSQL, replicas share the work through
``FOR UPDATE SKIP LOCKED``; on SQLite there is one writer anyway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.db import Database, utcnow
from shared.events.envelope import CloudEvent, EventData, new_event, subject_for
from shared.failpoints import failpoint
from shared.inflight import InFlight
from shared.tables import KernelTables

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.events.broker import Broker
    from shared.observability import ServiceMetrics

log = logging.getLogger("lingju.outbox")


class Outbox:
    """What a unit of work needs to write events: the table, the source name, a wake-up."""

    def __init__(self, service: str, tables: KernelTables) -> None:
        self.service = service
        self.tables = tables
        self.committed = asyncio.Event()

    def rows(self, events: list[CloudEvent]) -> list[dict[str, Any]]:
        now = utcnow()
        return [
            {
                "event_id": e.id,
                "subject": subject_for(e.type),
                "payload": e.model_dump_json(exclude_none=True),
                "created_at": now,
                "attempts": 0,
            }
            for e in events
        ]


class UnitOfWork:
    """One business transaction: the session, plus the events it announces (same commit)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self.clock: Clock = clock or SystemClock()  # the business day (shared.clock)
        self.settings: Settings = settings or Settings()  # the service's, for use cases
        self._events: list[CloudEvent] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._db.session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.session.rollback()  # no-op after a commit
        finally:
            await self.session.close()

    def publish(self, data: EventData, subject: str | None = None) -> CloudEvent:
        event = new_event(self._outbox.service, data, subject)
        self._events.append(event)
        return event

    async def flush(self) -> None:
        await self.session.flush()

    async def commit(self) -> None:
        if self._events:
            await self.session.execute(
                insert(self._outbox.tables.outbox), self._outbox.rows(self._events)
            )
        await self.session.commit()
        had_events = bool(self._events)
        self._events = []
        if had_events:
            self._outbox.committed.set()

    async def rollback(self) -> None:
        self._events = []
        await self.session.rollback()


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        broker: Broker,
        settings: Settings,
        metrics: ServiceMetrics,
        inflight: InFlight,
    ) -> None:
        self.db = db
        self.inflight = inflight
        self.outbox = outbox
        self.table = outbox.tables.outbox
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self._last_purge = 0.0

    async def run(self) -> None:
        backoff = 0.1
        wake = self.outbox.committed
        loop = asyncio.get_running_loop()
        while True:
            await self.broker.connected.wait()
            wake.clear()  # before reading, so a commit during the pass is not missed
            try:
                published = await self.inflight.run(self.publish_pending())
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("outbox relay: publish failed, retrying in %.1fs: %s", backoff, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.relay_max_backoff_seconds)
                continue
            if published >= self.settings.relay_batch_size:
                continue
            await self._refresh_backlog()
            if loop.time() - self._last_purge > 3600:
                await self._purge()
                self._last_purge = loop.time()
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.settings.relay_poll_seconds)
            except TimeoutError:
                pass

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many were published. Raises if any failed."""
        js = self.broker.js
        assert js is not None
        t = self.table
        async with self.db.session() as s, s.begin():
            q = (
                select(t.c.seq, t.c.event_id, t.c.subject, t.c.payload)
                .where(t.c.published_at.is_(None))
                .order_by(t.c.seq)
                .limit(self.settings.relay_batch_size)
            )
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            rows = (await s.execute(q)).all()
            if not rows:
                return 0
            futures = [
                await js.publish_async(
                    r.subject, r.payload.encode(), headers={"Nats-Msg-Id": r.event_id}
                )
                for r in rows
            ]
            results = await asyncio.gather(
                *(asyncio.wait_for(f, self.settings.publish_timeout_seconds) for f in futures),
                return_exceptions=True,
            )
            failpoint("relay.after_publish")  # published, not yet marked as published
            ok = [
                r.seq
                for r, res in zip(rows, results, strict=True)
                if not isinstance(res, BaseException)
            ]
            failed = [
                (r.seq, res)
                for r, res in zip(rows, results, strict=True)
                if isinstance(res, BaseException)
            ]
            if ok:
                await s.execute(update(t).where(t.c.seq.in_(ok)).values(published_at=utcnow()))
            if failed:
                await s.execute(
                    update(t)
                    .where(t.c.seq.in_([seq for seq, _ in failed]))
                    .values(attempts=t.c.attempts + 1, last_error=repr(failed[0][1])[:500])
                )
        self.metrics.events_published.labels(self.outbox.service).inc(len(ok))
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(rows)} events not acknowledged: {failed[0][1]!r}"
            )
        return len(ok)

    async def backlog(self) -> int:
        t = self.table
        async with self.db.session() as s:
            return int(
                (
                    await s.execute(select(func.count()).where(t.c.published_at.is_(None)))
                ).scalar_one()
            )

    async def _refresh_backlog(self) -> None:
        try:
            self.metrics.outbox_backlog.labels(self.outbox.service).set(await self.backlog())
        except Exception:
            log.debug("outbox backlog unavailable", exc_info=True)

    async def _purge(self) -> None:
        """Published rows are kept a while as an integration-event log, then dropped."""
        cutoff = utcnow() - timedelta(days=self.settings.outbox_retention_days)
        t = self.table
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(delete(t).where(t.c.published_at < cutoff))
        except Exception:
            log.debug("outbox purge failed", exc_info=True)
