"""Follow-up plans as data (plans.toml): what each plan's steps are, who does them, and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from services.visits.domain.plans import Offset, Plan, Step
from services.visits.events import plans
from shared.auth import Principal, Role, require_roles
from shared.errors import not_found, problem_responses

router = APIRouter(tags=["plans"], responses=problem_responses())


# Every role may read the plans: residents see what follow-ups to expect, workers and officers
# what they will be assigned.
AnyCaller = Annotated[Principal, Depends(require_roles(*Role))]


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
async def list_plans(principal: AnyCaller) -> list[PlanOut]:
    return [_plan_out(p) for p in plans().values()]


@router.get("/visit-plans/{code}", response_model=PlanOut, summary="One follow-up plan")
async def get_plan(principal: AnyCaller, code: Annotated[str, PathParam(max_length=64)]) -> PlanOut:
    plan = plans().get(code)
    if plan is None:
        raise not_found("随访计划", "Visit plan")
    return _plan_out(plan)
