"""Visit records on tasks, and procedures done at stations: thin routes over
``services.visits.records``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from sqlalchemy.exc import IntegrityError

from services.visits import records
from services.visits.api.access import Caller
from services.visits.records import ProcedureIn, ProcedureOut, VisitIn, VisitOut
from shared.errors import problem_responses
from shared.service import RuntimeDep

router = APIRouter(tags=["visits"], responses=problem_responses())


@router.post(
    "/tasks/{task_id}/visits",
    response_model=VisitOut,
    status_code=201,
    summary="Record a visit: consent closes the task done, a refusal closes it declined",
    responses={200: {"description": "The record id was sent before: the first record"}},
)
async def post_visit(
    task_id: Annotated[str, PathParam(max_length=36)],
    body: VisitIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
) -> VisitOut:
    try:
        async with rt.uow() as uow:
            status, out = await records.record_visit(uow, rt.cipher, task_id, body, principal)
            await uow.commit()
    except IntegrityError:
        # The same record id raced in from another request and won: answer with its record.
        async with rt.db.session() as s:
            first = await records.existing_visit(s, rt.cipher, task_id, str(body.id), principal)
        if first is None:
            raise
        status, out = 200, first
    except records.TaskChanged:
        # Two sends of one record racing: the loser's guarded UPDATE finds the task closed by
        # the winner, which is a duplicate, not a conflict.
        async with rt.db.session() as s:
            first = await records.existing_visit(s, rt.cipher, task_id, str(body.id), principal)
        if first is None:
            raise
        status, out = 200, first
    response.status_code = status
    return out


@router.get(
    "/tasks/{task_id}/visits",
    response_model=list[VisitOut],
    summary="The visits recorded on a task, oldest first",
)
async def get_visits(
    task_id: Annotated[str, PathParam(max_length=36)], rt: RuntimeDep, principal: Caller
) -> list[VisitOut]:
    async with rt.db.session() as s:
        return await records.list_visits(s, rt.cipher, task_id, principal)


@router.post(
    "/procedures",
    response_model=ProcedureOut,
    status_code=201,
    summary="Record a procedure done with consent; starts its follow-up plan",
    responses={200: {"description": "The procedure id was sent before: the first record"}},
)
async def post_procedure(
    body: ProcedureIn, response: Response, rt: RuntimeDep, principal: Caller
) -> ProcedureOut:
    async with rt.uow() as uow:
        status, out = await records.record_procedure(uow, rt.cipher, body, principal)
        await uow.commit()
    response.status_code = status
    return out
