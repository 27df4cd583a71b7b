"""benefits: programs, eligibility, enrollments, payment runs, ledger."""

from __future__ import annotations

from fastapi import FastAPI

from services.benefits.api import claims, enrollments, exports, payees, payment_runs, programs
from services.benefits.api.access import POLICY
from services.benefits.events import HANDLERS
from services.benefits.models import KERNEL, metadata
from services.benefits.reports import compute as compute_indicators
from services.benefits.sweeps import run_enrollment_sweeps
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="benefits",
    title="Lingju benefits (奖励扶助与补贴)",
    metadata=metadata,
    kernel=KERNEL,
    policy=POLICY,
    routers=[
        programs.router,
        enrollments.router,
        payment_runs.router,
        payees.router,
        claims.router,
        exports.router,
    ],
    handlers=HANDLERS,
    indicators=compute_indicators,
    workers=[run_enrollment_sweeps],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
