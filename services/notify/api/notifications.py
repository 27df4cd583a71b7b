"""What was sent to whom, and whether and when it arrived (officers), and the providers'
delivery receipts (callbacks)."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.notify.api.access import Caller
from services.notify.dispatcher import dispatcher_for
from services.notify.models import DELIVERY_ADDRESS, Delivery, DeliveryAttempt, Notification
from services.notify.recipients import recipient_of
from services.notify.sealed import unseal
from shared.auth import Principal
from shared.crypto import FieldCipher, mask_phone
from shared.errors import Problem, not_found, problem_responses
from shared.pagination import MAX_LIMIT, Page, after_time_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(tags=["notifications"], responses=problem_responses())


class AttemptOut(BaseModel):
    provider: str
    started_at: datetime
    duration_ms: int
    outcome: str = Field(
        description="sent, timeout, unavailable, rate_limited, rejected, recipient_rejected"
    )
    http_status: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    channel: str
    address: str | None = Field(
        description="Masked (a phone 138****8000, else the last four characters) unless the "
        "message is the caller's own"
    )
    status: str = Field(
        description="queued, sending, sent, delivered, failed, or skipped (an important "
        "message's SMS not needed: the inbox copy was read first)"
    )
    held: str | None = Field(
        description="While queued, why it waits for not_before: quiet_hours, retry, or unread "
        "(an important message's SMS waiting for the inbox copy to be read)"
    )
    not_before: datetime | None
    attempts: int
    provider: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    attempt_log: list[AttemptOut]


class NotificationOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    recipient: str = Field(description="person:<id> or staff:<sub>")
    template: str
    template_version: int
    category: str
    critical: bool
    important: bool
    region_code: str
    title: str
    created_at: datetime
    deliveries: list[DeliveryOut]


def _mask(channel: str, address: str | None) -> str | None:
    if not address:
        return address
    if channel == "sms":
        return mask_phone(address)
    return "*" * max(0, len(address) - 4) + address[-4:] if len(address) > 4 else "****"


async def _out(  # type: ignore[no-untyped-def]
    session, rows: list[Notification], cipher: FieldCipher, principal: Principal
) -> list[NotificationOut]:
    own = {n.id for n in rows if n.recipient == recipient_of(principal)}
    ids = [n.id for n in rows]
    deliveries = list(
        (
            await session.scalars(
                select(Delivery)
                .where(Delivery.notification_id.in_(ids))  # type: ignore[attr-defined]
                .order_by(Delivery.channel)
            )
        ).all()
    )
    attempts = list(
        (
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))  # type: ignore[attr-defined]
                .order_by(DeliveryAttempt.id)  # type: ignore[arg-type]
            )
        ).all()
    )
    by_delivery: dict[str, list[AttemptOut]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(
            AttemptOut(
                provider=a.provider,
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                outcome=a.outcome,
                http_status=a.http_status,
                error=a.error,
            )
        )
    by_notification: dict[str, list[DeliveryOut]] = {}
    for d in deliveries:
        by_notification.setdefault(d.notification_id, []).append(
            DeliveryOut(
                id=d.id,
                channel=d.channel,
                address=_address(d, cipher, d.notification_id in own),
                status=d.status,
                held=d.held if d.status == "queued" else None,
                not_before=d.not_before if d.status == "queued" else None,
                attempts=d.attempts,
                provider=d.provider,
                last_error=d.last_error,
                created_at=d.created_at,
                sent_at=d.sent_at,
                delivered_at=d.delivered_at,
                failed_at=d.failed_at,
                attempt_log=by_delivery.get(d.id, []),
            )
        )
    return [
        NotificationOut(
            id=n.id,
            event_id=n.event_id,
            event_type=n.event_type,
            recipient=n.recipient,
            template=n.template,
            template_version=n.template_version,
            category=n.category,
            critical=n.critical,
            important=n.important,
            region_code=n.region_code,
            title=n.title,
            created_at=n.created_at,
            deliveries=by_notification.get(n.id, []),
        )
        for n in rows
    ]


def _address(d: Delivery, cipher: FieldCipher, own: bool) -> str | None:
    address = unseal(cipher, d.address_enc, DELIVERY_ADDRESS)
    return address if own else _mask(d.channel, address)


@router.get(
    "/notifications",
    response_model=Page[NotificationOut],
    summary="Messages of the caller's region, newest first, with each channel's attempts",
)
async def list_notifications(
    rt: RuntimeDep,
    principal: Caller,
    recipient: Annotated[str | None, Query(max_length=90, examples=["person:<id>"])] = None,
    event_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> Page[NotificationOut]:
    n = Notification
    q = select(n).order_by(n.created_at.desc(), n.id.desc()).limit(limit + 1)  # type: ignore[attr-defined]
    scope = principal.region_scope()
    if scope:
        q = q.where(n.region_code.startswith(scope, autoescape=True))  # type: ignore[attr-defined]
    if recipient is not None:
        q = q.where(n.recipient == recipient)
    if event_id is not None:
        q = q.where(n.event_id == event_id)
    after = after_time_cursor(cursor, n.created_at, n.id, newest_first=True)
    if after is not None:
        q = q.where(after)
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
        items = await _out(s, rows[:limit], rt.cipher, principal)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[NotificationOut](
        items=items,
        next_cursor=encode_cursor(last.created_at.isoformat(), last.id) if last else None,
    )


@router.get(
    "/notifications/{notification_id}",
    response_model=NotificationOut,
    summary="One message with each channel's status and attempts",
)
async def get_notification(
    notification_id: Annotated[str, Path(max_length=36)], rt: RuntimeDep, principal: Caller
) -> NotificationOut:
    async with rt.db.session() as s:
        row = await s.get(Notification, notification_id)
        if row is None:
            raise not_found("通知", "Notification")
        principal.require_region(row.region_code)
        return (await _out(s, [row], rt.cipher, principal))[0]


class ReceiptsOut(BaseModel):
    received: int = Field(description="Receipts in the body")
    applied: int = Field(description="Deliveries they changed (unknown or final ones: none)")


@router.post(
    "/receipts/{provider}",
    response_model=ReceiptsOut,
    summary="A provider's delivery receipts (its own body format); ?token= authenticates it",
)
async def receipts(
    provider: Annotated[str, Path(max_length=30)],
    request: Request,
    rt: RuntimeDep,
    token: Annotated[str, Query(max_length=200)] = "",
) -> ReceiptsOut:
    # Providers call back without our tokens: the callback URL carries a secret of its own.
    expected = rt.settings.notify_receipt_token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(401, "unauthenticated", "回执令牌无效", "Invalid receipt token")
    dispatcher = dispatcher_for(rt)
    found = [p for (_, name), p in dispatcher.by_name.items() if name == provider]
    if not found:
        raise not_found("渠道服务商", "Provider")
    body = await request.body()
    try:
        parsed = found[0].parse_receipts(body)
    except ValueError as e:
        raise Problem(
            422, "validation_failed", f"回执格式不正确：{e}", f"Malformed receipts: {e}"
        ) from e
    applied = await dispatcher.apply_receipts(provider, parsed)
    return ReceiptsOut(received=len(parsed), applied=applied)
