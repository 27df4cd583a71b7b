"""registry: residents, families, births and deaths, certificate applications."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.api import (
    applications,
    catalogue,
    certificates,
    exports,
    families,
    integrations,
    life_events,
    persons,
    public,
    reports,
)
from services.registry.api.access import POLICY
from services.registry.deadlines import run_overdue_sweep
from services.registry.models import KERNEL, metadata
from services.registry.reports import compute as compute_indicators
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="registry",
    title="Lingju registry (户籍与证件)",
    metadata=metadata,
    kernel=KERNEL,
    routers=[
        catalogue.router,
        public.router,
        persons.router,
        applications.router,
        certificates.router,
        families.router,
        life_events.router,
        integrations.router,
        reports.router,
        exports.router,
    ],
    policy=POLICY,
    workers=[run_overdue_sweep],
    indicators=compute_indicators,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
