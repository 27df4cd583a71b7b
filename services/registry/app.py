"""registry: residents, families, births and deaths, certificate applications."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.api import applications, catalogue, certificates, persons
from services.registry.models import KERNEL, metadata
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="registry",
    title="Lingju registry (户籍与证件)",
    metadata=metadata,
    kernel=KERNEL,
    routers=[catalogue.router, persons.router, applications.router, certificates.router],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
