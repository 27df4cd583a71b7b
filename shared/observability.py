"""Metrics (Prometheus), JSON logs, and the correlation id that follows a request into events."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pythonjsonlogger.json import JsonFormatter

from shared import context


class ServiceMetrics:
    """One registry per app, so several services can live in one test process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "lingju_http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "lingju_http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.outbox_backlog = Gauge(
            "lingju_outbox_backlog",
            "Events committed but not yet published",
            ["service"],
            registry=r,
        )
        self.events_published = Counter(
            "lingju_events_published_total",
            "Events published to JetStream",
            ["service"],
            registry=r,
        )
        self.events_handled = Counter(
            "lingju_events_handled_total",
            "Events handled, by outcome",
            ["service", "type", "outcome"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "lingju_consumer_lag",
            "Messages pending or unacknowledged for our durable consumer",
            ["service", "stream"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "lingju_dead_letters", "Dead letters awaiting replay", ["service"], registry=r
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.service = context.service_name.get() or getattr(record, "service", None)
        record.correlation_id = context.correlation_id.get()
        return True


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_lingju", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._lingju = True  # type: ignore[attr-defined]
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(service)s %(correlation_id)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(service)s %(correlation_id)s] %(message)s"
            )
        )
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("nats").setLevel(logging.WARNING)


def route_template(scope: Mapping[str, Any], status: int) -> str:
    """``/api/v1/persons/{person_id}`` rather than the raw path, to keep label cardinality low."""
    if "endpoint" not in scope and status == 404:
        return "unmatched"
    params = scope.get("path_params") or {}
    names = {str(v): k for k, v in params.items()}
    segments = str(scope["path"]).split("/")
    return "/".join(f"{{{names[seg]}}}" if seg in names else seg for seg in segments)


def install_http_observability(app: FastAPI, service: str, metrics: ServiceMetrics) -> None:
    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        cid = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        tokens = (
            context.correlation_id.set(cid),
            context.traceparent.set(request.headers.get("traceparent")),
            context.service_name.set(service),
        )
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Correlation-ID"] = cid
            return response
        finally:
            path = route_template(request.scope, status)
            metrics.http_requests.labels(service, request.method, path, str(status)).inc()
            metrics.http_latency.labels(service, request.method, path).observe(
                time.perf_counter() - start
            )
            context.correlation_id.reset(tokens[0])
            context.traceparent.reset(tokens[1])
            context.service_name.reset(tokens[2])
