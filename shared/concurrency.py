"""Optimistic concurrency: a transition names the version it was based on.

Clients send it as ``If-Match: "<version>"`` (the ETag of the GET) or as ``version`` in the
body. A stale ``If-Match`` answers 412, a stale body version 409; neither writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import utcnow
from shared.errors import Problem


@dataclass(frozen=True)
class Expected:
    version: int
    via_header: bool

    def conflict(self) -> Problem:
        if self.via_header:
            return Problem(412, "precondition_failed")
        return Problem(409, "version_conflict")


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None, body_version: int | None) -> Expected:
    if if_match:
        raw = if_match.strip().removeprefix("W/").strip('"')
        if not raw.isdigit():
            raise Problem(
                422,
                "validation_failed",
                'If-Match 应为版本号，如 "3"',
                'If-Match must be a version, e.g. "3"',
                errors=[{"field": "If-Match", "message": "格式不正确"}],
            )
        return Expected(int(raw), via_header=True)
    if body_version is not None:
        return Expected(body_version, via_header=False)
    raise Problem(
        428,
        "version_required",
        "请提供所读取的版本（If-Match 或 version）",
        "Send the version you read (If-Match or version)",
    )


async def versioned_update(
    session: AsyncSession,
    model: Any,
    key: str,
    *conditions: Any,
    expected: Expected | None = None,
    **values: Any,
) -> bool:
    """Change one row and raise its version, only where ``conditions`` (and the expected
    version, if given) still hold: of two racing writers exactly one wins. True if written."""
    q = update(model).where(model.id == key, *conditions)
    if expected is not None:
        q = q.where(model.version == expected.version)
    if "updated_at" in model.__table__.c:
        values.setdefault("updated_at", utcnow())
    result = await session.execute(
        q.values(version=model.version + 1, **values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
