"""Visits tables (its own database).

- ``person_facts``: visits' copy of a person, fed by registry events;
- ``assignments``: who is responsible for an area (village / township / district) at a tier;
- ``tasks``: follow-up tasks generated from events (see ``tasks.py``). A task keeps its window
  and whether it was closed; scheduled / due / overdue / missed are derived from the dates and
  today, never stored (DESIGN §5);
- ``stations``, ``slots`` and ``appointments``: checks booked at a station. A slot's ``booked``
  count is only moved by conditional UPDATEs (see ``appointments.py``), so it never exceeds
  ``capacity`` whatever the concurrency;
- ``visit_records``: what a worker did on a task, keyed by the id the phone made (a record
  sent twice is one visit), with the person's consent or refusal (知情选择);
- ``procedures``: procedures done at a station, with consent; each starts its follow-up plan;
  what a record or a procedure says of the person's health is stored encrypted
  (``ENCRYPTED_COLUMNS`` at the end);
- ``sync_log``: what changed, for whom, in the order phones must read it (``sync.py``); written
  only by database triggers on ``tasks`` and ``person_facts`` (migration 0006), so no write
  path can forget it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.crypto import EncryptedColumn
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
    # From person.died: no plan starts for a person who has died (events are not ordered).
    died_on: date | None = Field(default=None, nullable=True)
    source_version: int = 1  # the registry version this copy reflects
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Station(Base, table=True):
    """A township health station or a district guidance station (乡镇卫生院 / 区县妇幼保健站)."""

    __tablename__ = "stations"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=100)
    region_code: str = Field(max_length=12, index=True)  # the township (9) or district (6) served
    tier: str = Field(max_length=10)  # township | district
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Slot(Base, table=True):
    """A time at a station for one service, with a number of seats (号源)."""

    __tablename__ = "slots"
    __table_args__ = (
        # The database itself refuses an overbooked or negative count, whatever the code does.
        CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_slots_booked"),
        CheckConstraint("capacity > 0", name="ck_slots_capacity"),
        Index("ix_slots_station_starts", "station_id", "starts_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    station_id: str = Field(max_length=36, foreign_key="stations.id")
    service: str = Field(max_length=40, index=True)
    starts_at: datetime = Field(sa_type=UtcDateTime, index=True)
    ends_at: datetime = Field(sa_type=UtcDateTime)
    capacity: int
    booked: int = 0
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    version: int = 1


LIVE_APPOINTMENT = "status = 'booked'"


class Appointment(Base, table=True):
    """A person's seat in a slot: booked -> cancelled / attended / no_show.

    At most one live (booked) appointment per person and slot: a partial unique index says so.
    The regions are copied at booking so staff lists filter without joining.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        Index(
            "uq_appointments_live",
            "slot_id",
            "person_id",
            unique=True,
            sqlite_where=text(LIVE_APPOINTMENT),
            postgresql_where=text(LIVE_APPOINTMENT),
        ),
        Index("ix_appointments_created", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    slot_id: str = Field(max_length=36, foreign_key="slots.id", index=True)
    person_id: str = Field(max_length=36, index=True)
    person_region: str = Field(max_length=12, index=True)
    station_id: str = Field(max_length=36, index=True)
    station_region: str = Field(max_length=12, index=True)
    status: str = Field(max_length=10)  # booked | cancelled | attended | no_show
    booked_by: str = Field(max_length=80)  # the caller's sub
    booked_by_role: str = Field(max_length=20)
    closed_by: str | None = Field(default=None, max_length=80)  # who cancelled or recorded it
    reminded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    version: int = 1


class Assignment(Base, table=True):
    """Who does an area's tasks of a tier: a village worker for a village (12 digits), a
    township station for a township (9), a district guidance station for a district (6)."""

    __tablename__ = "assignments"

    area_code: str = Field(primary_key=True, max_length=12)
    tier: str = Field(primary_key=True, max_length=10)  # village | township | district
    assignee_sub: str = Field(max_length=80)
    assignee_name: str = Field(max_length=100)
    updated_by: str = Field(max_length=80)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    version: int = 1


OPEN_TASK = "closed IS NULL"


class Task(Base, table=True):
    """One run of one step of a plan for one person.

    The unique key is what generation inserts against: the same event delivered twice (or
    published twice with different event ids) finds its tasks already there.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint(
            "plan", "step", "occurrence", "person_id", "source_ref", name="uq_tasks_generation"
        ),
        CheckConstraint(
            "closed IS NULL OR closed IN ('done', 'cancelled', 'declined')", name="ck_tasks_closed"
        ),
        CheckConstraint("due_on < expires_on AND overdue_on <= expires_on", name="ck_tasks_window"),
        # The working lists: a worker's open tasks, an area's open tasks by date.
        Index("ix_tasks_assignee_due", "assignee", "due_on"),
        Index("ix_tasks_region_due", "region_code", "due_on"),
        Index(
            "ix_tasks_open_due",
            "due_on",
            sqlite_where=text(OPEN_TASK),
            postgresql_where=text(OPEN_TASK),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    plan: str = Field(max_length=64)
    step: str = Field(max_length=64)
    occurrence: int = 0  # 0 = the first run of the step; repeats count up
    person_id: str = Field(max_length=36, index=True)
    region_code: str = Field(max_length=12)  # the person's village when generated
    tier: str = Field(max_length=10)
    assignee: str | None = Field(default=None, max_length=80)  # None: no assignment yet
    anchor_on: date
    due_on: date
    overdue_on: date
    expires_on: date
    closed: str | None = Field(default=None, max_length=10)  # None | done | cancelled | declined
    closed_reason: str | None = Field(default=None, max_length=200)
    source_ref: str = Field(max_length=80)  # the subject of the event that started the plan
    due_announced_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    overdue_announced_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class VisitRecord(Base, table=True):
    """One visit made on a task. The id comes from the worker's phone, so a record re-sent after
    a lost answer (or from an offline batch) is recognised as the same visit.

    What the worker wrote down (place, findings, notes) is health data (PIPL sensitive personal
    information): stored only as ``FieldCipher`` ciphertext (``*_enc``, see
    ``ENCRYPTED_COLUMNS``), decrypted by ``records.py`` when a record is read. The columns in
    clear are each needed by a query or a check, as noted on each.
    """

    __tablename__ = "visit_records"
    __table_args__ = (
        CheckConstraint("consent IN ('given', 'refused')", name="ck_visit_records_consent"),
        CheckConstraint(
            "next_step IS NULL OR next_step IN ('extra_visit', 'referral')",
            name="ck_visit_records_next_step",
        ),
    )

    # Clear: the phone's id, what a re-sent record is recognised by (primary key).
    id: str = Field(primary_key=True, max_length=36)
    # Clear: a task's visits are listed by it (and it joins the task).
    task_id: str = Field(max_length=36, foreign_key="tasks.id", index=True)
    # Clear: a person's visits are found by it.
    person_id: str = Field(max_length=36, index=True)
    # Clear: the staff account that recorded it, checked when a record is sent again; it is
    # normally the task's assignee, whose account is in clear on ``tasks`` anyway (the working
    # lists filter on it), so encrypting it would hide nothing.
    performer_sub: str = Field(max_length=80)
    performer_role: str = Field(max_length=20)  # clear: a role code, with performer_sub
    performed_at: datetime = Field(sa_type=UtcDateTime)  # clear: a task's visits sort by it
    place_enc: str = Field(sa_type=Text)  # ciphertext: where the visit was made (free text)
    # Clear: a status (CHECK above); a refusal closed the task as declined, which is in clear
    # on ``tasks`` anyway.
    consent: str = Field(max_length=8)  # given | refused
    consent_note_enc: str | None = Field(default=None, sa_type=Text)  # ciphertext, e.g. why
    # Ciphertext of the findings as JSON (structured per service, free text allowed).
    findings_enc: str = Field(sa_type=Text)
    # Clear: a code (CHECK above) and a date, which the task the next step made shows anyway.
    next_step: str | None = Field(default=None, max_length=12)  # extra_visit | referral
    next_step_on: date | None = Field(default=None, nullable=True)
    next_step_note_enc: str | None = Field(default=None, sa_type=Text)  # ciphertext
    # Clear: the task the next step created, if any (an id, joined on).
    next_task_id: str | None = Field(default=None, max_length=36)
    task_version: int  # clear: the version of the task the record was made against
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Procedure(Base, table=True):
    """A procedure done at a station (IUD insertion, sterilization ...), always with consent:
    a refusal means no procedure, so there is no row for it.

    What was done and by whom are health data: stored only as ``FieldCipher`` ciphertext. The
    follow-up plan the procedure starts is found in code after decrypting (``records.py``), so
    no query needs them.
    """

    __tablename__ = "procedures"
    __table_args__ = (
        CheckConstraint("consent_given", name="ck_procedures_consent"),
        Index("ix_procedures_person_on", "person_id", "performed_on"),
    )

    id: str = Field(primary_key=True, max_length=36)  # clear: the key a re-send is found by
    person_id: str = Field(max_length=36)  # clear: a person's procedures (index above)
    # Clear: region checks and lists filter on it. The person's village when recorded.
    region_code: str = Field(max_length=12, index=True)
    procedure_enc: str = Field(sa_type=Text)  # ciphertext of the procedure's code
    performed_on: date  # clear: a person's procedures by date (index above)
    station_id: str = Field(max_length=36, foreign_key="stations.id")  # clear: joins stations
    performer_sub_enc: str = Field(sa_type=Text)  # ciphertext: who did it
    performer_role: str = Field(max_length=20)  # clear: a role code
    consent_given: bool = True  # clear: the CHECK above holds it true
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class SyncLog(Base, table=True):
    """The latest change of an entity as seen from one scope: ``a:<sub>`` for a task (its
    assignee, current or former) and ``r:<village>`` for a person's facts (their village,
    current or former). One row per (entity, id, scope): a newer change replaces the row with a
    higher ``seq``, so a phone reads each change once, and a scope an entity left keeps a row
    that tells its phones to drop it.

    Order is (``txn``, ``seq``). On PostgreSQL ``txn`` is the writing transaction's id and a
    reader takes only rows below the oldest transaction still running; on SQLite writers are
    serialised, so ``txn`` is 0 and ``seq`` (AUTOINCREMENT, never reused) is commit order.
    """

    __tablename__ = "sync_log"
    __table_args__ = (
        UniqueConstraint("entity", "entity_id", "scope", name="uq_sync_log_entity_scope"),
        Index("ix_sync_log_scope_order", "scope", "txn", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer, "sqlite")
    )
    txn: int = Field(default=0, sa_type=BigInteger)
    entity: str = Field(max_length=10)  # task | person
    entity_id: str = Field(max_length=36)
    scope: str = Field(max_length=90)  # a:<assignee sub> | r:<region code>


OPEN_RUN = "ended_on IS NULL"


class PlanRun(Base, table=True):
    """A person's enrollment in a plan (DHIS2's "enrollment"): started once per (plan, person,
    source_ref) by the trigger (``source_ref`` "age" for an age plan), it remembers up to which
    day a repeating step has been generated, so the extension sweep (``plan_runs.py``) carries
    repeats on past the first horizon, and it ends early (IUD removed, death, moved out of the
    county), after which it generates nothing more.
    """

    __tablename__ = "plan_runs"
    __table_args__ = (
        UniqueConstraint("plan", "person_id", "source_ref", name="uq_plan_runs_generation"),
        # The extension sweep: open runs by how far they have been generated.
        Index(
            "ix_plan_runs_open_through",
            "plan",
            "generated_through",
            sqlite_where=text(OPEN_RUN),
            postgresql_where=text(OPEN_RUN),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    plan: str = Field(max_length=64)
    person_id: str = Field(max_length=36, index=True)
    source_ref: str = Field(max_length=80)  # as on the run's tasks
    anchor_on: date
    # An age plan's last day in its range (the day before the birthday past the last age).
    until_on: date | None = Field(default=None, nullable=True)
    generated_through: date  # repeats are generated up to (and including) this due date
    ended_on: date | None = Field(default=None, nullable=True)
    ended_reason: str | None = Field(default=None, max_length=40)  # iud_removed | death | ...
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


def _context(table: str, column: str) -> str:
    return f"visits.{table}.{column}"


# FieldCipher associated data of each encrypted column ("visits.<table>.<column>").
VISIT_PLACE = _context("visit_records", "place")
VISIT_CONSENT_NOTE = _context("visit_records", "consent_note")
VISIT_FINDINGS = _context("visit_records", "findings")
VISIT_NEXT_STEP_NOTE = _context("visit_records", "next_step_note")
PROCEDURE_CODE = _context("procedures", "procedure")
PROCEDURE_PERFORMER = _context("procedures", "performer_sub")

# Every column holding ciphertext, for key rotation (``lingju reencrypt``).
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("visit_records", "place_enc", VISIT_PLACE),
    EncryptedColumn("visit_records", "consent_note_enc", VISIT_CONSENT_NOTE),
    EncryptedColumn("visit_records", "findings_enc", VISIT_FINDINGS),
    EncryptedColumn("visit_records", "next_step_note_enc", VISIT_NEXT_STEP_NOTE),
    EncryptedColumn("procedures", "procedure_enc", PROCEDURE_CODE),
    EncryptedColumn("procedures", "performer_sub_enc", PROCEDURE_PERFORMER),
)
