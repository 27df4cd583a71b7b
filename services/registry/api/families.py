from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.registry.api.access import Caller
from services.registry.api.family_schemas import ChildLinkIn, FamilyIn, FamilyOut
from services.registry.usecases import families as usecases
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(prefix="/families", tags=["families"])


@router.post(
    "",
    status_code=201,
    response_model=FamilyOut,
    summary="Register a family: a couple, its marriage date, optionally its children",
)
async def register_family(
    body: FamilyIn, request: Request, rt: RuntimeDep, principal: Caller
) -> JSONResponse:
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.register_family(uow, rt.cipher, body, principal),
    )


@router.get(
    "",
    response_model=Page[FamilyOut],
    summary="The families a person belongs to (as a spouse or a child)",
)
async def families_of_person(
    rt: RuntimeDep,
    principal: Caller,
    person_id: Annotated[str, Query(min_length=1, max_length=36)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[FamilyOut]:
    async with rt.uow() as uow:
        return await usecases.families_of(uow, person_id, principal, limit, cursor)


@router.get("/{family_id}", response_model=FamilyOut, summary="One family and its structure")
async def get_family(family_id: str, rt: RuntimeDep, principal: Caller) -> FamilyOut:
    async with rt.uow() as uow:
        return await usecases.get_family(uow, family_id, principal)


@router.post(
    "/{family_id}/children",
    status_code=201,
    response_model=FamilyOut,
    summary="Link an existing child to a family",
)
async def link_child(
    family_id: str, body: ChildLinkIn, request: Request, rt: RuntimeDep, principal: Caller
) -> JSONResponse:
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.link_child(uow, family_id, body, principal),
    )
