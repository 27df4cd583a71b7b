"""Per-request / per-event context that travels into logs and into the events we publish."""

from __future__ import annotations

from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
service_name: ContextVar[str | None] = ContextVar("service_name", default=None)
