"""Notify tables (its own database): contact directory, deliveries, the app inbox."""

from __future__ import annotations

from datetime import datetime
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


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UtcDateTime)
    return Field(default_factory=utcnow, sa_type=UtcDateTime)


class Contact(Base, table=True):
    """The contact directory, fed by registry events."""

    __tablename__ = "contacts"

    person_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=50)
    phone: str | None = Field(default=None, max_length=20)
    region_code: str = Field(max_length=12)
    source_version: int = 1  # the registry version this copy reflects
    updated_at: datetime = _ts()


class Delivery(Base, table=True):
    """One message to one recipient on one channel: at most one per (event, recipient, template)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "recipient_id", "template", "channel"),)

    id: str = Field(primary_key=True, max_length=36)
    event_id: str = Field(max_length=36)
    recipient_id: str = Field(max_length=36, index=True)
    template: str = Field(max_length=60)
    channel: str = Field(max_length=10)  # app | sms | wechat | webhook
    address: str | None = Field(default=None, max_length=200)
    body: str = Field(max_length=2000)
    status: str = Field(max_length=12, index=True)  # pending | sent | delivered | failed
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)
    # A failed send waits before its next attempt (exponential backoff).
    next_attempt_at: datetime | None = _ts(nullable=True)


class InboxMessage(Base, table=True):
    """A message in a resident's app inbox (站内信)."""

    __tablename__ = "inbox_messages"

    id: str = Field(primary_key=True, max_length=36)
    person_id: str = Field(max_length=36, index=True)
    delivery_id: str = Field(foreign_key="deliveries.id", max_length=36, unique=True)
    title: str = Field(max_length=100)
    body: str = Field(max_length=2000)
    created_at: datetime = _ts()
    read_at: datetime | None = _ts(nullable=True)
