"""Registry tables (its own database): persons, applications, their action log, certificates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.crypto import EncryptedColumn
from shared.db import UtcDateTime, utcnow
from shared.tables import kernel_tables


class Base(SQLModel, registry=registry()):
    pass


metadata = Base.metadata
KERNEL = kernel_tables(metadata)


# The associated data of each encrypted column (and the context of its blind index, if any).
ID_CONTEXT = "registry.persons.id_number"
PHONE_CONTEXT = "registry.persons.phone"
CAUSE_CONTEXT = "registry.deaths.cause"


def _ts() -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime)


class Person(Base, table=True):
    """A resident (户籍 registered or 流动 floating population)."""

    __tablename__ = "persons"

    id: str = Field(primary_key=True, max_length=36)
    # The ID number exists only encrypted (AES-GCM) plus a keyed blind index for lookups.
    # A newborn often has no ID number yet: both are then null (the index stays unique).
    id_number_enc: str | None = Field(default=None, max_length=200)
    id_number_index: str | None = Field(default=None, max_length=64, unique=True)
    name: str = Field(max_length=50)
    sex: str = Field(max_length=6)
    birth_date: date
    # The phone likewise (personal information, PIPL): ciphertext plus a keyed blind index for
    # the officers' search by phone. Not unique: a family may share one.
    phone_enc: str | None = Field(default=None, max_length=200)
    phone_index: str | None = Field(default=None, max_length=64, index=True)
    region_code: str = Field(max_length=12, index=True)
    residency: str = Field(max_length=12)
    household_type: str = Field(max_length=8)
    # single | married | divorced | widowed (婚姻状况)
    marital_status: str = Field(default="unknown", max_length=10)
    died_on: date | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = 1


class Application(Base, table=True):
    """A certificate application (证件申请)."""

    __tablename__ = "applications"

    id: str = Field(primary_key=True, max_length=36)
    application_no: str = Field(max_length=32, unique=True)
    type: str = Field(max_length=40)
    applicant_id: str = Field(foreign_key="persons.id", max_length=36, index=True)
    subjects: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    materials: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    status: str = Field(max_length=20, index=True)
    level_index: int = 0
    region_code: str = Field(max_length=12, index=True)
    due_date: date
    submitted_by: str = Field(max_length=200)
    submitted_by_role: str = Field(max_length=20)
    submitted_via: str = Field(default="self", max_length=10)  # self | agent (代办)
    # Set once by the deadline sweep, when the overdue notice went out (限时办结).
    overdue_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = 1


class ApplicationAction(Base, table=True):
    """Every step of an application: who, when, what, why."""

    __tablename__ = "application_actions"

    id: int | None = Field(default=None, primary_key=True)
    application_id: str = Field(foreign_key="applications.id", max_length=36, index=True)
    action: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    actor_role: str = Field(max_length=20)
    level: str | None = Field(default=None, max_length=20)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    comment: str | None = Field(default=None, max_length=1000)
    at: datetime = _ts()


class ProgressFailure(Base, table=True):
    """A wrong phone ending asked for an application number, known or not: the public progress
    query's lockout counts these (across replicas); rows older than the window are pruned."""

    __tablename__ = "progress_failures"
    __table_args__ = (Index("ix_progress_failures_number_at", "application_no", "failed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    application_no: str = Field(max_length=64)  # as asked (a digest when longer)
    # On the service's clock (``uow.clock``), not utcnow: tests move through the window.
    failed_at: datetime = Field(sa_type=UtcDateTime, index=True)


class CertificateSequence(Base, table=True):
    """The last certificate number used per county and year: numbers are never reused."""

    __tablename__ = "certificate_sequences"

    county_code: str = Field(primary_key=True, max_length=6)
    year: int = Field(primary_key=True)
    last: int = 0


class Certificate(Base, table=True):
    __tablename__ = "certificates"

    id: str = Field(primary_key=True, max_length=36)
    certificate_no: str = Field(max_length=40, unique=True)
    application_id: str = Field(foreign_key="applications.id", max_length=36, unique=True)
    type: str = Field(max_length=40)
    holder_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    child_id: str | None = Field(default=None, max_length=36)
    region_code: str = Field(max_length=12)
    issued_on: date
    valid_until: date | None = None
    status: str = Field(default="valid", max_length=10)  # valid | revoked
    revoked_on: date | None = None
    revoke_reason: str | None = Field(default=None, max_length=1000)
    # Handed over at the office, to an agent, or downloaded by the holder (领取).
    collected_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    collected_via: str | None = Field(default=None, max_length=10)
    created_at: datetime = _ts()


class Family(Base, table=True):
    """A couple (夫妻) with their marriage date; children are linked in ``family_children``."""

    __tablename__ = "families"

    id: str = Field(primary_key=True, max_length=36)
    wife_id: str = Field(foreign_key="persons.id", max_length=36, index=True)
    husband_id: str = Field(foreign_key="persons.id", max_length=36, index=True)
    marriage_date: date
    # The wife's division code: births take the mother's region, and so does the family.
    region_code: str = Field(max_length=12, index=True)
    status: str = Field(default="current", max_length=10)  # current | dissolved
    # "<wife_id>:<husband_id>" while current, null once dissolved: a unique key, so one couple
    # has one current family even when two officers register it at the same moment.
    couple_key: str | None = Field(default=None, max_length=80, unique=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = 1


class FamilyChild(Base, table=True):
    """A child of a family (linked at registration, at birth, or later)."""

    __tablename__ = "family_children"

    family_id: str = Field(foreign_key="families.id", primary_key=True, max_length=36)
    child_id: str = Field(foreign_key="persons.id", primary_key=True, max_length=36, index=True)
    linked_by: str = Field(max_length=200)
    linked_at: datetime = _ts()


class Birth(Base, table=True):
    """A birth (出生登记): the facts of the event; the child itself is a Person."""

    __tablename__ = "births"

    id: str = Field(primary_key=True, max_length=36)
    child_id: str = Field(foreign_key="persons.id", max_length=36, unique=True)
    mother_id: str = Field(foreign_key="persons.id", max_length=36, index=True)
    father_id: str | None = Field(default=None, foreign_key="persons.id", max_length=36)
    family_id: str | None = Field(default=None, foreign_key="families.id", max_length=36)
    birth_date: date
    hospital: str = Field(max_length=200)
    # 出生医学证明编号: one birth, one certificate, so a birth cannot be registered twice.
    birth_certificate_no: str = Field(max_length=40, unique=True)
    source: str = Field(max_length=10)  # officer | hospital
    recorded_by: str = Field(max_length=200)
    created_at: datetime = _ts()


class Death(Base, table=True):
    """A death report; the primary key makes a person die once."""

    __tablename__ = "deaths"

    person_id: str = Field(foreign_key="persons.id", primary_key=True, max_length=36)
    date_of_death: date
    # The cause is health information (PIPL sensitive personal information): encrypted.
    cause_enc: str | None = Field(default=None, max_length=2000)
    reported_by: str = Field(max_length=200)
    source: str = Field(max_length=10)  # officer | hospital
    recorded_by: str = Field(max_length=200)
    created_at: datetime = _ts()


class HospitalReport(Base, table=True):
    """A birth or death the health bureau reported, by its external reference (idempotency)."""

    __tablename__ = "hospital_reports"

    external_ref: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=10)  # birth | death
    # Keyed digest (HMAC) of the canonical body: a different body under the same reference
    # is refused; keyed, so the digest of a body holding an ID number reveals nothing.
    request_hash: str = Field(max_length=64)
    person_id: str | None = Field(default=None, foreign_key="persons.id", max_length=36)
    family_id: str | None = Field(default=None, foreign_key="families.id", max_length=36)
    status_code: int = 201
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_by: str = Field(max_length=200)
    created_at: datetime = _ts()


# Every column of the registry holding FieldCipher ciphertext, for key rotation (``lingju
# reencrypt``). Hospital report bodies are not stored (only a keyed digest and the answer,
# which masks the ID number), so there is nothing of theirs to list.
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("persons", "id_number_enc", ID_CONTEXT),
    EncryptedColumn("persons", "phone_enc", PHONE_CONTEXT),
    EncryptedColumn("deaths", "cause_enc", CAUSE_CONTEXT, key="person_id"),
)
