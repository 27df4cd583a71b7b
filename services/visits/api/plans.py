"""Follow-up plans as data (plans.toml): what each plan's steps are, who does them, and when;
and the findings form of each step's service (findings.toml): what a visit records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from services.visits.api.access import Caller
from services.visits.domain.findings import Form, FormField
from services.visits.domain.plans import Offset, Plan, Step
from services.visits.events import plans
from services.visits.forms import forms
from shared.errors import not_found, problem_responses

router = APIRouter(tags=["plans"], responses=problem_responses())


class TriggerOut(BaseModel):
    event: str = Field(examples=["lingju.registry.child.born"])
    anchor: str = Field(description="Date field of the event the offsets count from")
    procedures: list[str] = Field(description="Procedure codes (procedure.recorded only)")
    sex: str | None = Field(description="Age plans only")
    ages: list[int] | None = Field(description="Age plans only: [first, last], inclusive")


class StepOut(BaseModel):
    code: str
    name: str
    service: str
    tier: str = Field(description="village / township / district: who is assigned")
    due: str = Field(examples=["3d"], description="First day due, from the anchor")
    overdue: str = Field(examples=["10d"], description="First day overdue, from the anchor")
    expiry: str = Field(examples=["14d"], description="First day missed, from the anchor")
    repeat: str | None = Field(description="Runs again every this long, until the plan ends")
    note: str


class PlanOut(BaseModel):
    code: str
    name: str
    subject: str = Field(description="Whom the tasks are for: mother / child / wife / person")
    source: str
    note: str
    trigger: TriggerOut
    steps: list[StepOut]


def _offset(o: Offset | None) -> str | None:
    return None if o is None else str(o)


def _step_out(s: Step) -> StepOut:
    return StepOut(
        code=s.code,
        name=s.name,
        service=s.service,
        tier=s.tier,
        due=str(s.due),
        overdue=str(s.overdue),
        expiry=str(s.expiry),
        repeat=_offset(s.repeat),
        note=s.note,
    )


def _plan_out(p: Plan) -> PlanOut:
    t = p.trigger
    return PlanOut(
        code=p.code,
        name=p.name,
        subject=p.subject,
        source=p.source,
        note=p.note,
        trigger=TriggerOut(
            event=t.event,
            anchor=t.anchor,
            procedures=list(t.procedures),
            sex=t.sex,
            ages=list(t.ages) if t.ages else None,
        ),
        steps=[_step_out(s) for s in p.steps],
    )


@router.get(
    "/visit-plans",
    response_model=list[PlanOut],
    summary="Follow-up plans: trigger, steps, tier and due / overdue / expiry offsets",
)
async def list_plans(principal: Caller) -> list[PlanOut]:
    return [_plan_out(p) for p in plans().values()]


@router.get("/visit-plans/{code}", response_model=PlanOut, summary="One follow-up plan")
async def get_plan(principal: Caller, code: Annotated[str, PathParam(max_length=64)]) -> PlanOut:
    plan = plans().get(code)
    if plan is None:
        raise not_found("随访计划", "Visit plan")
    return _plan_out(plan)


# -- findings forms ---------------------------------------------------------------------------


class OptionOut(BaseModel):
    code: str = Field(description="What the phone sends as the field's value", examples=["normal"])
    name: str = Field(description="Label shown to the worker (zh)", examples=["未见异常"])


class FormFieldOut(BaseModel):
    code: str = Field(description="Key under findings", examples=["temperature"])
    name: str = Field(description="Label shown to the worker (zh)", examples=["体温"])
    type: str = Field(
        description="text / number / integer / choice / boolean / date (ISO YYYY-MM-DD). "
        "number and integer never accept true / false; integer refuses 3.5",
        examples=["number"],
    )
    required: bool = Field(description="A record without this field is refused")
    max_length: int | None = Field(description="text only: most characters")
    min: float | None = Field(description="number / integer only: lowest value, inclusive")
    max: float | None = Field(description="number / integer only: highest value, inclusive")
    unit: str = Field(description="number / integer: unit shown after the value", examples=["°C"])
    options: list[OptionOut] = Field(description="choice only: the allowed values, in order")
    note: str = Field(description="Shown with the field (zh)")


class FormOut(BaseModel):
    service: str = Field(description="The plan steps' service code", examples=["iud_followup"])
    name: str = Field(description="The form's title (zh)")
    source: str = Field(description="Where the fields come from")
    note: str = Field(description="Shown with the form (zh)")
    free_text: bool = Field(
        description="Keys that are not fields are accepted as notes: text of at most 500 "
        "characters. notes is accepted on every form"
    )
    fields: list[FormFieldOut] = Field(description="In the order the phone shows them")


def _field_out(f: FormField) -> FormFieldOut:
    return FormFieldOut(
        code=f.code,
        name=f.name,
        type=f.type,
        required=f.required,
        max_length=f.max_length,
        min=f.min,
        max=f.max,
        unit=f.unit,
        options=[OptionOut(code=o.code, name=o.name) for o in f.options],
        note=f.note,
    )


def _form_out(f: Form) -> FormOut:
    return FormOut(
        service=f.service,
        name=f.name,
        source=f.source,
        note=f.note,
        free_text=f.free_text,
        fields=[_field_out(x) for x in f.fields],
    )


@router.get(
    "/visit-forms",
    response_model=list[FormOut],
    summary="Findings forms: for each service of the plans, the fields a visit records",
)
async def list_forms(principal: Caller) -> list[FormOut]:
    return [_form_out(f) for f in forms().values()]


@router.get("/visit-forms/{service}", response_model=FormOut, summary="One service's findings form")
async def get_form(principal: Caller, service: Annotated[str, PathParam(max_length=64)]) -> FormOut:
    form = forms().get(service)
    if form is None:
        raise not_found("随访记录表单", "Visit form")
    return _form_out(form)
