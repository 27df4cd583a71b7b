"""Local copies of another service's records, kept from its events.

Events about one record may arrive out of order (redelivery, several replicas): a copy keeps
the version of the record it reflects and ignores anything older.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import SQLModel

from shared.db import utcnow
from shared.events.outbox import UnitOfWork


async def apply_copy(
    uow: UnitOfWork, model: type[SQLModel], key: str, values: dict[str, Any], version: int
) -> bool:
    """Insert or update the copy ``model`` keyed ``values[key]``; False if it was newer."""
    row = await uow.session.get(model, values[key])
    if row is None:
        uow.session.add(model(**values, source_version=version))
        return True
    if row.source_version >= version:  # type: ignore[attr-defined]
        return False
    for name, value in values.items():
        setattr(row, name, value)
    row.source_version = version  # type: ignore[attr-defined]
    row.updated_at = utcnow()  # type: ignore[attr-defined]
    return True
