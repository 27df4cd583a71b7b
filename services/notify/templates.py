"""Message templates in the database: versioned, seeded from templates.toml, edited by an admin.

The newest version of a code is the one sent. A code with no version yet gets version 1 from
the seed file the first time it is asked for (two replicas asking at once both get the same
row: INSERT ... ON CONFLICT DO NOTHING). A save is a new version, checked first against the
variables the code's events provide; of two saves of the same version one wins, the other is
told (409 version_conflict).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.domain.templates import check_template, parse_seed
from services.notify.models import Template
from services.notify.views import DIGEST_VARIABLES, variables_of
from shared.db import dialect_insert, utcnow
from shared.errors import Problem

SEED_FILE = Path(__file__).with_name("templates.toml")
DIGEST_PREFIX = "digest_"
SEEDED_BY = "seed"

_TABLE = Template.__table__  # type: ignore[attr-defined]


def digest_code(digest: str) -> str:
    """The template code of a route's digest: ``due_visits`` -> ``digest_due_visits``."""
    return f"{DIGEST_PREFIX}{digest}"


@lru_cache(maxsize=1)
def template_events() -> dict[str, list[str]]:
    """Every template code notify uses, with the event types routed to it (none for a
    digest), in routing order, digests last."""
    # Imported here: events.py imports this module (routing is read once, there).
    from services.notify.events import routing

    r = routing()
    out = {code: list(events) for code, events in r.templates().items()}
    for routes in r.routes.values():
        for route in routes:
            if route.digest:
                out.setdefault(digest_code(route.digest), [])
    return out


def variables_for(code: str) -> set[str]:
    """The variables a template of ``code`` may use; KeyError for a code notify does not use."""
    if code.startswith(DIGEST_PREFIX):
        if code not in template_events():
            raise KeyError(code)
        return set(DIGEST_VARIABLES) | {"recipient_name"}
    return variables_of(template_events()[code])


@lru_cache(maxsize=1)
def seeds() -> dict[str, dict[str, Any]]:
    """templates.toml, read and checked once (ValueError naming the place if it is wrong)."""
    raw = tomllib.loads(SEED_FILE.read_text("utf-8"))
    return parse_seed(raw, {code: variables_for(code) for code in template_events()})


def _insert(session: AsyncSession) -> Any:
    return dialect_insert(session, _TABLE)


async def _newest(session: AsyncSession, code: str) -> Template | None:
    q = (
        select(Template)
        .where(Template.code == code)  # type: ignore[arg-type]
        .order_by(Template.version.desc())  # type: ignore[attr-defined]
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(q)).first()


async def _seed(session: AsyncSession, code: str) -> None:
    seed = seeds().get(code)
    if seed is None:
        raise KeyError(code)
    await session.execute(
        _insert(session)
        .values(code=code, version=1, created_by=SEEDED_BY, created_at=utcnow(), **seed)
        .on_conflict_do_nothing()
    )


async def current(session: AsyncSession, code: str) -> Template:
    """The version of ``code`` to send: the newest; version 1 from the seed file (inserted
    here, in the caller's transaction) when there is none yet. KeyError for a code neither in
    the database nor in the seed file."""
    row = await _newest(session, code)
    if row is not None:
        return row
    await _seed(session, code)
    row = await _newest(session, code)
    if row is None:  # pragma: no cover - inserted or found just above
        raise KeyError(code)
    return row


async def current_all(session: AsyncSession) -> dict[str, Template]:
    """The current version of every code notify uses (seeding the missing ones), in order."""
    newest = (
        select(Template.code, func.max(Template.version).label("version"))
        .group_by(Template.code)  # type: ignore[arg-type]
        .subquery()
    )
    q = select(Template).join(
        newest,
        (Template.code == newest.c.code) & (Template.version == newest.c.version),  # type: ignore[arg-type]
    )
    found = {t.code: t for t in (await session.scalars(q)).all()}
    out: dict[str, Template] = {}
    for code in template_events():
        out[code] = found[code] if code in found else await current(session, code)
    return out


async def versions(session: AsyncSession, code: str) -> list[Template]:
    """Every version of ``code``, newest first (the seed's version 1 inserted if none)."""
    await current(session, code)
    q = (
        select(Template)
        .where(Template.code == code)  # type: ignore[arg-type]
        .order_by(Template.version.desc())  # type: ignore[attr-defined]
    )
    return list((await session.scalars(q)).all())


def validation_failed(errors: list[dict[str, str]]) -> Problem:
    detail = "；".join(f"{e['field']}：{e['message']}" for e in errors)
    return Problem(
        422,
        "validation_failed",
        f"模板有误：{detail}",
        f"The template is not valid ({len(errors)} error(s), see errors)",
        errors=errors,
    )


def version_conflict(code: str) -> Problem:
    return Problem(
        409,
        "version_conflict",
        f"模板 {code} 已被他人修改，请刷新后在最新版本上修改",
        f"Template {code} was changed by someone else; reload and edit the newest version",
    )


async def save(
    session: AsyncSession,
    code: str,
    fields: Mapping[str, Any],
    principal_sub: str,
    *,
    version: int | None = None,
) -> Template:
    """Save ``fields`` (title, app_body, sms_body, wechat, note) as the next version of
    ``code``, in the caller's transaction.

    ``version``: the version the editor started from; if it is not the newest any more, 409
    version_conflict (as for two saves racing from the same version: one wins). 422
    validation_failed with per-field errors if the template is wrong; KeyError for a code
    notify does not use.
    """
    allowed = variables_for(code)
    errors = check_template(fields, allowed)
    if errors:
        raise validation_failed(errors)
    newest = await current(session, code)
    if version is not None and version != newest.version:
        raise version_conflict(code)
    values = {
        "title": fields["title"],
        "app_body": fields["app_body"],
        "sms_body": fields["sms_body"],
        "wechat": fields.get("wechat"),
        "note": fields.get("note"),
    }
    result = await session.execute(
        _insert(session)
        .values(
            code=code,
            version=newest.version + 1,
            created_by=principal_sub,
            created_at=utcnow(),
            **values,
        )
        .on_conflict_do_nothing()
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise version_conflict(code)
    saved = await session.get(Template, (code, newest.version + 1), populate_existing=True)
    if saved is None:  # pragma: no cover - inserted just above, in this transaction
        raise version_conflict(code)
    return saved
