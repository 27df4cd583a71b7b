"""notify: templates, channels and providers, preferences, deliveries, the app inbox."""

from __future__ import annotations

from fastapi import FastAPI

from services.notify.api import inbox
from services.notify.dispatcher import run_dispatcher
from services.notify.events import HANDLERS
from services.notify.models import KERNEL, metadata
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="notify",
    title="Lingju notify (消息通知)",
    metadata=metadata,
    kernel=KERNEL,
    routers=[inbox.router],
    handlers=HANDLERS,
    workers=[run_dispatcher],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
