"""A person's payee account (代发账户) and payments (the ledger): thin routes over
``services.benefits.payments``.

A resident acts for themself and their children; village workers and township and county
officers for persons of their region.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from services.benefits import payments
from services.benefits.api.access import Caller
from services.benefits.payments import PayeeAccountIn, PayeeAccountOut, PaymentsPage
from shared.concurrency import etag, expected_version
from shared.errors import problem_responses
from shared.pagination import MAX_LIMIT
from shared.service import RuntimeDep

router = APIRouter(prefix="/persons", tags=["persons"], responses=problem_responses())

IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


@router.put(
    "/{person_id}/payee-account",
    response_model=PayeeAccountOut,
    status_code=200,
    summary=(
        "Set the account benefits are paid into (201 when new; replacing one needs the version "
        "read, If-Match or body)"
    ),
    responses={201: {"model": PayeeAccountOut, "description": "Account created"}},
)
async def put_payee_account(
    person_id: str,
    body: PayeeAccountIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> PayeeAccountOut:
    expected = expected_version(if_match, body.version) if (if_match or body.version) else None
    async with rt.uow() as uow:
        status, out = await payments.put_payee_account(
            uow, rt.cipher, person_id, body, expected, principal
        )
        await uow.commit()
    response.status_code = status
    response.headers["ETag"] = etag(out.version)
    return out


@router.get(
    "/{person_id}/payee-account",
    response_model=PayeeAccountOut,
    summary="The account on file (number masked: last four digits)",
)
async def get_payee_account(
    person_id: str, response: Response, rt: RuntimeDep, principal: Caller
) -> PayeeAccountOut:
    async with rt.db.session() as s:
        out = await payments.get_payee_account(s, person_id, principal)
    response.headers["ETag"] = etag(out.version)
    return out


@router.get(
    "/{person_id}/payments",
    response_model=PaymentsPage,
    summary=(
        "Every fen paid, returned or corrected for the person (as beneficiary or payee), "
        "newest first, with reasons and the net total"
    ),
)
async def person_payments(
    person_id: str,
    rt: RuntimeDep,
    principal: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> PaymentsPage:
    async with rt.db.session() as s:
        return await payments.person_payments(s, person_id, principal, limit=limit, cursor=cursor)
