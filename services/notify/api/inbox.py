from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.notify.models import InboxMessage
from shared.auth import Principal, Role, require_roles
from shared.errors import Problem
from shared.pagination import (
    MAX_LIMIT,
    Page,
    after_time_cursor,
    encode_cursor,
)
from shared.service import RuntimeDep

router = APIRouter(prefix="/inbox", tags=["inbox"])


class InboxItem(BaseModel):
    id: str
    title: str
    body: str
    created_at: datetime
    read: bool


@router.get("", response_model=Page[InboxItem], summary="The resident's app inbox, newest first")
async def list_inbox(
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_roles(Role.resident))],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> Page[InboxItem]:
    if not principal.person_id:
        raise Problem(403, "forbidden", "令牌缺少 person_id", "The token has no person_id")
    m = InboxMessage
    q = (
        select(m)
        .where(m.person_id == principal.person_id)
        .order_by(m.created_at.desc(), m.id.desc())
        .limit(limit + 1)
    )
    after = after_time_cursor(cursor, m.created_at, m.id, newest_first=True)
    if after is not None:
        q = q.where(after)
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
    items = [
        InboxItem(
            id=r.id, title=r.title, body=r.body, created_at=r.created_at, read=r.read_at is not None
        )
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[InboxItem](
        items=items,
        next_cursor=encode_cursor(last.created_at.isoformat(), last.id) if last else None,
    )
