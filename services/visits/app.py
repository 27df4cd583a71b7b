"""visits: follow-up plans, worker tasks, visit records, appointments, offline sync."""

from __future__ import annotations

from fastapi import FastAPI

from services.visits.api import appointments, exports, plans, sync, tasks, visits
from services.visits.api.access import POLICY
from services.visits.appointments import run_reminders
from services.visits.events import HANDLERS
from services.visits.forms import forms as findings_forms
from services.visits.models import KERNEL, metadata
from services.visits.reports import compute as compute_indicators
from services.visits.tasks import run_task_announcements
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="visits",
    title="Lingju visits (随访与预约)",
    metadata=metadata,
    kernel=KERNEL,
    policy=POLICY,
    routers=[
        plans.router,
        tasks.router,
        visits.router,
        appointments.router,
        sync.router,
        exports.router,
    ],
    handlers=HANDLERS,
    workers=[run_reminders, run_task_announcements],
    indicators=compute_indicators,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    # The county's plan and form files are read now, so a malformed one stops the start-up
    # with the place named instead of failing the first worker who records a visit.
    findings_forms()
    return create_service_app(SPEC, settings)
