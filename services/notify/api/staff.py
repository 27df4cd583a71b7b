"""The staff directory notify tells (agents, workers, officers), by the token's ``sub``.

An admin keeps it anywhere; a county officer for the staff of their county. Officers read the
entries of their region; phone numbers are masked for anyone but an admin, WeChat openids
are never shown (only whether one is bound), and a webhook's path (which may carry a key)
only to an admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select, update

from services.notify.models import StaffContact
from shared.auth import Principal, Role, require_roles
from shared.crypto import mask_phone
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

Keeper = Annotated[Principal, Depends(require_roles(Role.admin, Role.county_officer))]
Reader = Annotated[
    Principal,
    Depends(require_roles(Role.admin, Role.county_officer, Role.township_officer)),
]
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
    webhook_url: str | None = Field(default=None, max_length=500, examples=["https://..."])
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
    def _https_only(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in v):
            raise LocalizedValueError("应为 https:// 开头的网址", "must be an https:// URL")
        return v


class StaffContactOut(BaseModel):
    sub: str
    name: str
    role: str
    region_code: str
    phone: str | None = Field(description="Masked (138****8000) for anyone but an admin")
    webhook_url: str | None = Field(description="Only its scheme and host for non-admins")
    wechat_bound: bool
    active: bool
    updated_by: str
    updated_at: datetime
    version: int


def _out(c: StaffContact, principal: Principal) -> StaffContactOut:
    admin = principal.role is Role.admin
    phone = c.phone if admin or not c.phone else mask_phone(c.phone)
    webhook = c.webhook_url
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
        wechat_bound=bool(c.wechat_openid),
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
    sub: Sub, body: StaffContactIn, response: Response, rt: RuntimeDep, principal: Keeper
) -> StaffContactOut:
    principal.require_region(body.region_code)
    async with rt.db.session() as s:
        current = await s.get(StaffContact, sub, populate_existing=True)
        if current is None:
            if body.version is not None:
                raise not_found("工作人员通讯录条目", "Staff directory entry")
            current = StaffContact(
                sub=sub,
                name=body.name,
                role=body.role,
                region_code=body.region_code,
                phone=body.phone,
                webhook_url=body.webhook_url,
                active=body.active,
                updated_by=principal.sub,
            )
            s.add(current)
            await s.flush()  # a racing insert fails here: the primary key (conflict, 409)
            response.status_code = 201
        else:
            principal.require_region(current.region_code)  # nobody takes over another's staff
            seen = current.version if body.version is None else body.version
            result = await s.execute(
                update(StaffContact)
                .where(
                    StaffContact.sub == sub,  # type: ignore[arg-type]
                    StaffContact.version == seen,  # type: ignore[arg-type]
                )
                .values(
                    name=body.name,
                    role=body.role,
                    region_code=body.region_code,
                    phone=body.phone,
                    webhook_url=body.webhook_url,
                    active=body.active,
                    updated_by=principal.sub,
                    updated_at=utcnow(),
                    version=StaffContact.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise _changed()
            current = await s.get(StaffContact, sub, populate_existing=True)
            assert current is not None
        await s.commit()
        return _out(current, principal)


@router.get(
    "/staff-contacts",
    response_model=Page[StaffContactOut],
    summary="The staff directory of the caller's region (or ?region= within it), by sub",
)
async def list_staff_contacts(
    rt: RuntimeDep,
    principal: Reader,
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
        items=[_out(c, principal) for c in page],
        next_cursor=encode_cursor(page[-1].sub) if len(rows) > limit else None,
    )


@router.get(
    "/staff-contacts/{sub}",
    response_model=StaffContactOut,
    summary="One member of staff in the directory",
)
async def get_staff_contact(sub: Sub, rt: RuntimeDep, principal: Reader) -> StaffContactOut:
    async with rt.db.session() as s:
        c = await s.get(StaffContact, sub)
    if c is None:
        raise not_found("工作人员通讯录条目", "Staff directory entry")
    principal.require_region(c.region_code)
    return _out(c, principal)
