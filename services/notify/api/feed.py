"""The outbound event feed's subscriptions and delivery log (services/notify/feed.py).

A system (the county health bureau: ``bureau_system``) registers a URL and the event types it
wants, and manages only its own subscriptions (owner = its token's ``sub``); an admin manages
all. Another client's subscription is not found (404): its existence is not told either.
The URL follows the staff webhooks' rules (``webhook_targets``: https to a public host); the
signing secret is answered once, on creation, on a new URL and on rotation, after which the
old one also signs for ``notify_webhook_secret_grace_hours``. URLs and secrets are stored
sealed (models.ENCRYPTED_COLUMNS).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.api.access import Caller
from services.notify.feed import publishable_event_types
from services.notify.models import (
    FEED_PREVIOUS_SECRET,
    FEED_SECRET,
    FEED_URL,
    FeedAttempt,
    FeedDelivery,
    FeedSubscription,
)
from services.notify.sealed import seal, unseal
from services.notify.webhook_targets import (
    TargetRefused,
    TargetUnresolvable,
    checked_addresses,
    forbidden,
    unresolvable,
)
from shared.auth import Principal, Role
from shared.crypto import FieldCipher
from shared.db import utcnow
from shared.errors import LocalizedValueError, Problem, not_found, problem_responses
from shared.pagination import MAX_LIMIT, Page, after_time_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(tags=["feed"], responses=problem_responses())

Id = Annotated[str, PathParam(min_length=1, max_length=36)]
FeedStatus = Literal["queued", "sending", "delivered", "failed"]


def _a_url(v: str | None) -> str | None:
    """A web address at all; whether notify may call it is the route's check."""
    if v is None:
        return None
    try:
        parts = urlsplit(v)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https") or any(c.isspace() for c in v):
        raise LocalizedValueError("应为 https:// 开头的网址", "must be an https:// URL")
    return v


def _types(v: list[str] | None) -> list[str] | None:
    return None if v is None else list(dict.fromkeys(v))  # each once, in the order given


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    url: str = Field(max_length=500, examples=["https://wjw.example.gov.cn/lingju/events"])
    event_types: list[str] = Field(
        min_length=1,
        max_length=100,
        examples=[["lingju.registry.child.born", "lingju.registry.person.died"]],
        description="Event types from the catalogue (422 unknown_event_type otherwise)",
    )

    _url = field_validator("url")(_a_url)
    _event_types = field_validator("event_types")(_types)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    url: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=100)
    active: bool | None = None

    _url = field_validator("url")(_a_url)
    _event_types = field_validator("event_types")(_types)


class SubscriptionOut(BaseModel):
    id: str
    owner: str
    url: str
    event_types: list[str]
    active: bool
    secret: str | None = Field(
        default=None,
        description="The signing secret, only in the answer that made it (creation or a new "
        "URL): keep it, it is not shown again",
    )
    created_at: datetime
    updated_at: datetime


class SecretOut(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret: keep it, it is not shown again")
    previous_valid_until: datetime | None = Field(
        description="Until then deliveries are also signed with the previous secret"
    )


class AttemptOut(BaseModel):
    started_at: datetime
    duration_ms: int
    outcome: str
    http_status: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    log: list[AttemptOut] = Field(description="Each attempt, oldest first")


def _out(sub: FeedSubscription, cipher: FieldCipher, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(
        id=sub.id,
        owner=sub.owner,
        url=unseal(cipher, sub.url_enc, FEED_URL) or "",
        event_types=list(sub.event_types),
        active=sub.active,
        secret=secret,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


def _check_types(types: list[str]) -> None:
    known = set(publishable_event_types())
    unknown = [t for t in types if t not in known]
    if unknown:
        names = ", ".join(unknown)
        raise Problem(
            422,
            "unknown_event_type",
            f"未知的事件类型：{names}",
            f"Unknown event type: {names}",
            errors=[{"field": "event_types", "message": f"未知的事件类型：{t}"} for t in unknown],
        )


async def _check_url(url: str, allow_private: bool) -> None:
    try:
        await checked_addresses(url, allow_private=allow_private)
    except TargetRefused as e:
        raise forbidden(e) from e
    except TargetUnresolvable as e:
        raise unresolvable() from e


def _mine(principal: Principal) -> Any:
    """The subscriptions the caller may reach: an admin's all, a system's its own."""
    if principal.role is Role.admin:
        return True
    return FeedSubscription.owner == principal.sub


async def _subscription(s: AsyncSession, principal: Principal, sid: str) -> FeedSubscription:
    found = await s.scalar(
        select(FeedSubscription).where(FeedSubscription.id == sid, _mine(principal))  # type: ignore[arg-type]
    )
    if found is None:
        raise not_found("事件订阅", "Feed subscription")
    return found


def _changed() -> Problem:
    return Problem(
        409,
        "version_conflict",
        "事件订阅已被他人修改，请刷新后重试",
        "The subscription was changed meanwhile; reload",
    )


@router.post(
    "/feed/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    summary="Subscribe a URL to event types (the signing secret is answered once)",
)
async def create_subscription(
    body: SubscriptionIn, rt: RuntimeDep, principal: Caller
) -> SubscriptionOut:
    _check_types(body.event_types)
    await _check_url(body.url, rt.settings.notify_webhook_allow_private)
    cipher = rt.cipher
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    sub = FeedSubscription(
        id=str(uuid.uuid4()),
        owner=principal.sub,
        url_enc=seal(cipher, body.url, FEED_URL) or "",
        secret_enc=seal(cipher, secret, FEED_SECRET) or "",
        event_types=body.event_types,
        created_at=now,
        updated_at=now,
    )
    async with rt.db.session() as s:
        s.add(sub)
        await s.commit()
        await s.refresh(sub)
    return _out(sub, cipher, secret)


@router.get(
    "/feed/subscriptions",
    response_model=Page[SubscriptionOut],
    summary="The caller's subscriptions (an admin: all), oldest first",
)
async def list_subscriptions(
    rt: RuntimeDep,
    principal: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[SubscriptionOut]:
    t = FeedSubscription
    q = select(t).where(_mine(principal)).order_by(t.created_at, t.id).limit(limit + 1)  # type: ignore[arg-type]
    after = after_time_cursor(cursor, t.created_at, t.id)
    if after is not None:
        q = q.where(after)
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
    page = rows[:limit]
    return Page[SubscriptionOut](
        items=[_out(r, rt.cipher) for r in page],
        next_cursor=(
            encode_cursor(page[-1].created_at.isoformat(), page[-1].id)
            if len(rows) > limit
            else None
        ),
    )


@router.get(
    "/feed/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="One subscription",
)
async def get_subscription(
    subscription_id: Id, rt: RuntimeDep, principal: Caller
) -> SubscriptionOut:
    async with rt.db.session() as s:
        sub = await _subscription(s, principal, subscription_id)
    return _out(sub, rt.cipher)


@router.patch(
    "/feed/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a subscription's URL (a new secret, answered once), event types or state",
)
async def patch_subscription(
    subscription_id: Id, body: SubscriptionPatch, rt: RuntimeDep, principal: Caller
) -> SubscriptionOut:
    if body.event_types is not None:
        _check_types(body.event_types)
    if body.url is not None:
        await _check_url(body.url, rt.settings.notify_webhook_allow_private)
    cipher = rt.cipher
    async with rt.db.session() as s:
        current = await _subscription(s, principal, subscription_id)
        values: dict[str, Any] = {"updated_at": utcnow()}
        secret: str | None = None
        if body.event_types is not None:
            values["event_types"] = body.event_types
        if body.active is not None:
            values["active"] = body.active
        if body.url is not None and body.url != unseal(cipher, current.url_enc, FEED_URL):
            # Another receiver: a secret of its own, and no grace for the old one's.
            secret = secrets.token_urlsafe(32)
            values.update(
                url_enc=seal(cipher, body.url, FEED_URL),
                secret_enc=seal(cipher, secret, FEED_SECRET),
                previous_secret_enc=None,
                previous_secret_until=None,
            )
        result = await s.execute(
            update(FeedSubscription)
            .where(
                FeedSubscription.id == subscription_id,  # type: ignore[arg-type]
                FeedSubscription.updated_at == current.updated_at,  # type: ignore[arg-type]
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _changed()
        await s.commit()
        updated = await s.get(FeedSubscription, subscription_id, populate_existing=True)
        assert updated is not None
    return _out(updated, cipher, secret)


@router.delete(
    "/feed/subscriptions/{subscription_id}",
    status_code=204,
    summary="End a subscription, with its deliveries and their log",
)
async def delete_subscription(subscription_id: Id, rt: RuntimeDep, principal: Caller) -> Response:
    async with rt.db.session() as s, s.begin():
        await _subscription(s, principal, subscription_id)
        deliveries = select(FeedDelivery.id).where(
            FeedDelivery.subscription_id == subscription_id  # type: ignore[arg-type]
        )
        await s.execute(delete(FeedAttempt).where(FeedAttempt.delivery_id.in_(deliveries)))  # type: ignore[attr-defined]
        await s.execute(
            delete(FeedDelivery).where(FeedDelivery.subscription_id == subscription_id)  # type: ignore[arg-type]
        )
        await s.execute(delete(FeedSubscription).where(FeedSubscription.id == subscription_id))  # type: ignore[arg-type]
    return Response(status_code=204)


@router.post(
    "/feed/subscriptions/{subscription_id}/secret/rotate",
    response_model=SecretOut,
    summary="A new signing secret (the old one signs too for notify_webhook_secret_grace_hours)",
)
async def rotate_secret(subscription_id: Id, rt: RuntimeDep, principal: Caller) -> SecretOut:
    cipher = rt.cipher
    async with rt.db.session() as s:
        current = await _subscription(s, principal, subscription_id)
        old = unseal(cipher, current.secret_enc, FEED_SECRET)
        secret = secrets.token_urlsafe(32)
        grace = timedelta(hours=rt.settings.notify_webhook_secret_grace_hours)
        until = rt.clock.now() + grace if grace else None
        result = await s.execute(
            update(FeedSubscription)
            # Still the secret read: of two rotations at once, one wins and the other is told.
            .where(
                FeedSubscription.id == subscription_id,  # type: ignore[arg-type]
                FeedSubscription.secret_enc == current.secret_enc,  # type: ignore[arg-type]
            )
            .values(
                secret_enc=seal(cipher, secret, FEED_SECRET),
                previous_secret_enc=seal(cipher, old, FEED_PREVIOUS_SECRET),
                previous_secret_until=until,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _changed()
        await s.commit()
    return SecretOut(id=subscription_id, secret=secret, previous_valid_until=until)


def _delivery_out(d: FeedDelivery, attempts: list[FeedAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        subscription_id=d.subscription_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_error=d.last_error,
        created_at=d.created_at,
        updated_at=d.updated_at,
        delivered_at=d.delivered_at,
        failed_at=d.failed_at,
        log=[
            AttemptOut(
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                outcome=a.outcome,
                http_status=a.http_status,
                error=a.error,
            )
            for a in attempts
        ],
    )


async def _log_of(s: AsyncSession, ids: list[str]) -> dict[str, list[FeedAttempt]]:
    out: dict[str, list[FeedAttempt]] = {i: [] for i in ids}
    if ids:
        q = (
            select(FeedAttempt)
            .where(FeedAttempt.delivery_id.in_(ids))  # type: ignore[attr-defined]
            .order_by(FeedAttempt.id)  # type: ignore[arg-type]
        )
        for a in (await s.scalars(q)).all():
            out[a.delivery_id].append(a)
    return out


@router.get(
    "/feed/subscriptions/{subscription_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="The delivery log of a subscription, newest first (?status=failed: the dead ones)",
)
async def list_deliveries(
    subscription_id: Id,
    rt: RuntimeDep,
    principal: Caller,
    status: FeedStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[DeliveryOut]:
    t = FeedDelivery
    q = (
        select(t)
        .where(t.subscription_id == subscription_id)  # type: ignore[arg-type]
        .order_by(t.created_at.desc(), t.id.desc())  # type: ignore[attr-defined]
        .limit(limit + 1)
    )
    if status is not None:
        q = q.where(t.status == status)  # type: ignore[arg-type]
    after = after_time_cursor(cursor, t.created_at, t.id, newest_first=True)
    if after is not None:
        q = q.where(after)
    async with rt.db.session() as s:
        await _subscription(s, principal, subscription_id)
        rows = list((await s.scalars(q)).all())
        page = rows[:limit]
        log = await _log_of(s, [d.id for d in page])
    return Page[DeliveryOut](
        items=[_delivery_out(d, log[d.id]) for d in page],
        next_cursor=(
            encode_cursor(page[-1].created_at.isoformat(), page[-1].id)
            if len(rows) > limit
            else None
        ),
    )


@router.post(
    "/feed/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    summary="Put a dead (failed) delivery back in the queue, with a fresh retry budget",
)
async def retry_delivery(delivery_id: Id, rt: RuntimeDep, principal: Caller) -> DeliveryOut:
    async with rt.db.session() as s:
        d = await s.get(FeedDelivery, delivery_id)
        if d is None:
            raise not_found("事件推送记录", "Feed delivery")
        try:
            await _subscription(s, principal, d.subscription_id)
        except Problem as e:
            raise not_found("事件推送记录", "Feed delivery") from e
        now = rt.clock.now()
        result = await s.execute(
            update(FeedDelivery)
            .where(FeedDelivery.id == delivery_id, FeedDelivery.status == "failed")  # type: ignore[arg-type]
            .values(
                status="queued",
                attempts=0,
                next_attempt_at=now,
                failed_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Problem(
                409,
                "invalid_transition",
                "只有推送失败的记录可以重试",
                "Only a failed delivery can be retried",
            )
        await s.commit()
        d = await s.get(FeedDelivery, delivery_id, populate_existing=True)
        assert d is not None
        log = await _log_of(s, [d.id])
    return _delivery_out(d, log[d.id])
