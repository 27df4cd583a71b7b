"""Message templates (消息模板): read by county officers, edited by an admin, each save a new
version. Thin routes over ``services.notify.templates``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from services.notify import templates
from services.notify.api.access import Caller
from services.notify.domain.routing import FILTERS, render
from services.notify.domain.templates import check_template, variables_used
from services.notify.models import Template
from shared.errors import not_found, problem_responses
from shared.service import RuntimeDep

router = APIRouter(prefix="/templates", tags=["templates"], responses=problem_responses())

Code = Annotated[
    str, PathParam(max_length=60, description="Template code", examples=["payment_disbursed"])
]

WECHAT_DESCRIPTION = (
    'WeChat template message, or null: {"template_id": "<the county\'s WeChat template id, '
    'or empty>", "fields": {"first": "...", "keyword1": "...", "remark": "..."}}'
)


class TemplateOut(BaseModel):
    code: str = Field(examples=["payment_disbursed"])
    version: int = Field(description="Versions count from 1 (the seed); the newest is sent")
    title: str = Field(description="The inbox title (at most 100 characters)")
    app_body: str = Field(description="The in-app message (站内信)")
    sms_body: str = Field(description="The text message; starts with 【零距】")
    wechat: dict[str, Any] | None = Field(description=WECHAT_DESCRIPTION)
    note: str | None = Field(description="For the editors")
    created_by: str = Field(description='Who saved it: the admin\'s sub, or "seed"')
    created_at: datetime


class TemplateSummary(BaseModel):
    code: str
    events: list[str] = Field(description="The event types routed to it (none for a digest)")
    variables: list[str] = Field(description="The variables its texts may use")
    current: TemplateOut = Field(description="The version sent now (the newest)")


class TemplateDetail(TemplateSummary):
    filters: list[str] = Field(description="The filters a variable may use: {name|filter}")
    versions: list[TemplateOut] = Field(description="Every version, newest first")


class TemplateIn(BaseModel):
    version: int = Field(ge=1, description="The version edited: 409 version_conflict if newer")
    title: str = Field(max_length=4000, description="At most 100 characters")
    app_body: str = Field(max_length=4000, description="At most 2000 characters")
    sms_body: str = Field(
        max_length=4000, description="At most 500 characters, starting with 【零距】"
    )
    wechat: dict[str, Any] | None = Field(default=None, description=WECHAT_DESCRIPTION)
    note: str | None = Field(default=None, max_length=4000, description="At most 500 characters")


class TemplateDraft(BaseModel):
    title: str = Field(max_length=4000)
    app_body: str = Field(max_length=4000)
    sms_body: str = Field(max_length=4000)
    wechat: dict[str, Any] | None = Field(default=None, description=WECHAT_DESCRIPTION)


class PreviewIn(BaseModel):
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Sample values by variable name; a missing one renders empty",
        examples=[{"program_name": "育儿补贴", "amount_fen": 36000}],
    )
    draft: TemplateDraft | None = Field(
        default=None, description="Texts to try before saving; the current version if absent"
    )


class FieldError(BaseModel):
    field: str = Field(examples=["sms_body"])
    message: str = Field(examples=["短信正文须以签名“【零距】”开头"])


class PreviewOut(BaseModel):
    code: str
    version: int | None = Field(description="The version rendered; null for a draft")
    title: str
    app_body: str
    sms_body: str
    wechat: dict[str, Any] | None = Field(
        description='{"template_id", "fields": {name: rendered text}}, or null'
    )
    missing: list[str] = Field(description="Variables the texts use that no value was given for")
    errors: list[FieldError] = Field(
        description="What saving the draft would refuse (always empty for a saved version)"
    )


def _out(t: Template) -> TemplateOut:
    return TemplateOut(
        code=t.code,
        version=t.version,
        title=t.title,
        app_body=t.app_body,
        sms_body=t.sms_body,
        wechat=t.wechat,
        note=t.note,
        created_by=t.created_by,
        created_at=t.created_at,
    )


def _known(code: str) -> tuple[list[str], set[str]]:
    """The events and variables of a code; 404 for a code notify does not use."""
    try:
        return templates.template_events()[code], templates.variables_for(code)
    except KeyError:
        raise not_found("消息模板", "Message template") from None


@router.get(
    "",
    response_model=list[TemplateSummary],
    summary="Every message template: its current version, its events and variables",
)
async def list_templates(rt: RuntimeDep, principal: Caller) -> list[TemplateSummary]:
    async with rt.db.session() as s:
        current = await templates.current_all(s)
        await s.commit()  # the seeded versions 1
    return [
        TemplateSummary(
            code=code,
            events=templates.template_events()[code],
            variables=sorted(templates.variables_for(code)),
            current=_out(t),
        )
        for code, t in current.items()
    ]


@router.get(
    "/{code}",
    response_model=TemplateDetail,
    summary="One message template: its current version and every version, newest first",
)
async def get_template(rt: RuntimeDep, principal: Caller, code: Code) -> TemplateDetail:
    events, variables = _known(code)
    async with rt.db.session() as s:
        rows = await templates.versions(s, code)
        await s.commit()
    return TemplateDetail(
        code=code,
        events=events,
        variables=sorted(variables),
        filters=list(FILTERS),
        current=_out(rows[0]),
        versions=[_out(t) for t in rows],
    )


@router.put(
    "/{code}",
    response_model=TemplateOut,
    summary="Save a new version of a message template (admin); the newest is sent",
)
async def put_template(
    rt: RuntimeDep, principal: Caller, code: Code, body: TemplateIn
) -> TemplateOut:
    _known(code)
    fields = body.model_dump(exclude={"version"})
    async with rt.db.session() as s:
        saved = await templates.save(s, code, fields, principal.sub, version=body.version)
        await s.commit()
    return _out(saved)


@router.post(
    "/{code}/preview",
    response_model=PreviewOut,
    summary="Render the current version, or a draft, with sample values (nothing is sent)",
)
async def preview_template(
    rt: RuntimeDep, principal: Caller, code: Code, body: PreviewIn
) -> PreviewOut:
    _, variables = _known(code)
    version: int | None = None
    errors: list[dict[str, str]] = []
    if body.draft is None:
        async with rt.db.session() as s:
            t = await templates.current(s, code)
            await s.commit()
        fields: dict[str, Any] = {
            "title": t.title,
            "app_body": t.app_body,
            "sms_body": t.sms_body,
            "wechat": t.wechat,
        }
        version = t.version
    else:
        fields = body.draft.model_dump()
        errors = check_template(fields, variables)
    values = body.values
    wechat = fields.get("wechat")
    rendered_wechat: dict[str, Any] | None = None
    if isinstance(wechat, dict):
        table = wechat.get("fields")
        rendered_wechat = {
            "template_id": wechat.get("template_id"),
            "fields": {
                str(k): render(str(v), values)
                for k, v in (table.items() if isinstance(table, dict) else [])
            },
        }
    return PreviewOut(
        code=code,
        version=version,
        title=render(fields["title"], values),
        app_body=render(fields["app_body"], values),
        sms_body=render(fields["sms_body"], values),
        wechat=rendered_wechat,
        missing=sorted(variables_used(fields) - set(values)),
        errors=[FieldError(**e) for e in errors],
    )
