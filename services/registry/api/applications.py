from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.registry.api.access import Caller, IfMatch
from services.registry.api.schemas import (
    ApplicationDetail,
    ApplicationIn,
    ApplicationOut,
    MaterialsIn,
    ReviewIn,
)
from services.registry.usecases import applications as usecases
from shared.concurrency import etag, expected_version
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(prefix="/applications", tags=["applications"])


@router.post("", status_code=201, response_model=ApplicationOut, summary="Apply for a certificate")
async def submit_application(
    body: ApplicationIn, request: Request, rt: RuntimeDep, principal: Caller
):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.submit_application(uow, body, principal),
    )


@router.get(
    "",
    response_model=Page[ApplicationOut],
    summary="An officer's queue: by status, region, type, overdue; soonest due first",
)
async def list_applications(
    rt: RuntimeDep,
    principal: Caller,
    status: str | None = None,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    overdue: bool | None = None,
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[ApplicationOut]:
    async with rt.uow() as uow:
        return await usecases.list_applications(
            uow,
            principal,
            status=status,
            region=region,
            overdue=overdue,
            type_=type,
            limit=limit,
            cursor=cursor,
        )


@router.get("/{application_id}", response_model=ApplicationDetail, summary="One application")
async def get_application(
    application_id: str,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
) -> ApplicationDetail:
    async with rt.uow() as uow:
        out, history = await usecases.get_application(uow, application_id, principal)
    response.headers["ETag"] = etag(out.version)
    return ApplicationDetail(**out.model_dump(), history=history)


@router.post(
    "/{application_id}/materials",
    response_model=ApplicationOut,
    summary="Supplement materials after the one-time notice or a return",
)
async def supplement_materials(
    application_id: str,
    body: MaterialsIn,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> ApplicationOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await usecases.supplement_materials(uow, application_id, body, expected, principal)
        await uow.commit()
        return out


@router.post(
    "/{application_id}/review",
    response_model=ApplicationOut,
    summary="Approve, return or reject at the current review level",
)
async def review_application(
    application_id: str,
    body: ReviewIn,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> ApplicationOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await usecases.review_application(uow, application_id, body, expected, principal)
        await uow.commit()
        return out
