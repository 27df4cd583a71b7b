"""What anyone may ask without logging in: progress by number, certificate verification."""

from __future__ import annotations

from sqlalchemy import select

from services.registry.api.schemas import ProgressOut, VerificationOut
from services.registry.domain import applications as rules
from services.registry.models import Application, Certificate, Person
from services.registry.usecases.applications import ON_THE_CLOCK
from services.registry.usecases.common import catalogue
from shared.errors import Problem
from shared.events.outbox import UnitOfWork

_NO_MATCH = Problem(
    404,
    "not_found",
    "未找到与申请编号和手机尾号相符的申请",
    "No application matches that number and phone ending",
)


async def progress(uow: UnitOfWork, application_no: str, phone_last4: str) -> ProgressOut:
    """Status, due date and next step, nothing more; a wrong number or phone looks the same."""
    row = (
        await uow.session.execute(
            select(Application, Person.phone)
            .join(Person, Person.id == Application.applicant_id)
            .where(Application.application_no == application_no)
        )
    ).first()
    if row is None or not row.phone or not row.phone.endswith(phone_last4):
        raise _NO_MATCH
    app: Application = row[0]
    status = rules.Status(app.status)
    return ProgressOut(
        application_no=app.application_no,
        type=app.type,
        type_name=catalogue()[app.type].name,
        status=app.status,
        next_step=rules.NEXT_STEP_ZH[status],
        due_date=app.due_date,
        overdue=app.status in ON_THE_CLOCK and app.due_date < uow.clock.today(),
    )


async def verify_certificate(
    uow: UnitOfWork, key: bytes, certificate_no: str, code: str
) -> VerificationOut:
    cert = await uow.session.scalar(
        select(Certificate).where(Certificate.certificate_no == certificate_no)
    )
    if cert is None or not rules.verification_code_matches(key, certificate_no, code):
        return VerificationOut(certificate_no=certificate_no, result="unknown")
    if cert.status == "revoked":
        result = "revoked"
    elif cert.valid_until is not None and cert.valid_until < uow.clock.today():
        result = "expired"
    else:
        result = "valid"
    return VerificationOut(
        certificate_no=certificate_no,
        result=result,
        type_name=catalogue()[cert.type].name,
        issued_on=cert.issued_on,
        valid_until=cert.valid_until,
    )
