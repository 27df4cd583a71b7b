"""A recipient's preferences and WeChat binding, read and written (the rules themselves are
pure: ``services.notify.domain.preferences``).

A category without a ``preferences`` row has the defaults: every channel on, the county's
quiet hours (settings). Rows are versioned; a write naming a version it did not read is
refused (409 ``version_conflict``), and no row at all counts as version 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.domain.preferences import ALWAYS_ON, quiet_hours
from services.notify.domain.routing import CHANNELS, Category
from services.notify.models import (
    CONTACT_OPENID,
    STAFF_OPENID,
    Contact,
    Preference,
    StaffContact,
)
from services.notify.sealed import seal
from shared.auth import Principal, Role
from shared.config import Settings
from shared.crypto import FieldCipher
from shared.db import utcnow
from shared.errors import Problem, not_found


async def load(session: AsyncSession, recipient: str, category: str) -> Preference | None:
    """The recipient's row for ``category``; None means the defaults."""
    return await session.get(Preference, (recipient, category))


async def load_all(session: AsyncSession, recipient: str) -> dict[str, Preference]:
    """Every row of the recipient, by category."""
    rows = await session.scalars(select(Preference).where(Preference.recipient == recipient))  # type: ignore[arg-type]
    return {p.category: p for p in rows}


@dataclass(frozen=True)
class Effective:
    """What applies to one recipient and category, row or not."""

    category: Category
    channels_on: tuple[str, ...]
    channels_off: tuple[str, ...]
    quiet_start: time
    quiet_end: time
    quiet_default: bool  # the county's quiet hours (the recipient chose none)
    default: bool  # no choice at all: every channel, the county's hours
    version: int  # 0: no row yet


def effective(category: Category, pref: Preference | None, settings: Settings) -> Effective:
    off = tuple(c for c in CHANNELS if pref is not None and c in pref.channels_off)
    start, end = quiet_hours(
        pref.quiet_start if pref else None,
        pref.quiet_end if pref else None,
        settings.notify_quiet_start,
        settings.notify_quiet_end,
    )
    quiet_default = pref is None or pref.quiet_start is None or pref.quiet_end is None
    return Effective(
        category=category,
        channels_on=tuple(c for c in CHANNELS if c not in off),
        channels_off=off,
        quiet_start=start,
        quiet_end=end,
        quiet_default=quiet_default,
        default=quiet_default and not off,
        version=pref.version if pref else 0,
    )


def _changed() -> Problem:
    return Problem(
        409,
        "version_conflict",
        "通知设置已被同时修改，请刷新后重试",
        "The preferences were changed at the same time; reload",
    )


def check_channels_off(channels_off: list[str]) -> list[str]:
    """The channels as given, each once, or a 422 naming ``channels_off``: an unknown channel,
    or the inbox (which cannot be turned off)."""
    unknown = [c for c in channels_off if c not in CHANNELS]
    if unknown:
        raise Problem(
            422,
            "validation_failed",
            f"未知的通知渠道：{', '.join(unknown)}（可选 {', '.join(CHANNELS[1:])}）",
            f"Unknown channel(s): {', '.join(unknown)} (one of {', '.join(CHANNELS[1:])})",
            errors=[{"field": "channels_off", "message": "取值不在允许范围内"}],
        )
    if ALWAYS_ON in channels_off:
        raise Problem(
            422,
            "validation_failed",
            "站内信不能关闭：它是告知您的记录",
            "The app inbox cannot be turned off: it is the record of what you were told",
            errors=[{"field": "channels_off", "message": "站内信不能关闭"}],
        )
    return list(dict.fromkeys(channels_off))


async def save(
    session: AsyncSession,
    recipient: str,
    category: str,
    *,
    channels_off: list[str],
    quiet_start: time | None,
    quiet_end: time | None,
    version: int | None,
) -> Preference:
    """Create or replace the recipient's choices for ``category``; ``version`` (when given)
    must be the one read (0: there was no row). The caller commits."""
    current = await session.get(Preference, (recipient, category), populate_existing=True)
    if current is None:
        if version not in (None, 0):
            raise _changed()
        row = Preference(
            recipient=recipient,
            category=category,
            channels_off=channels_off,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
        )
        session.add(row)
        await session.flush()  # a racing first write fails here (primary key: 409)
        return row
    seen = current.version if version is None else version
    result = await session.execute(
        update(Preference)
        .where(
            Preference.recipient == recipient,  # type: ignore[arg-type]
            Preference.category == category,  # type: ignore[arg-type]
            Preference.version == seen,  # type: ignore[arg-type]
        )
        .values(
            channels_off=channels_off,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
            updated_at=utcnow(),
            version=Preference.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _changed()
    row = await session.get(Preference, (recipient, category), populate_existing=True)
    assert row is not None
    return row


async def set_wechat(
    session: AsyncSession, cipher: FieldCipher, principal: Principal, openid: str | None
) -> None:
    """Bind (or with None unbind) the caller's WeChat openid: a resident's on their contact, a
    member of staff's on their directory entry, sealed. 404 when notify has no entry for them
    yet. The staff entry's version is not raised: it guards what the admin keeps, not this."""
    if principal.role is Role.resident:
        if not principal.person_id:
            raise Problem(403, "forbidden", "令牌缺少 person_id", "The token has no person_id")
        model, key, col = Contact, principal.person_id, Contact.person_id
        context = CONTACT_OPENID
        missing = not_found("居民联系方式", "Contact")
    else:
        model, key, col = StaffContact, principal.sub, StaffContact.sub  # type: ignore[assignment]
        context = STAFF_OPENID
        missing = not_found("工作人员通讯录条目", "Staff directory entry")
    result = await session.execute(
        update(model)
        .where(col == key)  # type: ignore[arg-type]
        .values(wechat_openid_enc=seal(cipher, openid, context), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise missing
