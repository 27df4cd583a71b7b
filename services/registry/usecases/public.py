"""What anyone may ask without logging in: progress by number, certificate verification."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.api.schemas import ProgressOut, VerificationOut
from services.registry.domain import applications as rules
from services.registry.models import (
    PHONE_CONTEXT,
    Application,
    Certificate,
    Person,
    ProgressFailure,
)
from services.registry.usecases.applications import ON_THE_CLOCK
from services.registry.usecases.common import catalogue
from shared.crypto import FieldCipher
from shared.errors import Problem
from shared.events.outbox import UnitOfWork

_NO_MATCH = Problem(
    404,
    "not_found",
    "未找到与申请编号和手机尾号相符的申请",
    "No application matches that number and phone ending",
)


@dataclass(frozen=True)
class Lockout:
    """``failures`` wrong phone endings for one number within ``window`` lock its query."""

    failures: int
    window: timedelta


def _failure_key(application_no: str) -> str:
    """The number as asked; one longer than the column (no real number is) as its digest."""
    if len(application_no) <= 64:
        return application_no
    return hashlib.sha256(application_no.encode()).hexdigest()


def _locked_out(now: datetime, frees_at: datetime) -> Problem:
    seconds = max(1, math.ceil((frees_at - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    return Problem(
        429,
        "locked_out",
        f"该申请编号的手机尾号错误次数过多，查询已暂时锁定，请 {minutes} 分钟后再试",
        f"Too many wrong phone endings for this application number; "
        f"queries are locked, retry in {minutes} minutes",
        headers={"Retry-After": str(seconds)},
    )


async def _take_turn(s: AsyncSession, key: str, since: datetime) -> None:
    """Attempts for one number count the failures and record theirs one at a time. Without
    this, a burst of guesses sent at once would all count the same failures before any of
    them recorded its own, and each would get a try: 30 parallel guesses, 30 tries."""
    bind = s.bind
    if bind is not None and bind.dialect.name == "postgresql":
        # Until this transaction ends (the failure's commit): other numbers do not wait.
        await s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    else:
        # SQLite has one writer, and a transaction's first write holds its lock to the end:
        # pruning first makes every attempt (any number's) wait its turn, then count.
        await _prune(s, since)


async def _prune(s: AsyncSession, since: datetime) -> None:
    """Every number's expired failures (indexed by time): the table stays small."""
    await s.execute(
        delete(ProgressFailure)
        .where(ProgressFailure.failed_at <= since)
        .execution_options(synchronize_session=False)
    )


def _phone_ends_with(cipher: FieldCipher, phone_enc: str | None, last4: str) -> bool:
    # The one applicant's phone is decrypted here rather than matched through a stored index of
    # its last four digits: an index of 10,000 possible values would be one more copy of the
    # phone to keep, and the application number has already found the single row to check.
    if not phone_enc:
        return False
    return cipher.decrypt(phone_enc, context=PHONE_CONTEXT).endswith(last4)


async def progress(
    uow: UnitOfWork,
    cipher: FieldCipher,
    application_no: str,
    phone_last4: str,
    lockout: Lockout,
) -> ProgressOut:
    """Status, due date and next step, nothing more; a wrong number or phone looks the same.

    Guessing the 4 digits is made impractical: after ``lockout.failures`` wrong answers for a
    number within ``lockout.window`` it is locked for everyone, right digits included, until
    the oldest of them leaves the window. Unknown numbers count the same way (nothing tells
    them apart), and a right answer does not clear the count: an applicant checking in between
    would otherwise hand a guesser a fresh set of tries. Attempts for a number take turns
    (``_take_turn``), so guesses sent in parallel get no more tries than guesses in a row.
    """
    s = uow.session
    key = _failure_key(application_no)
    now = uow.clock.now()
    since = now - lockout.window
    await _take_turn(s, key, since)
    recent = (
        await s.scalars(
            select(ProgressFailure.failed_at)
            .where(ProgressFailure.application_no == key, ProgressFailure.failed_at > since)
            .order_by(ProgressFailure.failed_at.desc())
            .limit(lockout.failures)
        )
    ).all()
    if len(recent) >= lockout.failures:
        raise _locked_out(now, recent[-1] + lockout.window)
    row = (
        await s.execute(
            select(Application, Person.phone_enc)
            .join(Person, Person.id == Application.applicant_id)
            .where(Application.application_no == application_no)
        )
    ).first()
    if row is None or not _phone_ends_with(cipher, row.phone_enc, phone_last4):
        s.add(ProgressFailure(application_no=key, failed_at=now))
        await _prune(s, since)
        await uow.commit()
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
