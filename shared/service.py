"""The service chassis: every Lingju service is built the same way by ``create_service_app``.

It wires settings, the database, the outbox relay, the JetStream consumers, auth, errors,
health and metrics, so a service's own ``app.py`` only names its routers and handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from sqlalchemy import MetaData, and_, or_, select

from shared import context
from shared.access import AccessPolicy
from shared.audit import AuditTrail, audit_router
from shared.auth import Principal, TokenVerifier
from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.crypto import FieldCipher
from shared.db import Database, utcnow
from shared.errors import Problem, install_error_handlers, problem_response, problem_responses
from shared.events.broker import STREAMS, Broker, ensure_stream
from shared.events.consumer import ConsumerRunner, Handler, ReplayFailed
from shared.events.outbox import Outbox, OutboxRelay, UnitOfWork
from shared.inflight import InFlight
from shared.limits import BodySizeLimit
from shared.observability import ServiceMetrics, configure_logging, install_http_observability
from shared.pagination import MAX_LIMIT, Page, cursor_time, decode_cursor, encode_cursor
from shared.reports import (
    Compute,
    FormatQuery,
    IndicatorReport,
    MonthQuery,
    RegionQuery,
    report_csv,
    report_scope,
)
from shared.tables import KernelTables

log = logging.getLogger("lingju.service")


@dataclass
class ServiceSpec:
    name: str
    title: str
    metadata: MetaData
    kernel: KernelTables
    routers: list[APIRouter]
    # Who may call each route (shared/access.py): checked against the routes at start.
    policy: AccessPolicy
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    # The service's indicators (shared/reports.py), served at /api/v1/reports/indicators.
    indicators: Compute | None = None
    # Long-running loops of the service itself (e.g. notify's delivery dispatcher).
    workers: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)


class Runtime:
    """Everything a request or a handler of one service needs; lives on ``app.state.runtime``."""

    def __init__(self, spec: ServiceSpec, settings: Settings) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.db = Database(
            settings.database_url(spec.name),
            pool_size=settings.db_pool_size,
            sqlite_cache_mib=settings.db_sqlite_cache_mib,
        )
        self.tables = spec.kernel
        self.outbox = Outbox(spec.name, spec.kernel)
        self.broker = Broker(settings.nats_url, name=f"lingju-{spec.name}")
        self.inflight = InFlight()
        self.relay = OutboxRelay(
            self.db, self.outbox, self.broker, settings, self.metrics, self.inflight
        )
        self.consumers = ConsumerRunner(
            spec.name,
            self.db,
            self.outbox,
            self.broker,
            settings,
            self.metrics,
            spec.handlers,
            self.inflight,
        )
        self._clock: Clock = SystemClock()
        self.verifier = TokenVerifier(settings)
        self.cipher = FieldCipher(settings.data_keys, settings.blind_index_key)
        self.provisioned = asyncio.Event()
        # How this service reaches another's API (``peer``): over HTTP at its URL, unless a
        # transport is given (the in-process test stack hands the other apps' ASGI transports).
        self.peer_transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def clock(self) -> Clock:
        """The business day of this service (``shared.clock``); tests set a ``FixedClock``."""
        return self._clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self._clock = value
        self.consumers.clock = value

    def peer(self, service: str) -> httpx.AsyncClient:
        """A client for another service's API (close it after use: ``async with``)."""
        return httpx.AsyncClient(
            base_url=self.settings.service_url(service),
            transport=self.peer_transports.get(service),
            timeout=self.settings.peer_timeout_seconds,
        )

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.outbox, self._clock, self.settings)

    async def start(self) -> None:
        context.service_name.set(self.name)  # inherited by every task started below
        self.broker.start()
        self._tasks.append(asyncio.create_task(self._bring_up(), name=f"{self.name}-bring-up"))

    async def _bring_up(self) -> None:
        """Declare streams and consumers before reporting ready, then run relay and consumers."""
        delay = 0.2
        while True:
            await self.broker.connected.wait()
            try:
                assert self.broker.js is not None
                await ensure_stream(
                    self.broker.js,
                    self.name,
                    max_age_days=self.settings.stream_max_age_days,
                    duplicate_window=self.settings.stream_duplicate_window_seconds,
                )
                await self.consumers.provision()
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("provisioning failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
        self.provisioned.set()
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [("relay", self.relay.run)]
        loops += [(f"worker-{i}", lambda w=w: w(self)) for i, w in enumerate(self.spec.workers)]
        if self.spec.handlers:
            loops.append(("consumers", self.consumers.run))
        for name, loop in loops:
            self._tasks.append(
                asyncio.create_task(_supervised(name, loop), name=f"{self.name}-{name}")
            )

    async def stop(self) -> None:
        pending = await _cancel({t for t in self._tasks if not t.done()}, within=2)
        await self.inflight.drain(within=15)  # finish the transaction or message at hand
        # Closing the connection also frees a pull that lost its cancellation: on Python 3.11
        # asyncio.wait_for (inside nats-py's fetch) can swallow one.
        await self.broker.close()
        for _ in range(3):
            if not pending:
                break
            pending = await _cancel(pending, within=5)
        if pending:
            log.error("tasks did not stop: %s", sorted(t.get_name() for t in pending))
        await self.db.dispose()


async def _cancel(tasks: set[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
    """Cancel and wait up to ``within`` seconds; returns the tasks still running."""
    if not tasks:
        return tasks
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=within)
    return pending


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """A loop that dies of an unexpected error is logged and started again, never lost."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped unexpectedly; restarting in 1s", name)
            await asyncio.sleep(1)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def create_service_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check(spec.name)
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt: Runtime = app.state.runtime
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    docs = settings.serves_api_docs
    app = FastAPI(
        title=spec.title,
        version="0.1.0",
        lifespan=lifespan,
        responses=problem_responses(),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.runtime = Runtime(spec, settings)
    install_error_handlers(app)
    app.add_middleware(AuditTrail)  # innermost: sees the status the route answered
    app.add_middleware(BodySizeLimit, settings=settings)  # inside observability: 413s counted
    install_http_observability(app, spec.name, app.state.runtime.metrics)
    mounted = [
        ("", _health_router()),
        ("/api/v1", _dead_letter_router(spec.policy)),
        ("/api/v1", audit_router(spec.policy.caller, runtime)),
        ("/api/v1", _reports_router(spec.policy)),
        *(("/api/v1", router) for router in spec.routers),
    ]
    for prefix, router in mounted:
        app.include_router(router, prefix=prefix)
    spec.policy.bind(mounted)
    return app


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz(rt: RuntimeDep) -> dict[str, str]:
        return {"status": "ok", "service": rt.name}

    @router.get("/readyz", summary="Readiness: database and NATS reachable, streams declared")
    async def readyz(request: Request, rt: RuntimeDep) -> Response:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(rt.db.ping(), timeout=3)
            checks["database"] = "ok"
        except Exception as e:
            checks["database"] = f"error: {type(e).__name__}"
        checks["nats"] = "ok" if rt.broker.is_connected else "disconnected"
        checks["streams"] = "ok" if rt.provisioned.is_set() else "pending"
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "service": rt.name, "checks": checks})
        problem = Problem(
            503,
            "database_unavailable" if checks["database"] != "ok" else "not_ready",
            f"服务尚未就绪：{checks}",
            f"Not ready: {checks}",
            headers={"Retry-After": "2"},
        )
        return problem_response(request, problem)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics(request: Request, rt: RuntimeDep) -> Response:
        token = rt.settings.metrics_token
        if token:
            offered = request.headers.get("authorization", "")
            if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
                problem = Problem(
                    401,
                    "unauthenticated",
                    "请提供指标抓取令牌（Authorization: Bearer）",
                    "Send the metrics token (Authorization: Bearer)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return problem_response(request, problem)
        with contextlib.suppress(Exception):
            await rt.relay._refresh_backlog()
        return rt.metrics.render()

    return router


def _reports_router(policy: AccessPolicy) -> APIRouter:
    router = APIRouter(prefix="/reports", tags=["reports"])
    caller = Depends(policy.caller)  # a default: annotations are strings here

    @router.get(
        "/indicators",
        summary="This service's indicators for a region and month, broken down one level",
        response_model=IndicatorReport,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def indicators(
        request: Request,
        rt: RuntimeDep,
        region: RegionQuery = None,
        month: MonthQuery = None,
        format: FormatQuery = "json",
        principal: Principal = caller,
    ) -> Response:
        scope = report_scope(principal.region_scope(), region, month, rt.clock.today())
        values = await rt.spec.indicators(rt, scope) if rt.spec.indicators else []
        report = IndicatorReport(
            service=rt.name,
            region=scope.region,
            level=scope.level,
            month=str(scope.month),
            as_of=scope.as_of,
            generated_at=utcnow(),
            indicators=values,
        )
        if format == "csv":
            return PlainTextResponse(report_csv([report]), media_type="text/csv; charset=utf-8")
        return JSONResponse(report.model_dump(mode="json"))

    return router


class DeadLetterOut(BaseModel):
    id: str
    consumer: str
    stream: str
    subject: str
    event_id: str | None
    event_type: str | None
    error: str
    attempts: int
    status: str
    created_at: datetime
    replayed_at: datetime | None
    payload: str


def _dead_letter_router(policy: AccessPolicy) -> APIRouter:
    router = APIRouter(prefix="/admin/dead-letters", tags=["admin"])
    # A default, not an Annotated alias: annotations are strings here, resolved in the module.
    admin = Depends(policy.caller)

    @router.get("", summary="Events a consumer gave up on", response_model=Page[DeadLetterOut])
    async def list_dead_letters(
        rt: RuntimeDep,
        _: Principal = admin,
        status: Annotated[str, Query(pattern="^(dead|replayed)$")] = "dead",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> Page[DeadLetterOut]:
        dl = rt.tables.dead_letters
        q = (
            select(dl)
            .where(dl.c.status == status)
            .order_by(dl.c.created_at, dl.c.id)
            .limit(limit + 1)
        )
        after = decode_cursor(cursor, 2)
        if after:
            at = cursor_time(after[0])
            q = q.where(or_(dl.c.created_at > at, and_(dl.c.created_at == at, dl.c.id > after[1])))
        async with rt.db.session() as s:
            rows = (await s.execute(q)).mappings().all()
        items = [DeadLetterOut(**dict(r)) for r in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        nxt = encode_cursor(last.created_at.isoformat(), last.id) if last else None
        return Page[DeadLetterOut](items=items, next_cursor=nxt)

    @router.post("/{dead_letter_id}/replay", summary="Apply a dead letter again")
    async def replay(dead_letter_id: str, rt: RuntimeDep, _: Principal = admin) -> dict[str, Any]:
        try:
            applied = await rt.consumers.replay(dead_letter_id)
        except LookupError as e:
            raise Problem(404, "not_found", "死信不存在", "Dead letter not found") from e
        except ReplayFailed as e:
            raise Problem(409, "replay_failed", f"重放失败：{e}", f"Replay failed: {e}") from e
        return {"id": dead_letter_id, "status": "replayed", "applied": applied}

    return router


__all__ = ["STREAMS", "Runtime", "RuntimeDep", "ServiceSpec", "create_service_app", "runtime"]
