from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.registry.api.schemas import ApplicationIn, ApplicationOut, ReviewIn
from services.registry.usecases import applications as usecases
from shared.auth import Principal, Role, current_principal, require_roles
from shared.idempotency import run_idempotent
from shared.service import RuntimeDep

router = APIRouter(prefix="/applications", tags=["applications"])

Applicant = Annotated[
    Principal,
    Depends(
        require_roles(
            Role.resident,
            Role.village_agent,
            Role.village_worker,
            Role.township_officer,
            Role.county_officer,
            Role.admin,
        )
    ),
]
Reviewer = Annotated[
    Principal,
    Depends(
        require_roles(Role.village_worker, Role.township_officer, Role.county_officer, Role.admin)
    ),
]


@router.post("", status_code=201, response_model=ApplicationOut, summary="Apply for a certificate")
async def submit_application(
    body: ApplicationIn, request: Request, rt: RuntimeDep, principal: Applicant
):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.submit_application(uow, body, principal),
    )


@router.get("/{application_id}", response_model=ApplicationOut, summary="One application")
async def get_application(
    application_id: str,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(current_principal)],
) -> ApplicationOut:
    async with rt.uow() as uow:
        return await usecases.get_application(uow, application_id, principal)


@router.post(
    "/{application_id}/review",
    response_model=ApplicationOut,
    summary="Approve, return or reject at the current review level",
)
async def review_application(
    application_id: str, body: ReviewIn, rt: RuntimeDep, principal: Reviewer
) -> ApplicationOut:
    async with rt.uow() as uow:
        out = await usecases.review_application(uow, application_id, body, principal)
        await uow.commit()
        return out
