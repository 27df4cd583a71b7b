"""Helpers for tests: databases, the broker, the four apps in one process, and flows."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from stdnum.cn import ric

from shared.auth import mint_dev_token
from shared.config import SERVICES, Settings
from shared.db import Database
from shared.devstack import NatsServer
from shared.service import Runtime

PG_URL = os.environ.get("LINGJU_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

T = TypeVar("T")


# -- databases ------------------------------------------------------------------------------


def _pg_connect_args(url: str) -> dict[str, Any]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "database": u.database or "postgres",
    }


def pg_unreachable_reason(url: str) -> str | None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(**_pg_connect_args(url), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def create_pg_databases(admin_url: str, names: dict[str, str]) -> dict[str, str]:
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(**_pg_connect_args(admin_url))
        try:
            for name in names.values():
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base = make_url(admin_url).set(drivername="postgresql+asyncpg")
    return {
        service: base.set(database=name).render_as_string(hide_password=False)
        for service, name in names.items()
    }


def drop_pg_databases(admin_url: str, names: list[str]) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(**_pg_connect_args(admin_url))
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def service_metadata(service: str) -> Any:
    return importlib.import_module(f"services.{service}.models").metadata


# Tables whose rows the database refuses to change or delete (benefits' ledger).
APPEND_ONLY_TABLES = frozenset({"ledger_entries"})


async def reset_databases(urls: dict[str, str]) -> None:
    for service, url in urls.items():
        db = Database(url)
        try:
            async with db.session() as s, s.begin():
                # Append-only tables refuse DELETE by trigger: lift the triggers for the reset
                # inside the same transaction and put them back before it commits.
                tables = list(reversed(service_metadata(service).sorted_tables))
                guarded = [t.name for t in tables if t.name in APPEND_ONLY_TABLES]
                triggers: list[Any] = []
                if url.startswith("sqlite"):
                    triggers = list(
                        await s.execute(
                            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                        )
                    )
                    for name, _ in triggers:
                        await s.execute(text(f'DROP TRIGGER "{name}"'))
                else:
                    for name in guarded:
                        await s.execute(text(f"ALTER TABLE {name} DISABLE TRIGGER USER"))
                for table in tables:
                    await s.execute(delete(table))
                for _, sql in triggers:
                    await s.execute(text(sql))
                if not url.startswith("sqlite"):
                    for name in guarded:
                        await s.execute(text(f"ALTER TABLE {name} ENABLE TRIGGER USER"))
        finally:
            await db.dispose()


async def reset_broker(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            await js.delete_stream(info.config.name)
    finally:
        await nc.close()


# -- waiting ---------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[T]], within: float = 20.0, interval: float = 0.1
) -> T:
    """Retry ``check`` until it stops raising AssertionError, or fail with its last error."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


# -- people and tokens -----------------------------------------------------------------------

_seq = count(1)
VILLAGE = "330102001001"  # a village of a township of Shangcheng district, Hangzhou
TOWNSHIP = "330102001"
OTHER_TOWNSHIP = "330102002"


def make_id_number(birth: date, sex: str = "female") -> str:
    """A valid GB 11643 number (region 110105), unique within the test run."""
    n = next(_seq)
    seq3 = (n * 2 + (1 if sex == "male" else 0)) % 1000
    base = f"110105{birth:%Y%m%d}{seq3:03d}"
    return base + ric.calc_check_digit(base + "0")


def auth(
    settings: Settings,
    role: str,
    region: str = "",
    person_id: str | None = None,
    sub: str | None = None,
) -> dict[str, str]:
    token = mint_dev_token(settings, role=role, region=region, person_id=person_id, sub=sub)
    return {"Authorization": f"Bearer {token}"}


# -- the four apps in one process ----------------------------------------------------------------


def settings_for_tests(
    databases: dict[str, str], nats_url: str, tmp_path: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "var_dir": tmp_path,
        "nats_url": nats_url,
        "log_json": False,
        "consumer_max_deliver": 3,
        "consumer_backoff_seconds": [0.2, 0.4, 0.8],
        "consumer_ack_wait_seconds": 5,
        "consumer_fetch_timeout_seconds": 0.5,
        "consumer_lag_poll_seconds": 1,
        "relay_poll_seconds": 0.5,
        "relay_max_backoff_seconds": 1.0,
        "publish_timeout_seconds": 2.0,
        "notify_file_provider_path": tmp_path / "messages.jsonl",
        "notify_webhook_allow_private": True,  # the tests' webhook receivers are on loopback
        **{f"{s}_database_url": url for s, url in databases.items()},
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def clean_stack(
    databases: dict[str, str], nats: NatsServer, tmp_path: Path, **overrides: Any
) -> AsyncIterator[InProcessStack]:
    """The four apps running over clean databases and a clean broker, with these settings."""
    await reset_databases(databases)
    await reset_broker(nats.url)
    stack = InProcessStack(databases, nats, tmp_path, **overrides)
    async with stack.running():
        yield stack


class InProcessStack:
    """registry, benefits, visits and notify as ASGI apps with their lifespans running."""

    def __init__(
        self, databases: dict[str, str], nats: NatsServer, tmp_path: Path, **overrides: Any
    ) -> None:
        self.databases = databases
        self.nats = nats
        self.settings = settings_for_tests(databases, nats.url, tmp_path, **overrides)
        self.apps = {
            s: importlib.import_module(f"services.{s}.app").create_app(self.settings)
            for s in SERVICES
        }
        self.clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[InProcessStack]:
        async with AsyncExitStack() as es:
            for app in self.apps.values():
                await es.enter_async_context(app.router.lifespan_context(app))
            for name in SERVICES:
                await asyncio.wait_for(self.rt(name).provisioned.wait(), timeout=20)
            for name in SERVICES:
                self.rt(name).peer_transports = {
                    other: httpx.ASGITransport(app=app) for other, app in self.apps.items()
                }
            for name, app in self.apps.items():
                self.clients[name] = await es.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url=f"http://{name}"
                    )
                )
            yield self

    def rt(self, service: str) -> Runtime:
        return self.apps[service].state.runtime  # type: ignore[no-any-return]

    @property
    def registry(self) -> httpx.AsyncClient:
        return self.clients["registry"]

    @property
    def benefits(self) -> httpx.AsyncClient:
        return self.clients["benefits"]

    @property
    def visits(self) -> httpx.AsyncClient:
        return self.clients["visits"]

    @property
    def notify(self) -> httpx.AsyncClient:
        return self.clients["notify"]

    def auth(
        self, role: str, region: str = "", person_id: str | None = None, sub: str | None = None
    ) -> dict[str, str]:
        """A dev token; ``sub`` names the officer (maker-checker tests need two)."""
        return auth(self.settings, role, region, person_id, sub)

    # -- flows ------------------------------------------------------------------------------

    async def register_person(
        self, birth: date = date(1975, 5, 1), sex: str = "female", **fields: Any
    ) -> dict[str, Any]:
        body = {
            "id_number": make_id_number(birth, sex),
            "name": "测试居民",
            "phone": "13800138000",
            "region_code": VILLAGE,
            "household_type": "rural",
            **fields,
        }
        r = await self.registry.post(
            "/api/v1/persons", json=body, headers=self.auth("village_agent", TOWNSHIP)
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def submit_application(self) -> dict[str, Any]:
        mother = await self.register_person(date(1975, 5, 1), "female")
        father = await self.register_person(date(1973, 3, 2), "male")
        # Under 18 until 2030-05, and born before 2016 (when honor certificates stopped).
        child = await self.register_person(date(2012, 6, 1), "male", phone=None)
        r = await self.registry.post(
            "/api/v1/applications",
            json={
                "type": "only_child_honor",
                "applicant_id": mother["id"],
                "subjects": {"spouse_id": father["id"], "child_id": child["id"]},
                "materials": [
                    {"code": c, "ref": f"upload-{c}"}
                    for c in (
                        "household_register",
                        "marriage_certificate",
                        "child_birth_certificate",
                    )
                ],
            },
            headers=self.auth("village_agent", TOWNSHIP),
        )
        assert r.status_code == 201, r.text
        return {**r.json(), "mother": mother, "father": father, "child": child}

    async def issue_certificate(self) -> dict[str, Any]:
        """A complete only-child honor application, approved at the village and township."""
        app = await self.submit_application()
        r = await self.registry.post(
            f"/api/v1/applications/{app['id']}/review",
            json={"decision": "approve", "version": app["version"]},
            headers=self.auth("village_worker", VILLAGE),
        )
        assert r.status_code == 200, r.text
        r = await self.registry.post(
            f"/api/v1/applications/{app['id']}/review",
            json={"decision": "approve", "version": r.json()["version"]},
            headers=self.auth("township_officer", TOWNSHIP),
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "issued"
        return {**app, **r.json()}

    async def enrollments_of(self, person_id: str) -> list[dict[str, Any]]:
        r = await self.benefits.get(
            "/api/v1/enrollments",
            params={"person_id": person_id},
            headers=self.auth("county_officer", "330102"),
        )
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    async def count_rows(self, service: str, table: str) -> int:
        from sqlalchemy import func, select

        t = service_metadata(service).tables[table]
        async with self.rt(service).db.session() as s:
            return int((await s.execute(select(func.count()).select_from(t))).scalar_one())


async def published(stack: InProcessStack, service: str, event_type: str) -> list[dict[str, Any]]:
    """The events of one type a service has written to its outbox, oldest first."""
    import json

    from sqlalchemy import select

    t = stack.rt(service).tables.outbox
    async with stack.rt(service).db.session() as s:
        rows = (await s.execute(select(t.c.payload).order_by(t.c.seq))).scalars().all()
    events = [json.loads(p) for p in rows]
    return [e for e in events if e["type"] == event_type]
