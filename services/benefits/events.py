"""Events benefits publishes, its views of the events it consumes, and their handlers."""

from __future__ import annotations

import tomllib
import uuid
from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select

from services.benefits.domain.enrollments import Ending, ending
from services.benefits.domain.programs import Period, Program, parse_programs, programs_founded_by
from services.benefits.models import CertificateFacts, Enrollment, PersonFacts
from shared.concurrency import versioned_update
from shared.events import CloudEvent, EventData
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy

PROGRAMS_FILE = Path(__file__).with_name("programs.toml")


@lru_cache(maxsize=1)
def programs() -> dict[str, Program]:
    return parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))


# -- published ----------------------------------------------------------------------------


class EnrollmentCreated(EventData):
    TYPE = "lingju.benefits.enrollment.created"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    status: str
    region_code: str
    starts_on: date
    source: str
    source_ref: str


class EnrollmentEnded(EventData):
    """An enrollment ended: nothing is due for periods after ``ends_after`` ("YYYY-MM")."""

    TYPE = "lingju.benefits.enrollment.ended"
    enrollment_id: str
    program: str
    person_id: str
    reason: str  # certificate_revoked | death
    ends_after: str
    region_code: str


class EnrollmentActivated(EventData):
    """An officer other than the one who prepared it confirmed the enrollment: it is paid from
    ``pays_from`` on (months already past are back pay in the next run)."""

    TYPE = "lingju.benefits.enrollment.activated"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    region_code: str
    pays_from: str  # "YYYY-MM"
    pays_until: str | None = None
    monthly_fen: int  # the amount in force for the current period (0 for claim programs)


class PaymentDisbursed(EventData):
    """The bank confirmed one line of a payment run (or a claim) paid to the payee."""

    TYPE = "lingju.benefits.payment.disbursed"
    line_id: int
    run_id: str
    run_code: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    enrollment_id: str | None = None
    claim_id: str | None = None
    period_from: str
    period_until: str
    amount_fen: int
    region_code: str


class PaymentFailed(EventData):
    """The bank returned a line unpaid: the months are owed again in the program's next run,
    and the payee is told to check the account on file."""

    TYPE = "lingju.benefits.payment.failed"
    line_id: int
    run_id: str
    run_code: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    period_from: str
    period_until: str
    amount_fen: int
    reason: str
    region_code: str


# -- consumed (tolerant views of registry's schemas) ----------------------------------------


class PersonRegisteredView(ConsumedData):
    """registry.person.registered and .updated: the facts benefits' rules need."""

    person_id: str
    sex: str
    birth_date: date
    region_code: str
    household_type: str
    version: int = 1  # person.registered carries none: it is the first


class CertificateIssuedView(ConsumedData):
    certificate_id: str
    certificate_type: str
    holder_ids: list[str]
    region_code: str
    issued_on: date


class CertificateRevokedView(ConsumedData):
    certificate_id: str
    certificate_type: str
    revoked_on: date


class PersonDiedView(ConsumedData):
    person_id: str
    date_of_death: date


async def on_person_facts(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep benefits' copy of the person's facts."""
    data = PersonRegisteredView.model_validate(event.data)
    await apply_copy(
        uow, PersonFacts, "person_id", data.model_dump(exclude={"version"}), data.version
    )


async def on_certificate_issued(uow: UnitOfWork, event: CloudEvent) -> None:
    """Enroll every holder in every program the certificate founds (no double enrollment)."""
    data = CertificateIssuedView.model_validate(event.data)
    known = await uow.session.get(CertificateFacts, data.certificate_id)
    if known is not None and known.revoked_on is not None:
        return  # its revocation was seen first
    for program in programs_founded_by(data.certificate_type, programs()):
        for person_id in data.holder_ids:
            existing = await uow.session.scalar(
                select(Enrollment.id).where(
                    Enrollment.program == program.code,
                    Enrollment.person_id == person_id,
                    Enrollment.source_ref == data.certificate_id,
                )
            )
            if existing:
                continue
            facts = await uow.session.get(PersonFacts, person_id)
            if facts is not None and facts.died_on is not None:
                continue  # the death arrived first: nobody is enrolled after death
            enrollment = Enrollment(
                id=str(uuid.uuid4()),
                program=program.code,
                person_id=person_id,
                payee_id=person_id,
                pays_from=str(Period.of(data.issued_on)),
                prepared_by="system",
                confirmed_by="system",
                # The certificate was already reviewed level by level: its enrollment is active.
                status="active",
                region_code=data.region_code,
                source="certificate",
                source_ref=data.certificate_id,
                starts_on=data.issued_on,
            )
            uow.session.add(enrollment)
            uow.publish(
                EnrollmentCreated(
                    enrollment_id=enrollment.id,
                    program=program.code,
                    program_name=program.name,
                    person_id=person_id,
                    status=enrollment.status,
                    region_code=enrollment.region_code,
                    starts_on=enrollment.starts_on,
                    source=enrollment.source,
                    source_ref=enrollment.source_ref,
                ),
                subject=enrollment.id,
            )


async def _end(uow: UnitOfWork, enrollment: Enrollment, end: Ending) -> None:
    """End one enrollment and announce it, unless it is already ended (by an earlier event, or
    a concurrent one: the guarded UPDATE lets exactly one transaction end it)."""
    still_open = Enrollment.status != "ended"
    written = await versioned_update(
        uow.session,
        Enrollment,
        enrollment.id,
        still_open,
        status="ended",
        ended_reason=end.reason,
        ends_after=str(end.ends_after),
    )
    if not written:
        return
    uow.publish(
        EnrollmentEnded(
            enrollment_id=enrollment.id,
            program=enrollment.program,
            person_id=enrollment.person_id,
            reason=end.reason,
            ends_after=str(end.ends_after),
            region_code=enrollment.region_code,
        ),
        subject=enrollment.id,
    )


async def _open_enrollments(uow: UnitOfWork, *where: object) -> list[Enrollment]:
    rows = await uow.session.scalars(
        select(Enrollment)
        .where(Enrollment.status != "ended", *where)  # type: ignore[arg-type]
        .order_by(Enrollment.id)
    )
    return list(rows.all())


async def on_certificate_revoked(uow: UnitOfWork, event: CloudEvent) -> None:
    """End the enrollments the certificate founded; paid through the month of revocation."""
    data = CertificateRevokedView.model_validate(event.data)
    founded = Enrollment.source == "certificate", Enrollment.source_ref == data.certificate_id
    # Recorded as a fact: events are not ordered across replicas, and an issue seen after its
    # revocation must found nothing (on_certificate_issued checks this).
    known = await uow.session.get(CertificateFacts, data.certificate_id)
    if known is None:
        uow.session.add(
            CertificateFacts(
                certificate_id=data.certificate_id,
                certificate_type=data.certificate_type,
                revoked_on=data.revoked_on,
            )
        )
    elif known.revoked_on is None:
        known.revoked_on = data.revoked_on
    end = ending("certificate_revoked", data.revoked_on)
    for enrollment in await _open_enrollments(uow, *founded):
        await _end(uow, enrollment, end)


async def on_person_died(uow: UnitOfWork, event: CloudEvent) -> None:
    """End every enrollment of the deceased; paid for the month of death, nothing after."""
    data = PersonDiedView.model_validate(event.data)
    facts = await uow.session.get(PersonFacts, data.person_id)
    if facts is not None and facts.died_on is None:
        facts.died_on = data.date_of_death
    end = ending("death", data.date_of_death)
    for enrollment in await _open_enrollments(uow, Enrollment.person_id == data.person_id):
        await _end(uow, enrollment, end)


HANDLERS = {
    "lingju.registry.person.registered": on_person_facts,
    "lingju.registry.person.updated": on_person_facts,
    "lingju.registry.certificate.issued": on_certificate_issued,
    "lingju.registry.certificate.revoked": on_certificate_revoked,
    "lingju.registry.person.died": on_person_died,
}
