"""Sends pending deliveries through the providers, outside any business transaction.

A handler only records a delivery as pending; sending happens here, so a rolled-back handler
never leaves a message behind and a retried event never texts twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from services.notify.models import Delivery
from services.notify.providers import FileProvider, Provider
from shared.db import utcnow
from shared.failpoints import failpoint

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.notify.dispatcher")

MAX_ATTEMPTS = 5


async def run_dispatcher(rt: Runtime) -> None:
    path = rt.settings.notify_file_provider_path or rt.settings.var_dir / "notify-messages.jsonl"
    provider = FileProvider(path)
    while True:
        try:
            sent = await rt.inflight.run(dispatch_once(rt, provider))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("dispatch failed: %s", e)
            sent = 0
        if sent == 0:
            await asyncio.sleep(0.5)


async def dispatch_once(rt: Runtime, provider: Provider, batch: int = 50) -> int:
    """Send up to ``batch`` pending deliveries, each in its own transaction.

    Marking each delivery right after its send bounds what a crash can repeat to the one
    message being handed over at that instant (providers are at-least-once anyway).
    """
    done = 0
    for _ in range(batch):
        async with rt.db.session() as s, s.begin():
            q = (
                select(Delivery)
                .where(
                    Delivery.status == "pending",
                    or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= utcnow()),
                )
                .order_by(Delivery.created_at)
                .limit(1)
            )
            if not rt.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            d = (await s.scalars(q)).first()
            if d is None:
                break
            try:
                await provider.send(d.channel, d.address, d.body, d.id)
                failpoint("notify.after_send")  # handed to the provider, not yet marked sent
                d.status, d.sent_at = "sent", utcnow()
            except Exception as e:
                d.attempts += 1
                d.last_error = f"{type(e).__name__}: {e}"[:1000]
                if d.attempts >= MAX_ATTEMPTS:
                    d.status = "failed"
                else:
                    delay = min(2**d.attempts, 300)
                    d.next_attempt_at = utcnow() + timedelta(seconds=delay)
        done += 1
    return done
