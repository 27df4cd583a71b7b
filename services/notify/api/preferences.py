"""What a person wants to be told, and how: the notification categories, their own channel
and quiet-hour choices per category, and their WeChat binding."""

from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from services.notify import preferences
from services.notify.api.access import Caller
from services.notify.domain.routing import Category
from services.notify.events import routing
from services.notify.recipients import recipient_of
from shared.auth import Principal, Role
from shared.errors import Problem, not_found, problem_responses
from shared.service import RuntimeDep

router = APIRouter(tags=["preferences"], responses=problem_responses())


HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class CategoryOut(BaseModel):
    code: str = Field(examples=["appointment"])
    name: str = Field(examples=["预约"])
    critical: bool = Field(description="Ignores quiet hours: the message cannot wait")


class PreferenceOut(BaseModel):
    category: str
    name: str
    critical: bool
    channels_on: list[str] = Field(description="The channels this category may use for you")
    channels_off: list[str]
    quiet_start: str = Field(examples=["21:00"], description="Asia/Shanghai")
    quiet_end: str = Field(examples=["08:00"])
    quiet_default: bool = Field(description="The county's quiet hours (you chose none)")
    default: bool = Field(description="No choice made: every channel, the county's hours")
    version: int = Field(description="Send it back to change this; 0: never changed")


class PreferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels_off: list[str] = Field(
        default_factory=list,
        max_length=10,
        examples=[["wechat"]],
        description='Any of "sms", "wechat", "webhook" (the app inbox stays on)',
    )
    quiet_start: str | None = Field(
        default=None,
        pattern=HHMM,
        examples=["22:00"],
        description="Asia/Shanghai; both null: the county's hours; equal to the end: none",
    )
    quiet_end: str | None = Field(default=None, pattern=HHMM, examples=["07:00"])
    version: int | None = Field(default=None, ge=0, description="The version you read")


class WechatIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    openid: str = Field(
        min_length=6,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        examples=["oX1a2B3c4D5e6F7g8H9i0JkLmNoP"],
    )


class WechatOut(BaseModel):
    recipient: str
    wechat_bound: bool


def _hhmm(t: time) -> str:
    return f"{t:%H:%M}"


def _out(e: preferences.Effective) -> PreferenceOut:
    return PreferenceOut(
        category=e.category.code,
        name=e.category.name,
        critical=e.category.critical,
        channels_on=list(e.channels_on),
        channels_off=list(e.channels_off),
        quiet_start=_hhmm(e.quiet_start),
        quiet_end=_hhmm(e.quiet_end),
        quiet_default=e.quiet_default,
        default=e.default,
        version=e.version,
    )


def _recipient(principal: Principal) -> str:
    if principal.role is Role.resident and not principal.person_id:
        raise Problem(403, "forbidden", "令牌缺少 person_id", "The token has no person_id")
    return recipient_of(principal)


def _category(code: str) -> Category:
    category = routing().categories.get(code)
    if category is None:
        raise not_found("通知类别", "Notification category")
    return category


@router.get(
    "/notification-categories",
    response_model=list[CategoryOut],
    summary="What one can set preferences for (routing.toml's categories)",
)
async def list_categories(principal: Caller) -> list[CategoryOut]:
    return [
        CategoryOut(code=c.code, name=c.name, critical=c.critical)
        for c in routing().categories.values()
    ]


@router.get(
    "/preferences",
    response_model=list[PreferenceOut],
    summary="The caller's settings for every category (defaults where they chose none)",
)
async def get_preferences(rt: RuntimeDep, principal: Caller) -> list[PreferenceOut]:
    recipient = _recipient(principal)
    async with rt.db.session() as s:
        rows = await preferences.load_all(s, recipient)
    return [
        _out(preferences.effective(c, rows.get(c.code), rt.settings))
        for c in routing().categories.values()
    ]


@router.put(
    "/preferences/{category}",
    response_model=PreferenceOut,
    summary="Set the caller's channels and quiet hours for one category",
)
async def put_preference(
    category: Annotated[str, PathParam(max_length=40)],
    body: PreferenceIn,
    rt: RuntimeDep,
    principal: Caller,
) -> PreferenceOut:
    recipient = _recipient(principal)
    cat = _category(category)
    channels_off = preferences.check_channels_off(body.channels_off)
    if (body.quiet_start is None) != (body.quiet_end is None):
        field = "quiet_end" if body.quiet_end is None else "quiet_start"
        raise Problem(
            422,
            "validation_failed",
            "免打扰时段须同时给出开始和结束时间（或都不填，使用默认时段）",
            "Give both ends of the quiet hours (or neither, for the defaults)",
            errors=[{"field": field, "message": "必填字段缺失"}],
        )
    start = time.fromisoformat(body.quiet_start) if body.quiet_start else None
    end = time.fromisoformat(body.quiet_end) if body.quiet_end else None
    async with rt.db.session() as s:
        row = await preferences.save(
            s,
            recipient,
            cat.code,
            channels_off=channels_off,
            quiet_start=start,
            quiet_end=end,
            version=body.version,
        )
        await s.commit()
        return _out(preferences.effective(cat, row, rt.settings))


@router.put(
    "/me/wechat",
    response_model=WechatOut,
    summary="Bind the caller's WeChat (official account openid) for WeChat messages",
)
async def bind_wechat(body: WechatIn, rt: RuntimeDep, principal: Caller) -> WechatOut:
    recipient = _recipient(principal)
    async with rt.db.session() as s:
        await preferences.set_wechat(s, rt.cipher, principal, body.openid)
        await s.commit()
    return WechatOut(recipient=recipient, wechat_bound=True)


@router.delete(
    "/me/wechat",
    response_model=WechatOut,
    summary="Unbind the caller's WeChat: no more WeChat messages",
)
async def unbind_wechat(rt: RuntimeDep, principal: Caller) -> WechatOut:
    recipient = _recipient(principal)
    async with rt.db.session() as s:
        await preferences.set_wechat(s, rt.cipher, principal, None)
        await s.commit()
    return WechatOut(recipient=recipient, wechat_bound=False)
