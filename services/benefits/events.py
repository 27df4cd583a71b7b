"""Events benefits publishes, its views of the events it consumes, and their handlers.

Handlers keep the read models (persons, families, child links, certificates) and found
enrollments through the use cases in ``enrolling.py``. Events are not ordered across
replicas: a handler missing a prerequisite copy (a holder's person facts, say) raises
``RetryLater`` and everything it did is rolled back; each handler is safe to apply again.
"""

from __future__ import annotations

import logging
import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from services.benefits import enrolling
from services.benefits.domain.enrollments import ending
from services.benefits.domain.programs import Period, Program, parse_programs, programs_founded_by
from services.benefits.models import CertificateFacts, Enrollment, FamilyFacts, PersonFacts
from shared.events import CloudEvent, EventData
from shared.events.consumer import RetryLater
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy

log = logging.getLogger("lingju.benefits.events")

PROGRAMS_FILE = Path(__file__).with_name("programs.toml")


@lru_cache(maxsize=1)
def programs() -> dict[str, Program]:
    return parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))


# -- published ----------------------------------------------------------------------------


class EnrollmentCreated(EventData):
    """An enrollment was prepared (by the system from an event, or by an officer): it waits
    for an officer's confirmation (``status`` pending_review) before anything is paid."""

    TYPE = "lingju.benefits.enrollment.created"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    status: str
    region_code: str
    starts_on: date
    pays_from: str  # "YYYY-MM": the first period owed once confirmed
    pays_until: str | None = None  # the last one; None: open-ended
    source: str  # certificate | child_born | death | age_sweep | application
    source_ref: str


class EnrollmentEnded(EventData):
    """An enrollment ended: nothing is due for periods after ``ends_after`` ("YYYY-MM")."""

    TYPE = "lingju.benefits.enrollment.ended"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    reason: str  # certificate_revoked | death | child_died | age_out | rejected
    reason_name: str  # zh, for the message (domain.enrollments.ENDED_ZH)
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


class EnrollmentSuspended(EventData):
    """Payments stop until the enrollment is resumed (``reason`` says why, in zh-CN)."""

    TYPE = "lingju.benefits.enrollment.suspended"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    reason: str
    region_code: str


class EnrollmentResumed(EventData):
    """A suspended enrollment is paid again; the months owed meanwhile are back pay in the
    program's next run."""

    TYPE = "lingju.benefits.enrollment.resumed"
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    region_code: str


class ClaimDecided(EventData):
    """An officer approved (possibly less than asked, under the couple's cap) or rejected a
    claim; the claimant is told. An approved claim is paid by the program's next run."""

    TYPE = "lingju.benefits.claim.decided"
    claim_id: str
    claim_no: str
    program: str
    program_name: str
    person_id: str
    decision: str  # approved | rejected
    decision_name: str  # zh, for the message: 已核准 … 元 / 未予核准
    requested_fen: int
    approved_fen: int | None = None
    comment: str | None = None
    region_code: str


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
    certificate_no: str | None = None
    certificate_type: str
    holder_ids: list[str]
    child_id: str | None = None
    region_code: str
    issued_on: date


class CertificateRevokedView(ConsumedData):
    certificate_id: str
    certificate_type: str
    revoked_on: date


class FamilyRegisteredView(ConsumedData):
    family_id: str
    wife_id: str
    husband_id: str
    marriage_date: date
    region_code: str
    children_ids: list[str] = Field(default_factory=list)


class FamilyChildLinkedView(ConsumedData):
    family_id: str
    child_id: str
    wife_id: str
    husband_id: str


class ChildBornView(ConsumedData):
    child_id: str
    mother_id: str
    father_id: str | None = None
    birth_date: date
    region_code: str
    family_id: str | None = None


class PersonDiedView(ConsumedData):
    person_id: str
    date_of_death: date
    # The parents whose only child the deceased was (empty: nobody's only child).
    only_child_of: list[str] = Field(default_factory=list)


# -- handlers ---------------------------------------------------------------------------------


async def on_person_facts(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep benefits' copy of the person's facts."""
    data = PersonRegisteredView.model_validate(event.data)
    await apply_copy(
        uow, PersonFacts, "person_id", data.model_dump(exclude={"version"}), data.version
    )


async def _require_persons(uow: UnitOfWork, person_ids: list[str], why: str) -> None:
    """Retry later unless benefits has the facts of every one of ``person_ids``: registry
    announces a person before anything about them, but replicas do not keep that order."""
    for person_id in person_ids:
        if await uow.session.get(PersonFacts, person_id) is None:
            raise RetryLater(f"{why}: person {person_id} not known yet")


async def on_certificate_issued(uow: UnitOfWork, event: CloudEvent) -> None:
    """Keep the certificate as a fact, link its holders to its child, and prepare (pending an
    officer's confirmation) every holder's enrollment in every program it founds, for the
    months the eligibility rules give from the issue month on."""
    data = CertificateIssuedView.model_validate(event.data)
    cert = await uow.session.get(CertificateFacts, data.certificate_id)
    revoked = cert is not None and cert.revoked_on is not None
    if not revoked:
        # Eligibility reads the holders' and the child's facts: wait for them.
        child = [data.child_id] if data.child_id else []
        await _require_persons(uow, [*data.holder_ids, *child], "certificate issued")
    if cert is None:
        cert = CertificateFacts(certificate_id=data.certificate_id, certificate_type="")
        uow.session.add(cert)
    # A revocation seen first left a bare row: fill in what the issue says, keep revoked_on.
    cert.certificate_type = data.certificate_type
    cert.certificate_no = data.certificate_no
    cert.holder_ids = list(data.holder_ids)
    cert.child_id = data.child_id
    cert.region_code = data.region_code
    cert.issued_on = data.issued_on
    for holder in data.holder_ids:
        if data.child_id:
            await enrolling.link_child(uow, holder, data.child_id)
    if revoked:
        log.info("certificate %s was revoked before its issue arrived", data.certificate_id)
        return
    await uow.flush()  # load_facts reads the links and the certificate just written
    issued = Period.of(data.issued_on)
    for program in programs_founded_by(data.certificate_type, programs()):
        for person_id in data.holder_ids:
            await enrolling.found(
                uow,
                program,
                person_id,
                payee_id=person_id,
                source="certificate",
                source_ref=data.certificate_id,
                starts_on=data.issued_on,
                not_before=issued,
            )


async def on_certificate_revoked(uow: UnitOfWork, event: CloudEvent) -> None:
    """End the enrollments the certificate founded (pending ones too); paid through the month
    of revocation."""
    data = CertificateRevokedView.model_validate(event.data)
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
    founded = await enrolling.open_enrollments(
        uow.session,
        Enrollment.source == "certificate",
        Enrollment.source_ref == data.certificate_id,
    )
    for enrollment in founded:
        await enrolling.end(uow, enrollment.id, end)


async def on_family_registered(uow: UnitOfWork, event: CloudEvent) -> None:
    """Keep the couple, and link both spouses to every child registered with them."""
    data = FamilyRegisteredView.model_validate(event.data)
    if await uow.session.get(FamilyFacts, data.family_id) is None:
        uow.session.add(
            FamilyFacts(
                family_id=data.family_id,
                wife_id=data.wife_id,
                husband_id=data.husband_id,
                region_code=data.region_code,
                marriage_date=data.marriage_date,
            )
        )
    for child_id in data.children_ids:
        for parent_id in (data.wife_id, data.husband_id):
            await enrolling.link_child(uow, parent_id, child_id, data.family_id)


async def on_family_child_linked(uow: UnitOfWork, event: CloudEvent) -> None:
    """A child linked to a family later: who is an only child decides the only-child programs."""
    data = FamilyChildLinkedView.model_validate(event.data)
    for parent_id in (data.wife_id, data.husband_id):
        await enrolling.link_child(uow, parent_id, data.child_id, data.family_id)


async def on_child_born(uow: UnitOfWork, event: CloudEvent) -> None:
    """Link the parents to the newborn and prepare its childcare subsidy, paid to the mother."""
    data = ChildBornView.model_validate(event.data)
    await _require_persons(uow, [data.child_id], "child born")
    for parent_id in (data.mother_id, data.father_id):
        if parent_id:
            await enrolling.link_child(uow, parent_id, data.child_id, data.family_id)
    await uow.flush()
    childcare = [p for p in programs().values() if p.eligibility.rule == "childcare_subsidy"]
    for program in childcare:
        await enrolling.found(
            uow,
            program,
            data.child_id,
            payee_id=data.mother_id,
            source="child_born",
            source_ref=data.child_id,
            starts_on=data.birth_date,
        )


async def on_person_died(uow: UnitOfWork, event: CloudEvent) -> None:
    """Nothing is paid after the month of death: end the deceased's enrollments (recording
    any month already sent as a correction), hold those the deceased was only paid for, end
    the parents' only-child reward, and prepare the parents' special assistance."""
    data = PersonDiedView.model_validate(event.data)
    await _require_persons(uow, [data.person_id, *data.only_child_of], "person died")
    await enrolling.record_death(uow, data.person_id, data.date_of_death, data.only_child_of)


HANDLERS = {
    "lingju.registry.person.registered": on_person_facts,
    "lingju.registry.person.updated": on_person_facts,
    "lingju.registry.certificate.issued": on_certificate_issued,
    "lingju.registry.certificate.revoked": on_certificate_revoked,
    "lingju.registry.family.registered": on_family_registered,
    "lingju.registry.family.child_linked": on_family_child_linked,
    "lingju.registry.child.born": on_child_born,
    "lingju.registry.person.died": on_person_died,
}
