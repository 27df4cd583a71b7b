from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.registry.api.access import Caller
from services.registry.api.family_schemas import BirthIn, BirthOut, DeathIn, DeathOut
from services.registry.usecases import life_events as usecases
from shared.idempotency import run_idempotent
from shared.service import RuntimeDep

router = APIRouter(tags=["life events"])


@router.post(
    "/births",
    status_code=201,
    response_model=BirthOut,
    summary="Register a birth: creates the child and links it to the mother's family",
)
async def register_birth(
    body: BirthIn, request: Request, rt: RuntimeDep, principal: Caller
) -> JSONResponse:
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.register_birth(uow, rt.cipher, body, principal),
    )


@router.post(
    "/persons/{person_id}/death",
    status_code=201,
    response_model=DeathOut,
    summary="Record a resident's death (once: a second report is 409 already_dead)",
)
async def report_death(
    person_id: str, body: DeathIn, request: Request, rt: RuntimeDep, principal: Caller
) -> JSONResponse:
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.report_death(uow, rt.cipher, person_id, body, principal),
    )
