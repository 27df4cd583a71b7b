"""Benefits tables (its own database): its read model of persons, and enrollments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime, utcnow
from shared.tables import kernel_tables


class Base(SQLModel, registry=registry()):
    pass


metadata = Base.metadata
KERNEL = kernel_tables(metadata)


def _ts() -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime)


class PersonFacts(Base, table=True):
    """What benefits knows of a person, from registry events (never from registry's tables)."""

    __tablename__ = "person_facts"

    person_id: str = Field(primary_key=True, max_length=36)
    sex: str = Field(max_length=6)
    birth_date: date
    region_code: str = Field(max_length=12)
    household_type: str = Field(max_length=8)
    source_version: int = 1  # the registry version this copy reflects
    died_on: date | None = None  # from registry.person.died
    updated_at: datetime = _ts()


class Enrollment(Base, table=True):
    """A person's membership in a benefit program (待遇资格)."""

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("program", "person_id", "source_ref"),)

    id: str = Field(primary_key=True, max_length=36)
    program: str = Field(max_length=40)
    person_id: str = Field(max_length=36, index=True)
    status: str = Field(max_length=20)  # pending_review | active | suspended | ended
    region_code: str = Field(max_length=12, index=True)
    source: str = Field(max_length=20)  # certificate | application
    source_ref: str = Field(max_length=40)  # e.g. the certificate id
    starts_on: date
    ended_reason: str | None = Field(default=None, max_length=30)  # death | certificate_revoked
    ends_after: str | None = Field(default=None, max_length=7)  # last period paid, "YYYY-MM"
    created_at: datetime = _ts()
    version: int = 1


class RevokedCertificate(Base, table=True):
    """A certificate registry revoked: kept so an issue seen late founds nothing."""

    __tablename__ = "revoked_certificates"

    certificate_id: str = Field(primary_key=True, max_length=36)
    revoked_on: date
    created_at: datetime = _ts()
