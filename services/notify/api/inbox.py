"""The app inbox (站内信): a resident's or a member of staff's own messages, never another's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select, update

from services.notify.api.access import Caller
from services.notify.models import Delivery, InboxMessage
from services.notify.recipients import recipient_of
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.errors import Problem, not_found, problem_responses
from shared.pagination import MAX_LIMIT, Page, after_time_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(prefix="/inbox", tags=["inbox"], responses=problem_responses())


class InboxItem(BaseModel):
    id: str
    title: str
    body: str
    created_at: datetime
    read: bool
    important: bool = Field(description="Unread for long, it is also sent by SMS")


class UnreadCount(BaseModel):
    unread: int


def _owner(principal: Principal) -> str:
    if principal.role is Role.resident and not principal.person_id:
        raise Problem(403, "forbidden", "令牌缺少 person_id", "The token has no person_id")
    return recipient_of(principal)


@router.get("", response_model=Page[InboxItem], summary="The caller's own inbox, newest first")
async def list_inbox(
    rt: RuntimeDep,
    principal: Caller,
    unread: Annotated[bool, Query(description="Only messages not read yet")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> Page[InboxItem]:
    m = InboxMessage
    q = (
        select(m)
        .where(m.recipient == _owner(principal))
        .order_by(m.created_at.desc(), m.id.desc())  # type: ignore[attr-defined]
        .limit(limit + 1)
    )
    if unread:
        q = q.where(m.read_at.is_(None))  # type: ignore[union-attr]
    after = after_time_cursor(cursor, m.created_at, m.id, newest_first=True)
    if after is not None:
        q = q.where(after)
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
    items = [
        InboxItem(
            id=r.id,
            title=r.title,
            body=r.body,
            created_at=r.created_at,
            read=r.read_at is not None,
            important=r.important,
        )
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[InboxItem](
        items=items,
        next_cursor=encode_cursor(last.created_at.isoformat(), last.id) if last else None,
    )


@router.get("/unread-count", response_model=UnreadCount, summary="How many are not read yet")
async def unread_count(rt: RuntimeDep, principal: Caller) -> UnreadCount:
    async with rt.db.session() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(InboxMessage)
            .where(
                InboxMessage.recipient == _owner(principal),  # type: ignore[arg-type]
                InboxMessage.read_at.is_(None),  # type: ignore[union-attr]
            )
        )
    return UnreadCount(unread=int(n or 0))


@router.post(
    "/{message_id}/read",
    response_model=InboxItem,
    summary="Mark one of the caller's messages read (again is harmless)",
)
async def mark_read(
    message_id: Annotated[str, Path(max_length=36)], rt: RuntimeDep, principal: Caller
) -> InboxItem:
    owner = _owner(principal)
    async with rt.db.session() as s, s.begin():
        # Someone else's message answers exactly like a missing one: nothing leaks.
        await s.execute(
            update(InboxMessage)
            .where(
                InboxMessage.id == message_id,  # type: ignore[arg-type]
                InboxMessage.recipient == owner,  # type: ignore[arg-type]
                InboxMessage.read_at.is_(None),  # type: ignore[union-attr]
            )
            .values(read_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        row = await s.get(InboxMessage, message_id, populate_existing=True)
        if row is None or row.recipient != owner:
            raise not_found("消息", "Message")
        if row.important and row.notification_id:
            # Read in the app: the SMS that was waiting in case it was not is no longer needed.
            await s.execute(
                update(Delivery)
                .where(
                    Delivery.notification_id == row.notification_id,  # type: ignore[arg-type]
                    Delivery.status == "queued",  # type: ignore[arg-type]
                    Delivery.held == "unread",  # type: ignore[arg-type]
                )
                .values(status="skipped", last_error="已在App中阅读", updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        return InboxItem(
            id=row.id,
            title=row.title,
            body=row.body,
            created_at=row.created_at,
            read=True,
            important=row.important,
        )
