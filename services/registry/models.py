"""Registry tables (its own database): persons, applications, their action log, certificates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column
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


class Person(Base, table=True):
    """A resident (户籍 registered or 流动 floating population)."""

    __tablename__ = "persons"

    id: str = Field(primary_key=True, max_length=36)
    # The ID number exists only encrypted (AES-GCM) plus a keyed blind index for lookups.
    id_number_enc: str = Field(max_length=200)
    id_number_index: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=50)
    sex: str = Field(max_length=6)
    birth_date: date
    phone: str | None = Field(default=None, max_length=20)
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
    status: str = Field(default="valid", max_length=10)
    created_at: datetime = _ts()
