"""Payment runs (发放批次): thin routes over ``services.benefits.payments``.

Money is decided at the township or county: only their officers draft, approve, export and
reconcile runs, each inside their region; the officer who drafted a run never approves it.

The bank files (the full rules: ``services/benefits/domain/payments.py``):

- ``GET /payment-runs/{id}/disbursement-file`` (代发文件), UTF-8 CSV, CRLF::

      reference,account_no,account_name,amount
      PR-RRA-2026-01-330102-000001,6228480012345678901,王芳,120.00
      ...
      TOTAL,<line count>,,<total yuan>

  one row per line sent to the bank (held lines are not), amounts in yuan with two decimals
  formatted from integer fen; headers ``X-Control-Line-Count`` and ``X-Control-Total-Fen``
  repeat the control row's figures;
- ``POST /payment-runs/{id}/reconciliation`` takes the bank's return file (回盘文件) as
  ``text/csv``: ``reference,result,reason`` with result ``paid`` or ``failed``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.benefits import payments
from services.benefits.api.access import Caller
from services.benefits.payments import (
    PERIOD_PATTERN,
    PaymentLineOut,
    PaymentRunIn,
    PaymentRunOut,
    ReconciliationOut,
    VersionIn,
)
from shared.concurrency import etag, expected_version
from shared.errors import Problem, problem_responses
from shared.idempotency import run_idempotent
from shared.limits import larger_body
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(prefix="/payment-runs", tags=["payment-runs"], responses=problem_responses())

IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


@router.post(
    "",
    status_code=201,
    response_model=PaymentRunOut,
    summary=(
        "Draft a run for a program, period and region (set-based); the same run again answers "
        "200 with the existing one (Idempotency-Key accepted)"
    ),
    responses={200: {"model": PaymentRunOut, "description": "The run already made"}},
)
async def create_run(body: PaymentRunIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: payments.create_run(uow, body, principal),
    )


@router.get("", response_model=Page[PaymentRunOut], summary="Runs in the caller's region")
async def list_runs(
    rt: RuntimeDep,
    principal: Caller,
    program: str | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    status: Annotated[str | None, Query(pattern="^(draft|approved|exported|reconciled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[PaymentRunOut]:
    async with rt.db.session() as s:
        return await payments.list_runs(
            s, principal, program=program, period=period, status=status, limit=limit, cursor=cursor
        )


@router.get("/{run_id}", response_model=PaymentRunOut, summary="One run (ETag: its version)")
async def get_run(
    run_id: str, response: Response, rt: RuntimeDep, principal: Caller
) -> PaymentRunOut:
    async with rt.db.session() as s:
        out = await payments.get_run(s, run_id, principal)
    response.headers["ETag"] = etag(out.version)
    return out


@router.get(
    "/{run_id}/lines",
    response_model=Page[PaymentLineOut],
    summary="The run's lines in line order (account numbers masked)",
)
async def list_lines(
    run_id: str,
    rt: RuntimeDep,
    principal: Caller,
    status: Annotated[str | None, Query(pattern="^(pending|held|exported|paid|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[PaymentLineOut]:
    async with rt.db.session() as s:
        return await payments.list_lines(
            s, rt.cipher, run_id, principal, status=status, limit=limit, cursor=cursor
        )


@router.post(
    "/{run_id}/approve",
    response_model=PaymentRunOut,
    summary="Approve a draft (an officer other than the one who drafted it)",
)
async def approve_run(
    run_id: str, body: VersionIn, rt: RuntimeDep, principal: Caller, if_match: IfMatch = None
) -> PaymentRunOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await payments.approve_run(uow, run_id, expected, principal)
        await uow.commit()
        return out


@router.post(
    "/{run_id}/export",
    response_model=PaymentRunOut,
    summary="Export an approved run: ledger payments written, months settled",
)
async def export_run(
    run_id: str, body: VersionIn, rt: RuntimeDep, principal: Caller, if_match: IfMatch = None
) -> PaymentRunOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        out = await payments.export_run(uow, run_id, expected, principal)
        await uow.commit()
        return out


@router.get(
    "/{run_id}/disbursement-file",
    summary="The bank disbursement file (CSV, UTF-8) of an exported run",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": (
                "reference,account_no,account_name,amount rows and a TOTAL control row; "
                "headers X-Control-Line-Count and X-Control-Total-Fen"
            ),
        }
    },
)
async def disbursement_file(run_id: str, rt: RuntimeDep, principal: Caller) -> StreamingResponse:
    async with rt.db.session() as s:
        run = await payments.disbursement_run(s, run_id, principal)
    return StreamingResponse(
        payments.disbursement_file(rt.db, rt.cipher, run),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{run.code}.csv"',
            "X-Control-Line-Count": str(run.line_count),
            "X-Control-Total-Fen": str(run.total_fen),
        },
    )


@router.post(
    "/{run_id}/reconciliation",
    response_model=ReconciliationOut,
    summary=(
        "Apply the bank's return file (text/csv: reference,result,reason): all or nothing; "
        "re-uploading the same results changes nothing"
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **larger_body("max_return_file_bytes"),  # a return file has a line per payment
    },
)
async def reconcile(
    run_id: str, request: Request, rt: RuntimeDep, principal: Caller
) -> ReconciliationOut:
    try:
        body = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as e:
        raise Problem(
            422,
            "return_file_invalid",
            "回盘文件应为 UTF-8 编码",
            "The return file must be UTF-8",
        ) from e
    async with rt.uow() as uow:
        out = await payments.reconcile(uow, run_id, body, principal)
        await uow.commit()
        return out
