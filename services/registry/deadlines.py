"""The deadline sweep (限时办结): an open application past its due date is announced once."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from services.registry.domain import applications as rules
from services.registry.events import ApplicationOverdue
from services.registry.models import Application
from services.registry.usecases.applications import ON_THE_CLOCK
from services.registry.usecases.common import catalogue
from shared.db import utcnow

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.registry.deadlines")


async def run_overdue_sweep(rt: Runtime) -> None:
    while True:
        try:
            flagged = await rt.inflight.run(sweep_overdue(rt))
            if flagged:
                log.info("%d applications became overdue", flagged)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("overdue sweep failed: %s", e)
        await asyncio.sleep(rt.settings.registry_overdue_sweep_seconds)


async def sweep_overdue(rt: Runtime, batch: int = 200) -> int:
    """Flag and announce every open application whose due date has passed; returns how many.

    Each application is flagged once (``overdue_at``), in the same transaction as its event.
    Replicas on PostgreSQL share the work through SKIP LOCKED.
    """
    total = 0
    while True:
        async with rt.uow() as uow:
            q = (
                select(Application)
                .where(
                    Application.status.in_(ON_THE_CLOCK),
                    Application.due_date < uow.clock.today(),
                    Application.overdue_at.is_(None),
                )
                .order_by(Application.due_date, Application.id)
                .limit(batch)
            )
            if not rt.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            apps = list((await uow.session.scalars(q)).all())
            if not apps:
                return total
            now = utcnow()
            for app in apps:
                app.overdue_at = now
                levels = catalogue()[app.type].levels
                uow.publish(
                    ApplicationOverdue(
                        application_id=app.id,
                        application_no=app.application_no,
                        certificate_type=app.type,
                        certificate_type_name=catalogue()[app.type].name,
                        status=app.status,
                        level=rules.waiting_level(
                            rules.Status(app.status), app.level_index, levels
                        ),
                        due_date=app.due_date,
                        region_code=app.region_code,
                    ),
                    subject=app.id,
                )
            await uow.commit()
            total += len(apps)
