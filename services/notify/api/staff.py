"""The staff directory notify tells (agents, workers, officers), by the token's ``sub``.

An admin keeps it anywhere; a county officer for the staff of their county. Officers read the
entries of their region; phone numbers are masked for anyone but the member of staff
themselves, WeChat openids are never shown (only whether one is bound), and a webhook's path
(which may carry a key) only to an admin. Phones, openids, webhook URLs and secrets are stored
sealed (models.ENCRYPTED_COLUMNS).

A webhook URL must be https to a public host (``webhook_targets``: no requests to internal
addresses on notify's behalf). Registering one makes the webhook its own signing secret,
answered once; ``POST .../webhook-secret/rotate`` makes a new one, and for
``notify_webhook_secret_grace_hours`` deliveries are signed with both, so the receiver switches
without losing a message.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select, update

from services.notify.api.access import Caller
from services.notify.models import (
    STAFF_PHONE,
    STAFF_WEBHOOK_PREVIOUS_SECRET,
    STAFF_WEBHOOK_SECRET,
    STAFF_WEBHOOK_URL,
    StaffContact,
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
from shared.crypto import FieldCipher, mask_phone
from shared.db import utcnow
from shared.errors import LocalizedValueError, Problem, not_found, problem_responses
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(tags=["staff"], responses=problem_responses())

StaffRole = Literal["village_agent", "village_worker", "township_officer", "county_officer"]

# The length of the region each role answers for: a village's agent or worker may cover a
# whole township (9 digits) or one village (12).
REGION_DIGITS: dict[str, tuple[int, ...]] = {
    "village_agent": (9, 12),
    "village_worker": (9, 12),
    "township_officer": (9,),
    "county_officer": (6,),
}

Sub = Annotated[str, PathParam(min_length=1, max_length=80)]


class StaffContactIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=1, max_length=50, examples=["王芳"])
    role: StaffRole
    region_code: str = Field(
        pattern=r"^\d+$",
        examples=["330102001001"],
        description="village_agent / village_worker: 9 or 12 digits; township_officer: 9; "
        "county_officer: 6",
    )
    phone: str = Field(pattern=r"^1\d{10}$", examples=["13800138000"])
    webhook_url: str | None = Field(
        default=None,
        max_length=500,
        examples=["https://..."],
        description="https, to a public host (422 webhook_url_forbidden otherwise)",
    )
    active: bool = True
    version: int | None = Field(
        default=None, ge=1, description="The version you read; omit to create or overwrite"
    )

    @field_validator("region_code")
    @classmethod
    def _region_fits_role(cls, v: str, info: ValidationInfo) -> str:
        role = info.data.get("role")
        allowed = REGION_DIGITS.get(role) if role else None
        if allowed and len(v) not in allowed:
            digits = " 或 ".join(str(n) for n in allowed)
            raise LocalizedValueError(
                f"{role} 的辖区代码应为 {digits} 位",
                f"a {role}'s region code has {' or '.join(str(n) for n in allowed)} digits",
            )
        return v

    @field_validator("webhook_url")
    @classmethod
    def _a_url(cls, v: str | None) -> str | None:
        """A URL at all; whether notify may call it is the route's check (webhook_targets)."""
        if v is None or v == "":
            return None
        try:
            parts = urlsplit(v)
            host = parts.hostname
        except ValueError:
            host = None
        if not host or parts.scheme not in ("http", "https") or any(c.isspace() for c in v):
            raise LocalizedValueError("应为 https:// 开头的网址", "must be an https:// URL")
        return v


class StaffContactOut(BaseModel):
    sub: str
    name: str
    role: str
    region_code: str
    phone: str | None = Field(
        description="Masked (138****8000) for anyone but the member of staff themselves"
    )
    webhook_url: str | None = Field(description="Only its scheme and host for non-admins")
    webhook_secret: str | None = Field(
        default=None,
        description="The webhook's signing secret, only in the answer that made it (a new or "
        "changed URL): keep it, it is not shown again",
    )
    wechat_bound: bool
    active: bool
    updated_by: str
    updated_at: datetime
    version: int


class WebhookSecretOut(BaseModel):
    sub: str
    webhook_secret: str = Field(
        description="The new signing secret: keep it, it is not shown again"
    )
    previous_valid_until: datetime | None = Field(
        description="Until then deliveries are also signed with the previous secret"
    )


def _out(
    c: StaffContact,
    principal: Principal,
    cipher: FieldCipher,
    new_secret: str | None = None,
) -> StaffContactOut:
    admin = principal.role is Role.admin
    phone = unseal(cipher, c.phone_enc, STAFF_PHONE)
    if phone and principal.sub != c.sub:
        phone = mask_phone(phone)
    webhook = unseal(cipher, c.webhook_url_enc, STAFF_WEBHOOK_URL)
    if webhook and not admin:
        parts = urlsplit(webhook)
        webhook = f"{parts.scheme}://{parts.hostname}/…"
    return StaffContactOut(
        sub=c.sub,
        name=c.name,
        role=c.role,
        region_code=c.region_code,
        phone=phone,
        webhook_url=webhook,
        webhook_secret=new_secret,
        wechat_bound=bool(c.wechat_openid_enc),
        active=c.active,
        updated_by=c.updated_by,
        updated_at=c.updated_at,
        version=c.version,
    )


def _changed() -> Problem:
    return Problem(
        409,
        "version_conflict",
        "通讯录条目已被他人修改，请刷新后重试",
        "The directory entry was changed by someone else; reload",
    )


@router.put(
    "/staff-contacts/{sub}",
    response_model=StaffContactOut,
    summary="Add or change a member of staff notify tells (201 when added)",
    responses={201: {"description": "Added"}},
)
async def put_staff_contact(
    sub: Sub, body: StaffContactIn, response: Response, rt: RuntimeDep, principal: Caller
) -> StaffContactOut:
    principal.require_region(body.region_code)
    if body.webhook_url:
        await _check_webhook_url(body.webhook_url, rt.settings.notify_webhook_allow_private)
    cipher = rt.cipher
    async with rt.db.session() as s:
        current = await s.get(StaffContact, sub, populate_existing=True)
        new_secret: str | None = None
        if current is None:
            if body.version is not None:
                raise not_found("工作人员通讯录条目", "Staff directory entry")
            new_secret = secrets.token_urlsafe(32) if body.webhook_url else None
            current = StaffContact(
                sub=sub,
                name=body.name,
                role=body.role,
                region_code=body.region_code,
                phone_enc=seal(cipher, body.phone, STAFF_PHONE),
                webhook_url_enc=seal(cipher, body.webhook_url, STAFF_WEBHOOK_URL),
                webhook_secret_enc=seal(cipher, new_secret, STAFF_WEBHOOK_SECRET),
                active=body.active,
                updated_by=principal.sub,
            )
            s.add(current)
            await s.flush()  # a racing insert fails here: the primary key (conflict, 409)
            response.status_code = 201
        else:
            principal.require_region(current.region_code)  # nobody takes over another's staff
            seen = current.version if body.version is None else body.version
            values = {
                "name": body.name,
                "role": body.role,
                "region_code": body.region_code,
                "phone_enc": seal(cipher, body.phone, STAFF_PHONE),
                "webhook_url_enc": seal(cipher, body.webhook_url, STAFF_WEBHOOK_URL),
                "active": body.active,
                "updated_by": principal.sub,
                "updated_at": utcnow(),
                "version": StaffContact.version + 1,
            }
            before = unseal(cipher, current.webhook_url_enc, STAFF_WEBHOOK_URL)
            if body.webhook_url != before or (body.webhook_url and not current.webhook_secret_enc):
                # Another receiver (or none): its own secret, and no grace for the old one's.
                new_secret = secrets.token_urlsafe(32) if body.webhook_url else None
                values.update(
                    webhook_secret_enc=seal(cipher, new_secret, STAFF_WEBHOOK_SECRET),
                    webhook_previous_secret_enc=None,
                    webhook_previous_secret_until=None,
                )
            result = await s.execute(
                update(StaffContact)
                .where(
                    StaffContact.sub == sub,  # type: ignore[arg-type]
                    StaffContact.version == seen,  # type: ignore[arg-type]
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise _changed()
            current = await s.get(StaffContact, sub, populate_existing=True)
            assert current is not None
        await s.commit()
        return _out(current, principal, cipher, new_secret)


async def _check_webhook_url(url: str, allow_private: bool) -> None:
    try:
        await checked_addresses(url, allow_private=allow_private)
    except TargetRefused as e:
        raise forbidden(e) from e
    except TargetUnresolvable as e:
        raise unresolvable() from e


@router.post(
    "/staff-contacts/{sub}/webhook-secret/rotate",
    response_model=WebhookSecretOut,
    summary="Give a member of staff's webhook a new signing secret (the old one signs too "
    "for notify_webhook_secret_grace_hours)",
)
async def rotate_webhook_secret(sub: Sub, rt: RuntimeDep, principal: Caller) -> WebhookSecretOut:
    cipher = rt.cipher
    async with rt.db.session() as s:
        current = await s.get(StaffContact, sub, populate_existing=True)
        if current is None:
            raise not_found("工作人员通讯录条目", "Staff directory entry")
        principal.require_region(current.region_code)
        old = unseal(cipher, current.webhook_secret_enc, STAFF_WEBHOOK_SECRET)
        if not current.webhook_url_enc or old is None:
            raise Problem(
                409,
                "no_webhook",
                "该工作人员未登记 Webhook，无签名密钥可轮换",
                "No webhook is registered for this member of staff: no secret to rotate",
            )
        new_secret = secrets.token_urlsafe(32)
        grace = timedelta(hours=rt.settings.notify_webhook_secret_grace_hours)
        until = rt.clock.now() + grace if grace else None
        result = await s.execute(
            update(StaffContact)
            # Still the secret read: of two rotations at once, one wins and the other is told.
            .where(
                StaffContact.sub == sub,  # type: ignore[arg-type]
                StaffContact.webhook_secret_enc == current.webhook_secret_enc,  # type: ignore[arg-type]
            )
            .values(
                webhook_secret_enc=seal(cipher, new_secret, STAFF_WEBHOOK_SECRET),
                webhook_previous_secret_enc=seal(cipher, old, STAFF_WEBHOOK_PREVIOUS_SECRET),
                webhook_previous_secret_until=until,
                updated_by=principal.sub,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _changed()
        await s.commit()
    return WebhookSecretOut(sub=sub, webhook_secret=new_secret, previous_valid_until=until)


@router.get(
    "/staff-contacts",
    response_model=Page[StaffContactOut],
    summary="The staff directory of the caller's region (or ?region= within it), by sub",
)
async def list_staff_contacts(
    rt: RuntimeDep,
    principal: Caller,
    role: StaffRole | None = None,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[StaffContactOut]:
    scope = principal.region_scope()
    if region is not None:
        if scope:
            principal.require_region(region)
        scope = region
    q = select(StaffContact).order_by(StaffContact.sub).limit(limit + 1)  # type: ignore[arg-type]
    if scope:
        q = q.where(StaffContact.region_code.startswith(scope, autoescape=True))  # type: ignore[attr-defined]
    if role is not None:
        q = q.where(StaffContact.role == role)  # type: ignore[arg-type]
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(StaffContact.sub > after[0])  # type: ignore[arg-type]
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
    page = rows[:limit]
    return Page[StaffContactOut](
        items=[_out(c, principal, rt.cipher) for c in page],
        next_cursor=encode_cursor(page[-1].sub) if len(rows) > limit else None,
    )


@router.get(
    "/staff-contacts/{sub}",
    response_model=StaffContactOut,
    summary="One member of staff in the directory",
)
async def get_staff_contact(sub: Sub, rt: RuntimeDep, principal: Caller) -> StaffContactOut:
    async with rt.db.session() as s:
        c = await s.get(StaffContact, sub)
    if c is None:
        raise not_found("工作人员通讯录条目", "Staff directory entry")
    principal.require_region(c.region_code)
    return _out(c, principal, rt.cipher)
