"""Visits tables (its own database). Plans, tasks and visit records come with the visits issue."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime, utcnow
from shared.tables import kernel_tables


class Base(SQLModel, registry=registry()):
    pass


metadata = Base.metadata
KERNEL = kernel_tables(metadata)


class PersonFacts(Base, table=True):
    """What visits knows of a person, from registry events (never from registry's tables)."""

    __tablename__ = "person_facts"

    person_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=50)
    sex: str = Field(max_length=6)
    birth_date: date
    region_code: str = Field(max_length=12, index=True)
    source_version: int = 1  # the registry version this copy reflects
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
