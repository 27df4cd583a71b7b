"""Benefits tables (its own database).

- read models fed by registry events (persons, families, child links, certificates): benefits
  never calls the registry to decide;
- enrollments (program membership, maker-checker confirmed);
- payment runs: the run, its frozen rate table and its lines (the snapshot), payee accounts,
  and the append-only ledger of every fen paid or corrected;
- claims of capped programs and their per-couple cap counters.

Periods are "YYYY-MM" strings: they sort as the months do, in SQL as in Python.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.crypto import EncryptedColumn
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


OPEN_STATUSES = ("pending_review", "active", "suspended")


class Enrollment(Base, table=True):
    """A person's membership in a benefit program (待遇资格).

    pending_review -> active (confirmed by an officer other than ``prepared_by``) ->
    suspended / ended. At most one open enrollment per (program, person): a partial unique
    index says so to the database, whatever the handlers do.
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("program", "person_id", "source_ref"),
        Index(
            "uq_enrollments_open",
            "program",
            "person_id",
            unique=True,
            sqlite_where=text("status IN ('pending_review', 'active', 'suspended')"),
            postgresql_where=text("status IN ('pending_review', 'active', 'suspended')"),
        ),
        Index("ix_enrollments_run", "program", "status", "region_code"),
    )

    id: str = Field(primary_key=True, max_length=36)
    program: str = Field(max_length=40)
    person_id: str = Field(max_length=36, index=True)  # the beneficiary (for childcare: the child)
    payee_id: str = Field(max_length=36, index=True)  # whose account is paid (a parent for a child)
    case: str = Field(
        default="", max_length=20
    )  # which amount applies: child_died / child_disabled
    status: str = Field(max_length=20)  # pending_review | active | suspended | ended
    status_reason: str | None = Field(default=None, max_length=200)  # why suspended
    region_code: str = Field(max_length=12, index=True)
    source: str = Field(max_length=20)  # certificate | child_born | death | age_sweep | application
    source_ref: str = Field(max_length=40)  # e.g. the certificate id
    starts_on: date
    pays_from: str = Field(max_length=7)  # first period owed ("YYYY-MM")
    pays_until: str | None = Field(default=None, max_length=7)  # last period owed; None: open
    settled_through: str | None = Field(default=None, max_length=7)  # last period sent to the bank
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    prepared_by: str = Field(max_length=80)  # maker: an officer's sub, or "system"
    confirmed_by: str | None = Field(default=None, max_length=80)  # checker
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ended_reason: str | None = Field(
        default=None, max_length=30
    )  # death | certificate_revoked | age_out
    ends_after: str | None = Field(default=None, max_length=7)  # last period paid, "YYYY-MM"
    created_at: datetime = _ts()
    version: int = 1


class CertificateFacts(Base, table=True):
    """A certificate registry issued or revoked. A revocation seen before its issue is kept
    (issued fields empty) so the late issue founds nothing."""

    __tablename__ = "certificate_facts"

    certificate_id: str = Field(primary_key=True, max_length=36)
    certificate_type: str = Field(max_length=40)
    certificate_no: str | None = Field(default=None, max_length=40)
    holder_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    child_id: str | None = Field(default=None, max_length=36)
    region_code: str | None = Field(default=None, max_length=12)
    issued_on: date | None = None
    revoked_on: date | None = None
    created_at: datetime = _ts()


class FamilyFacts(Base, table=True):
    """A couple registry registered as a family (from registry.family.registered)."""

    __tablename__ = "family_facts"

    family_id: str = Field(primary_key=True, max_length=36)
    wife_id: str = Field(max_length=36, index=True)
    husband_id: str = Field(max_length=36, index=True)
    region_code: str = Field(max_length=12)
    marriage_date: date
    created_at: datetime = _ts()


class ChildLink(Base, table=True):
    """A parent and child (from family.registered children and child.born)."""

    __tablename__ = "child_links"

    parent_id: str = Field(primary_key=True, max_length=36)
    child_id: str = Field(primary_key=True, max_length=36, index=True)
    family_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = _ts()


class PayeeAccount(Base, table=True):
    """The bank account a person's benefits are paid into (代发账户); the number encrypted."""

    __tablename__ = "payee_accounts"

    person_id: str = Field(primary_key=True, max_length=36)
    account_name: str = Field(max_length=60)
    bank_name: str = Field(max_length=60)
    account_no_enc: str = Field(max_length=200)  # FieldCipher token: PAYEE_ACCOUNT_NO below
    account_no_masked: str = Field(max_length=40)
    updated_by: str = Field(max_length=80)
    updated_at: datetime = _ts()
    version: int = 1


class PaymentRun(Base, table=True):
    """One program's payment for one period and region (发放批次): draft -> approved ->
    exported -> reconciled. Idempotent per (program, period, region)."""

    __tablename__ = "payment_runs"
    __table_args__ = (UniqueConstraint("program", "period", "region"),)

    id: str = Field(primary_key=True, max_length=36)
    code: str = Field(max_length=60, unique=True)  # the bank-facing batch reference
    program: str = Field(max_length=40)
    period: str = Field(max_length=7)
    region: str = Field(max_length=12)  # division-code prefix the run covers
    status: str = Field(max_length=20)  # draft | approved | exported | reconciled
    line_count: int = 0  # lines in the disbursement file
    total_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    held_count: int = 0  # lines held back (no account on file)
    paid_count: int = 0
    paid_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    failed_count: int = 0
    failed_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    prepared_by: str = Field(max_length=80)
    approved_by: str | None = Field(default=None, max_length=80)
    approved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    exported_by: str | None = Field(default=None, max_length=80)
    exported_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reconciled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _ts()
    version: int = 1


class RunRate(Base, table=True):
    """The frozen rate table of a run: fen due for one month, per region code and case."""

    __tablename__ = "run_rates"

    run_id: str = Field(primary_key=True, max_length=36)
    region_code: str = Field(primary_key=True, max_length=12)
    case: str = Field(primary_key=True, max_length=20)
    period: str = Field(primary_key=True, max_length=7)
    monthly_fen: int


class PaymentLine(Base, table=True):
    """One entitlement of a run (the snapshot): who, which months, how much, into which account."""

    __tablename__ = "payment_lines"
    __table_args__ = (
        UniqueConstraint("run_id", "line_no"),
        Index("ix_payment_lines_run_status", "run_id", "status"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    run_id: str = Field(max_length=36)
    line_no: int
    enrollment_id: str | None = Field(default=None, max_length=36, index=True)
    claim_id: str | None = Field(default=None, max_length=36)
    person_id: str = Field(max_length=36)
    payee_id: str = Field(max_length=36, index=True)
    program: str = Field(max_length=40)
    region_code: str = Field(max_length=12)
    period_from: str = Field(max_length=7)
    period_until: str = Field(max_length=7)
    months: int = 0
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    settled_before: str | None = Field(default=None, max_length=7)  # to roll back on failure
    account_no_enc: str | None = Field(default=None, max_length=200)  # LINE_ACCOUNT_NO below
    account_name: str | None = Field(default=None, max_length=60)
    status: str = Field(max_length=12)  # pending | held | exported | paid | failed
    failure_reason: str | None = Field(default=None, max_length=200)


class LedgerEntry(Base, table=True):
    """Append-only: every fen paid, reversed or corrected (UPDATE and DELETE are refused by
    database triggers, migration 0005)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_enrollment_period", "enrollment_id", "period_from"),)

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    person_id: str = Field(max_length=36, index=True)
    payee_id: str = Field(max_length=36, index=True)
    program: str = Field(max_length=40)
    enrollment_id: str | None = Field(default=None, max_length=36)
    claim_id: str | None = Field(default=None, max_length=36)
    run_id: str | None = Field(default=None, max_length=36)
    line_id: int | None = None
    kind: str = Field(max_length=12)  # payment | reversal | correction
    period_from: str = Field(max_length=7)
    period_until: str = Field(max_length=7)
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))  # signed
    reason: str = Field(max_length=300)  # zh-CN: why this money moved
    created_at: datetime = _ts()


class Claim(Base, table=True):
    """A reimbursement claim of a capped program (报销申请): submitted -> approved / rejected ->
    paid (by the program's next payment run)."""

    __tablename__ = "claims"

    id: str = Field(primary_key=True, max_length=36)
    claim_no: str = Field(max_length=40, unique=True)
    program: str = Field(max_length=40)
    person_id: str = Field(max_length=36, index=True)
    couple_key: str = Field(max_length=36, index=True)  # the family id, or the person's id
    region_code: str = Field(max_length=12, index=True)
    requested_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    approved_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    status: str = Field(max_length=12)  # submitted | approved | rejected | paid
    description: str = Field(max_length=500)
    receipts: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    submitted_by: str = Field(max_length=80)
    decided_by: str | None = Field(default=None, max_length=80)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decision_comment: str | None = Field(default=None, max_length=500)
    run_id: str | None = Field(default=None, max_length=36, index=True)
    created_at: datetime = _ts()
    version: int = 1


class ClaimCap(Base, table=True):
    """Cumulative approved amount per couple and capped program; the cap is enforced by one
    conditional UPDATE (used_fen + x <= cap_fen), so concurrent approvals never exceed it."""

    __tablename__ = "claim_caps"

    program: str = Field(primary_key=True, max_length=40)
    couple_key: str = Field(primary_key=True, max_length=36)
    cap_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    used_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


# -- encrypted columns (key rotation: ``lingju reencrypt``, shared/rotation.py) --------------------

# Both account number columns were once written under this one context; still read under it
# until the rotation rewrites them.
LEGACY_ACCOUNT_CONTEXT = "account_no"
PAYEE_ACCOUNT_NO = EncryptedColumn(
    "payee_accounts",
    "account_no_enc",
    "benefits.payee_accounts.account_no",
    key="person_id",
    previous_contexts=(LEGACY_ACCOUNT_CONTEXT,),
)
# A drafted line snapshots its payee's account token as is, copied by the set-based line INSERT
# (a million lines: re-encrypting each there would more than double the draft), so a line also
# reads the payee accounts' context until the rotation rewrites the line with its own. This
# admits no value a line could not hold anyway: any payee's account is what a line carries.
LINE_ACCOUNT_NO = EncryptedColumn(
    "payment_lines",
    "account_no_enc",
    "benefits.payment_lines.account_no",
    previous_contexts=(PAYEE_ACCOUNT_NO.context, LEGACY_ACCOUNT_CONTEXT),
)
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (PAYEE_ACCOUNT_NO, LINE_ACCOUNT_NO)
