"""notify: routing, templates, channels and providers, preferences, deliveries, the app inbox."""

from __future__ import annotations

from fastapi import FastAPI

from services.notify.api import feed, inbox, notifications, preferences, staff, templates
from services.notify.api.access import POLICY
from services.notify.digests import run_digests
from services.notify.dispatcher import run_dispatcher
from services.notify.events import HANDLERS, routing
from services.notify.feed import run_feed_dispatcher
from services.notify.models import KERNEL, metadata
from services.notify.providers import build_providers
from services.notify.reports import compute as indicators
from services.notify.templates import seeds
from shared.config import Settings
from shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="notify",
    title="Lingju notify (消息通知)",
    metadata=metadata,
    kernel=KERNEL,
    policy=POLICY,
    routers=[
        inbox.router,
        notifications.router,
        preferences.router,
        staff.router,
        templates.router,
        feed.router,
    ],
    handlers=HANDLERS,
    indicators=indicators,
    workers=[run_dispatcher, run_digests, run_feed_dispatcher],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    # The routing and template files and the providers' settings are checked now: a mistake
    # stops the start-up with the place named instead of losing the first message.
    settings = settings or Settings()
    routing()
    seeds()
    build_providers(settings)
    return create_service_app(SPEC, settings)
