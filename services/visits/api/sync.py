"""Offline sync for workers' phones: thin routes over ``services.visits.sync``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.visits import sync
from services.visits.api.access import Caller
from services.visits.sync import SyncPage, SyncPushIn, SyncPushOut
from shared.errors import problem_responses, wants_english
from shared.limits import larger_body
from shared.service import RuntimeDep

router = APIRouter(tags=["sync"], responses=problem_responses())


@router.get(
    "/sync",
    response_model=SyncPage,
    summary="What changed for this phone since the cursor: its tasks, its region's persons",
)
async def pull(
    rt: RuntimeDep,
    principal: Caller,
    cursor: Annotated[
        str | None, Query(max_length=200, description="From the previous pull; omit the first time")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=sync.MAX_PAGE)] = 200,
) -> SyncPage:
    async with rt.db.session() as s:
        return await sync.pull(s, rt.cipher, principal, rt.clock.today(), cursor, limit)


@router.post(
    "/sync",
    response_model=SyncPushOut,
    summary="Push visit records made offline; each item accepted, duplicate, conflict or rejected",
    openapi_extra=larger_body("max_sync_push_bytes"),  # up to MAX_BATCH records of findings
)
async def push(
    body: SyncPushIn, request: Request, rt: RuntimeDep, principal: Caller
) -> SyncPushOut:
    return await sync.push(rt, body, principal, wants_english(request))
