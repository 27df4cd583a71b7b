from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.registry.api.access import Caller, IfMatch
from services.registry.api.schemas import PersonIn, PersonOut, PersonPatch
from services.registry.usecases import persons as usecases
from shared.concurrency import etag, expected_version
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(prefix="/persons", tags=["persons"])


@router.post("", status_code=201, response_model=PersonOut, summary="Register a resident")
async def register_person(body: PersonIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: usecases.register_person(uow, rt.cipher, body, principal),
    )


@router.get("/{person_id}", response_model=PersonOut, summary="One resident")
async def get_person(
    person_id: str,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
) -> PersonOut:
    async with rt.uow() as uow:
        out = await usecases.get_person(uow, rt.cipher, person_id, principal)
    response.headers["ETag"] = etag(out.version)
    return out


@router.get("", response_model=Page[PersonOut], summary="Search residents in your region")
async def search_persons(
    rt: RuntimeDep,
    principal: Caller,
    name: Annotated[str | None, Query(max_length=50)] = None,
    phone: Annotated[
        str | None,
        Query(max_length=20, description="The whole number (exact match, by its blind index)"),
    ] = None,
    id_number: Annotated[str | None, Query(max_length=18)] = None,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[PersonOut]:
    async with rt.uow() as uow:
        return await usecases.search_persons(
            uow,
            rt.cipher,
            principal,
            name=name,
            phone=phone,
            id_number=id_number,
            region=region,
            limit=limit,
            cursor=cursor,
        )


@router.patch("/{person_id}", response_model=PersonOut, summary="Change a resident's facts")
async def update_person(
    person_id: str,
    body: PersonPatch,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> PersonOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await usecases.update_person(uow, rt.cipher, person_id, body, expected, principal)
        await uow.commit()
    response.headers["ETag"] = etag(out.version)
    return out
