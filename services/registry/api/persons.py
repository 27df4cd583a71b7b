from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.registry.api.schemas import PersonIn, PersonOut
from services.registry.usecases import persons as usecases
from shared.auth import Principal, Role, current_principal, require_roles
from shared.idempotency import run_idempotent
from shared.service import RuntimeDep

router = APIRouter(prefix="/persons", tags=["persons"])

# Residents are registered by the people responsible for their village or township.
Registrar = Annotated[
    Principal,
    Depends(
        require_roles(
            Role.village_agent,
            Role.village_worker,
            Role.township_officer,
            Role.county_officer,
            Role.bureau_system,
            Role.admin,
        )
    ),
]


@router.post("", status_code=201, response_model=PersonOut, summary="Register a resident")
async def register_person(body: PersonIn, request: Request, rt: RuntimeDep, principal: Registrar):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.register_person(uow, rt.cipher, body, principal),
    )


@router.get("/{person_id}", response_model=PersonOut, summary="One resident")
async def get_person(
    person_id: str, rt: RuntimeDep, principal: Annotated[Principal, Depends(current_principal)]
) -> PersonOut:
    async with rt.uow() as uow:
        return await usecases.get_person(uow, rt.cipher, person_id, principal)
