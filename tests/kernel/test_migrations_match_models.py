"""Each service's migrations build exactly the tables its models describe, on SQLite and
PostgreSQL: a column or index added to a model without its migration (or the reverse) fails
here rather than on a county's database."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import SERVICES
from shared.db import async_url


@pytest.mark.parametrize("service", SERVICES)
async def test_migrated_schema_equals_the_models(databases: dict[str, str], service: str) -> None:
    metadata = importlib.import_module(f"services.{service}.models").metadata
    engine = create_async_engine(async_url(databases[service]))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []
