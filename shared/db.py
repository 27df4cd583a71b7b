"""Engines and sessions for SQLite (development) and PostgreSQL (production), same code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator


def async_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned in UTC, aware; SQLite would hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # SQLite keeps the wall time and drops the offset: an aware time in another zone
        # (Asia/Shanghai from the county's clock) must become UTC before it is written.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, sqlite_cache_mib: int = 256) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # Up to twice pool_size connections (as many overflow), on either database.
        kwargs: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": pool_size,
            "max_overflow": pool_size,
            # A database error's text must not carry the statement's values (ID numbers,
            # phones) into the logs that print it.
            "hide_parameters": True,
        }
        if self.is_sqlite:
            # A generous busy timeout makes concurrent writers wait instead of failing.
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            kib = sqlite_cache_kib(pool_size, sqlite_cache_mib)
            event.listen(
                self.engine.sync_engine,
                "connect",
                lambda conn, record: _sqlite_pragmas(conn, record, cache_kib=kib),
            )
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def sqlite_cache_kib(pool_size: int, total_mib: int) -> int:
    """One connection's SQLite page cache (KiB): the pool's 2 x pool_size connections share
    ``total_mib`` equally (256 MiB / 20 = 12.8 MiB each by default), never below SQLite's own
    2 MiB default."""
    return max(2048, total_mib * 1024 // (2 * pool_size))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, cache_kib: int) -> None:
    cur = dbapi_conn.cursor()
    # KiB (negative): sized so all 2 x pool_size connections together stay within the budget.
    cur.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT of the session's dialect (PostgreSQL's or SQLite's), which both offer
    ``on_conflict_do_nothing()``: the one way to insert what may already be there."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
