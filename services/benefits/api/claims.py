"""Claims of capped reimbursement programs (报销申请): thin routes over ``claiming``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from services.benefits import claiming
from services.benefits.api.access import Caller
from services.benefits.claiming import ApproveIn, ClaimIn, ClaimOut, RejectIn
from shared.concurrency import etag, expected_version
from shared.errors import problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(prefix="/claims", tags=["claims"], responses=problem_responses())

# A resident for themself; local staff for a resident of their region (region checked against
# the person in the use case).
# Money is decided at the township or county, never at the village.
IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


@router.post(
    "",
    status_code=201,
    response_model=ClaimOut,
    summary="Submit a reimbursement claim against receipts (Idempotency-Key accepted)",
)
async def submit_claim(body: ClaimIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: claiming.submit_claim(uow, body, principal),
    )


@router.get("", response_model=Page[ClaimOut], summary="Claims: a resident's own, or a region's")
async def list_claims(
    rt: RuntimeDep,
    principal: Caller,
    person_id: str | None = None,
    status: Annotated[str | None, Query(pattern="^(submitted|approved|rejected|paid)$")] = None,
    program: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[ClaimOut]:
    async with rt.db.session() as s:
        return await claiming.list_claims(
            s,
            principal,
            person_id=person_id,
            status=status,
            program=program,
            limit=limit,
            cursor=cursor,
        )


@router.get("/{claim_id}", response_model=ClaimOut, summary="One claim, with the couple's cap")
async def get_claim(
    claim_id: str, response: Response, rt: RuntimeDep, principal: Caller
) -> ClaimOut:
    async with rt.db.session() as s:
        out = await claiming.get_claim(s, claim_id, principal)
    response.headers["ETag"] = etag(out.version)
    return out


@router.post(
    "/{claim_id}/approve",
    response_model=ClaimOut,
    summary="Approve (maker-checker), at most what remains under the couple's cap",
)
async def approve_claim(
    claim_id: str,
    body: ApproveIn,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> ClaimOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await claiming.approve_claim(uow, claim_id, body, expected, principal)
        await uow.commit()
        return out


@router.post("/{claim_id}/reject", response_model=ClaimOut, summary="Reject with a reason")
async def reject_claim(
    claim_id: str,
    body: RejectIn,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> ClaimOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await claiming.reject_claim(uow, claim_id, body, expected, principal)
        await uow.commit()
        return out
