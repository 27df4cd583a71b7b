"""Benefits' bulk exports for the county health bureau (shared/exports.py, docs/exports.md):
enrollments and payment lines of the caller's region, a keyset page at a time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from services.benefits.api.access import Caller
from services.benefits.domain.payments import mask_account_no
from services.benefits.models import LINE_ACCOUNT_NO, Enrollment, PaymentLine, PaymentRun
from shared.crypto import FieldCipher
from shared.exports import (
    DEFAULT_LIMIT,
    EXPORT_RESPONSES,
    Cursor,
    Export,
    ExportColumn,
    Format,
    Limit,
    RegionPrefix,
    cursor_int,
    export_region,
    export_response,
    keyset_page,
)
from shared.pagination import decode_cursor
from shared.service import RuntimeDep

router = APIRouter(prefix="/exports", tags=["exports"])

# Stable column sets: add at the end only (shared/exports.py).
ENROLLMENT_COLUMNS = (
    ExportColumn("id", "Enrollment id (UUID); rows are ordered by it"),
    ExportColumn("program", "Program code (see GET /api/v1/programs)"),
    ExportColumn("person_id", "The beneficiary's person id (for childcare: the child)"),
    ExportColumn("payee_id", "Person id of whose account is paid"),
    ExportColumn("case", "Which amount applies (child_died, child_disabled), empty: standard"),
    ExportColumn("status", "pending_review | active | suspended | ended"),
    ExportColumn("region_code", "12-digit village division code"),
    ExportColumn("source", "certificate | child_born | death | age_sweep | application"),
    ExportColumn("source_ref", "Id of what founded it (e.g. the certificate id)"),
    ExportColumn("starts_on", "Entitled from this day"),
    ExportColumn("pays_from", "First period owed, YYYY-MM"),
    ExportColumn("pays_until", "Last period owed, YYYY-MM; empty: open-ended"),
    ExportColumn("settled_through", "Last period sent to the bank, YYYY-MM"),
    ExportColumn("confirmed_at", "Confirmed by an officer at (UTC)"),
    ExportColumn("ended_reason", "death | certificate_revoked | age_out, when ended"),
    ExportColumn("ends_after", "Last period paid when ended, YYYY-MM"),
    ExportColumn("created_at", "Recorded at (UTC)"),
    ExportColumn("version", "Record version, raised by every change"),
)

PAYMENT_COLUMNS = (
    ExportColumn("id", "Payment line id (integer); rows are ordered by it"),
    ExportColumn("run_id", "Payment run id"),
    ExportColumn("run_code", "The run's bank-facing batch reference"),
    ExportColumn("run_period", "The run's period, YYYY-MM"),
    ExportColumn("run_status", "draft | approved | exported | reconciled"),
    ExportColumn("line_no", "Line number within the run"),
    ExportColumn("program", "Program code"),
    ExportColumn("enrollment_id", "Enrollment paid, if any"),
    ExportColumn("claim_id", "Claim reimbursed, if any"),
    ExportColumn("person_id", "The beneficiary's person id"),
    ExportColumn("payee_id", "Person id of whose account is paid"),
    ExportColumn("region_code", "12-digit village division code"),
    ExportColumn("period_from", "First month paid, YYYY-MM"),
    ExportColumn("period_until", "Last month paid, YYYY-MM"),
    ExportColumn("months", "Months paid"),
    ExportColumn("amount_fen", "Amount in fen (分)"),
    ExportColumn("account_name", "Account holder's name"),
    ExportColumn("account_no", "Bank account, last four digits only; empty when held"),
    ExportColumn("status", "pending | held | exported | paid | failed"),
    ExportColumn("failure_reason", "The bank's reason, when failed"),
)

ENROLLMENTS = Export(
    route="/api/v1/exports/enrollments",
    rows="one enrollment of a person of the region (any status), ordered by `id`; the "
    "officers' free-text suspension reason and their account names are left out",
    masking="none needed: persons are named by id only",
    columns=ENROLLMENT_COLUMNS,
)
PAYMENTS = Export(
    route="/api/v1/exports/payments",
    rows="one payment line (one entitlement of a payment run) of the region, ordered by `id`",
    masking="`account_no` shows only its last four digits, for every role",
    columns=PAYMENT_COLUMNS,
)
EXPORTS = (ENROLLMENTS, PAYMENTS)


def _payment_row(
    cipher: FieldCipher, line: PaymentLine, run_code: str, run_period: str, run_status: str
) -> dict[str, Any]:
    row = {c.name: getattr(line, c.name, None) for c in PAYMENT_COLUMNS}
    account_no = None
    if line.account_no_enc:
        plain, _ = cipher.decrypt_any(line.account_no_enc, contexts=LINE_ACCOUNT_NO.contexts)
        account_no = mask_account_no(plain)
    return row | {
        "run_code": run_code,
        "run_period": run_period,
        "run_status": run_status,
        "account_no": account_no,
    }


@router.get(
    "/enrollments",
    summary="Export the enrollments of your region (JSON lines or CSV)",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export_enrollments(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    format: Format = "jsonl",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    region: RegionPrefix = None,
) -> Response:
    prefix = export_region(principal, region)
    q = select(Enrollment).where(Enrollment.region_code.startswith(prefix))
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(Enrollment.id > after[0])
    # Rows are read out before the unit of work ends (its rollback expires them).
    async with rt.uow() as uow:
        found = (await uow.session.scalars(q.order_by(Enrollment.id).limit(limit + 1))).all()
        page, next_cursor = keyset_page(found, limit, lambda e: (e.id,))
        rows = [{c.name: getattr(e, c.name) for c in ENROLLMENT_COLUMNS} for e in page]
    return export_response(rows, ENROLLMENT_COLUMNS, format, next_cursor, request=request)


@router.get(
    "/payments",
    summary="Export the payment lines of your region (JSON lines or CSV)",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export_payments(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    format: Format = "jsonl",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    region: RegionPrefix = None,
) -> Response:
    prefix = export_region(principal, region)
    q = (
        select(
            PaymentLine,
            PaymentRun.code.label("run_code"),
            PaymentRun.period.label("run_period"),
            PaymentRun.status.label("run_status"),
        )
        .join(PaymentRun, PaymentRun.id == PaymentLine.run_id)
        .where(PaymentLine.region_code.startswith(prefix))
    )
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(PaymentLine.id > cursor_int(after[0]))
    async with rt.uow() as uow:
        found = (await uow.session.execute(q.order_by(PaymentLine.id).limit(limit + 1))).all()
        page, next_cursor = keyset_page(found, limit, lambda r: (r.PaymentLine.id,))
        rows = [_payment_row(rt.cipher, *r) for r in page]
    return export_response(rows, PAYMENT_COLUMNS, format, next_cursor, request=request)
