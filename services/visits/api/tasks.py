"""Follow-up tasks and who does them: thin routes over ``services.visits.tasks``."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from services.visits import plan_runs, tasks
from services.visits.api.access import Caller
from services.visits.tasks import AssignmentIn, AssignmentOut, TaskOut
from shared.clock import AsOfQuery as AsOf
from shared.concurrency import etag
from shared.errors import problem_responses
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(tags=["tasks"], responses=problem_responses())


@router.put(
    "/assignments/{area}/{tier}",
    response_model=AssignmentOut,
    summary="Set who does an area's tasks of a tier; its open tasks move to them",
)
async def put_assignment(
    area: Annotated[str, PathParam(description="12-digit village, 9 township, 6 district")],
    tier: Annotated[str, PathParam(description="village / township / district")],
    body: AssignmentIn,
    rt: RuntimeDep,
    principal: Caller,
) -> AssignmentOut:
    tasks.validate_tier_area(area, tier)
    async with rt.uow() as uow:
        out = await tasks.assign(uow, area, tier, body, principal)  # type: ignore[arg-type]
        await uow.commit()
        return out


@router.get(
    "/assignments",
    response_model=list[AssignmentOut],
    summary="The assignments of the areas in the caller's region (or ?region= within it)",
)
async def list_assignments(
    rt: RuntimeDep,
    principal: Caller,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
) -> list[AssignmentOut]:
    async with rt.db.session() as s:
        return await tasks.list_assignments(s, principal, region)


@router.get(
    "/tasks",
    response_model=Page[TaskOut],
    summary="Working list: ?assignee=me (the caller's), or an area's; most urgent first",
)
async def list_tasks(
    rt: RuntimeDep,
    principal: Caller,
    assignee: Annotated[
        str | None,
        Query(
            max_length=80,
            description='"me": the caller\'s tasks; "none": unassigned; or a sub (staff)',
        ),
    ] = None,
    region: Annotated[
        str | None,
        Query(pattern=r"^\d{2,12}$", description="Within the caller's region; default theirs"),
    ] = None,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
    state: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Comma-separated: scheduled, due, overdue, missed, done, cancelled",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[TaskOut]:
    states = tasks.parse_states(state)
    async with rt.db.session() as s:
        return await tasks.list_tasks(
            s,
            principal,
            rt.clock.today(),
            assignee=assignee,
            region=region,
            person_id=person_id,
            states=states,
            limit=limit,
            cursor=cursor,
        )


@router.get("/tasks/{task_id}", response_model=TaskOut, summary="One task, with its state")
async def get_task(
    task_id: Annotated[str, PathParam(max_length=36)],
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
) -> TaskOut:
    async with rt.db.session() as s:
        out = await tasks.get_task(s, task_id, principal, rt.clock.today())
    response.headers["ETag"] = etag(out.version)
    return out


# -- the announcement worker, on demand -------------------------------------------------------


class AnnouncementsOut(BaseModel):
    as_of: date
    due: list[str] = Field(description="Tasks announced due by this run")
    overdue: list[str] = Field(description="Tasks announced overdue by this run")


@router.post(
    "/admin/sweeps/tasks",
    response_model=AnnouncementsOut,
    tags=["admin"],
    summary="Announce tasks that are due / overdue on as_of (default today), once each",
)
async def sweep_tasks(rt: RuntimeDep, _: Caller, as_of: AsOf = None) -> AnnouncementsOut:
    result = await tasks.announce(rt, as_of or rt.clock.today())
    return AnnouncementsOut(as_of=result.as_of, due=result.due, overdue=result.overdue)


class PlanSweepOut(BaseModel):
    as_of: date
    runs_started: int = Field(description="Age plans started for persons entering the range")
    runs_extended: int = Field(description="Plan runs whose repeats were generated further")
    tasks_created: int


@router.post(
    "/admin/sweeps/plans",
    response_model=PlanSweepOut,
    tags=["admin"],
    summary="Start age plans and extend repeating plans as of as_of (default today)",
)
async def sweep_plans(rt: RuntimeDep, _: Caller, as_of: AsOf = None) -> PlanSweepOut:
    result = await plan_runs.sweep_plans(rt, as_of or rt.clock.today())
    return PlanSweepOut(
        as_of=result.as_of,
        runs_started=result.runs_started,
        runs_extended=result.runs_extended,
        tasks_created=result.tasks_created,
    )
