"""Tables every service keeps in its own database: outbox, inbox, dead letters, idempotency.

They are plain SQLAlchemy Core tables added to the service's own metadata, so each service's
Alembic migrations create them in its database and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from shared.audit import AuditTables
from shared.db import UtcDateTime

_BigId = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class KernelTables:
    outbox: Table
    inbox: Table
    dead_letters: Table
    idempotency: Table
    audit: AuditTables


def kernel_tables(metadata: MetaData) -> KernelTables:
    outbox = Table(
        # Integration-event log, written in the business transaction (transactional outbox).
        "outbox",
        metadata,
        Column("seq", _BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        Index("ix_outbox_pending", "published_at", "seq"),
    )
    inbox = Table(
        # Event ids a consumer has applied, committed with the effect (idempotent inbox).
        "event_inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("consumer", String(100), nullable=False),
        Column("stream", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("event_id", String(100), nullable=True),
        Column("event_type", String(200), nullable=True),
        Column("payload", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("status", String(20), nullable=False),  # dead | replayed
        Column("created_at", UtcDateTime, nullable=False),
        Column("replayed_at", UtcDateTime, nullable=True),
        Index("ix_dead_letters_status", "status", "created_at"),
    )
    idempotency = Table(
        "idempotency_keys",
        metadata,
        Column("principal", String(200), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
    )
    audit = AuditTables(
        # Who read or changed a person's record, hash-chained (shared/audit.py).
        log=Table(
            "audit_log",
            metadata,
            Column("seq", _BigId, primary_key=True, autoincrement=False),
            Column("at", UtcDateTime, nullable=False),
            Column("actor", String(200), nullable=False),
            Column("role", String(40), nullable=False),
            Column("region", String(12), nullable=False),
            Column("route", String(200), nullable=False),
            Column("record", String(1000), nullable=False),
            # The persons the answer was about (JSON list of ids; shared.audit.persons_in).
            Column("persons", Text, nullable=False),
            Column("status", Integer, nullable=False),
            Column("request_id", String(64), nullable=False),
            Column("prev_hash", String(64), nullable=False),
            Column("hash", String(64), nullable=False),
            Index("ix_audit_log_actor", "actor", "seq"),
            Index("ix_audit_log_at", "at"),
        ),
        # One row: the chain's last sequence number and hash (appends lock it first).
        head=Table(
            "audit_head",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("seq", _BigId, nullable=False),
            Column("hash", String(64), nullable=False),
        ),
    )
    return KernelTables(outbox, inbox, dead_letters, idempotency, audit)
