"""Notify's view of each event it routes: the fields it reads, which are also the variables a
template routed from that event may use (checked when a template is saved).

Views are the consumer's side of the producers' schemas (docs/architecture.md, events
catalogue): they read what notify needs and ignore the rest, so a producer adding a field
breaks nothing. A field with a default is optional: a template using it renders empty when an
event leaves it out.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from shared.events.envelope import ConsumedData

# -- registry ----------------------------------------------------------------------------------


class MaterialsRequested(ConsumedData):
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str = ""
    applicant_id: str
    submitted_by: str
    missing: list[dict[str, str]] = Field(default_factory=list)  # render with |names
    region_code: str


class ApplicationDecided(ConsumedData):
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str = ""
    applicant_id: str
    submitted_by: str
    decision: str
    decision_name: str = ""
    level: str
    status: str
    comment: str | None = None
    region_code: str


class ApplicationOverdue(ConsumedData):
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str = ""
    status: str
    level: str | None = None
    due_date: date
    region_code: str


class CertificateIssued(ConsumedData):
    certificate_id: str
    certificate_no: str
    certificate_type: str
    certificate_type_name: str = ""
    holder_ids: list[str]
    region_code: str
    issued_on: date
    valid_until: date | None = None
    submitted_by: str


class CertificateRevoked(ConsumedData):
    certificate_id: str
    certificate_no: str
    certificate_type: str
    certificate_type_name: str = ""
    holder_ids: list[str]
    region_code: str
    revoked_on: date
    reason: str


# -- benefits ----------------------------------------------------------------------------------


class EnrollmentActivated(ConsumedData):
    enrollment_id: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    region_code: str
    pays_from: str
    pays_until: str | None = None
    monthly_fen: int = 0


class EnrollmentSuspended(ConsumedData):
    enrollment_id: str
    program: str
    program_name: str = ""
    person_id: str
    payee_id: str
    reason: str
    region_code: str


class EnrollmentResumed(ConsumedData):
    enrollment_id: str
    program: str
    program_name: str = ""
    person_id: str
    payee_id: str
    region_code: str


class EnrollmentEnded(ConsumedData):
    enrollment_id: str
    program: str
    program_name: str = ""
    person_id: str
    payee_id: str | None = None  # older events lack it: then nobody is told
    reason: str
    reason_name: str = ""
    ends_after: str
    region_code: str


class PaymentDisbursed(ConsumedData):
    run_code: str
    program: str
    program_name: str
    person_id: str
    payee_id: str
    period_from: str
    period_until: str
    amount_fen: int
    region_code: str


class PaymentFailed(ConsumedData):
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


class ClaimDecided(ConsumedData):
    claim_id: str
    claim_no: str
    program: str
    program_name: str
    person_id: str
    decision: str
    decision_name: str
    requested_fen: int
    approved_fen: int | None = None
    comment: str | None = None
    region_code: str


# -- visits ------------------------------------------------------------------------------------


class TaskDue(ConsumedData):
    task_id: str
    plan: str
    plan_name: str = ""
    step: str
    step_name: str = ""
    person_id: str
    assignee: str | None = None
    region_code: str
    due_on: date
    overdue_on: date


class TaskOverdue(ConsumedData):
    task_id: str
    plan: str
    plan_name: str = ""
    step: str
    step_name: str = ""
    person_id: str
    assignee: str | None = None
    region_code: str
    overdue_on: date
    expires_on: date


class AssignmentChanged(ConsumedData):
    area_code: str
    tier: str
    assignee_sub: str
    assignee_name: str
    previous_assignee_sub: str | None = None
    tasks_moved: int


class AppointmentBooked(ConsumedData):
    appointment_id: str
    person_id: str
    station_name: str
    service: str
    service_name: str = ""
    starts_at: datetime
    ends_at: datetime
    region_code: str


class AppointmentRescheduled(AppointmentBooked):
    pass


class AppointmentCancelled(ConsumedData):
    appointment_id: str
    person_id: str
    station_name: str
    service: str
    service_name: str = ""
    starts_at: datetime
    region_code: str
    cancelled_by_role: str


class AppointmentReminder(AppointmentBooked):
    pass


VIEWS: dict[str, type[ConsumedData]] = {
    "lingju.registry.application.materials_requested": MaterialsRequested,
    "lingju.registry.application.decided": ApplicationDecided,
    "lingju.registry.application.overdue": ApplicationOverdue,
    "lingju.registry.certificate.issued": CertificateIssued,
    "lingju.registry.certificate.revoked": CertificateRevoked,
    "lingju.benefits.enrollment.activated": EnrollmentActivated,
    "lingju.benefits.enrollment.suspended": EnrollmentSuspended,
    "lingju.benefits.enrollment.resumed": EnrollmentResumed,
    "lingju.benefits.enrollment.ended": EnrollmentEnded,
    "lingju.benefits.payment.disbursed": PaymentDisbursed,
    "lingju.benefits.payment.failed": PaymentFailed,
    "lingju.benefits.claim.decided": ClaimDecided,
    "lingju.visits.task.due": TaskDue,
    "lingju.visits.task.overdue": TaskOverdue,
    "lingju.visits.assignment.changed": AssignmentChanged,
    "lingju.visits.appointment.booked": AppointmentBooked,
    "lingju.visits.appointment.rescheduled": AppointmentRescheduled,
    "lingju.visits.appointment.cancelled": AppointmentCancelled,
    "lingju.visits.appointment.reminder": AppointmentReminder,
}

# Every message may also greet its recipient and, for a person's event, name the person.
COMMON_VARIABLES = {"recipient_name": "收信人姓名", "person_name": "事项所涉居民姓名"}

# The variables of a digest (one message listing several items).
DIGEST_VARIABLES = {"count": "条目数", "lines": "条目（每行一项）", "day": "日期"}


def variables_of(event_types: list[str]) -> set[str]:
    """The variables a template routed from ``event_types`` may use: the fields every one of
    them provides, and the common ones."""
    fields: set[str] | None = None
    for t in event_types:
        names = set(VIEWS[t].model_fields)
        fields = names if fields is None else fields & names
    return (fields or set()) | set(COMMON_VARIABLES)
