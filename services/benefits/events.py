"""Events benefits publishes, its views of the events it consumes, and their handlers."""

from __future__ import annotations

import tomllib
import uuid
from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select

from services.benefits.domain.programs import Program, parse_programs, programs_founded_by
from services.benefits.models import Enrollment, PersonFacts
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


async def on_person_facts(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep benefits' copy of the person's facts."""
    data = PersonRegisteredView.model_validate(event.data)
    await apply_copy(
        uow, PersonFacts, "person_id", data.model_dump(exclude={"version"}), data.version
    )


async def on_certificate_issued(uow: UnitOfWork, event: CloudEvent) -> None:
    """Enroll every holder in every program the certificate founds (no double enrollment)."""
    data = CertificateIssuedView.model_validate(event.data)
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
            enrollment = Enrollment(
                id=str(uuid.uuid4()),
                program=program.code,
                person_id=person_id,
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


HANDLERS = {
    "lingju.registry.person.registered": on_person_facts,
    "lingju.registry.person.updated": on_person_facts,
    "lingju.registry.certificate.issued": on_certificate_issued,
}
