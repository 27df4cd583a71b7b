"""Events the registry publishes (versioned schemas). It consumes none."""

from __future__ import annotations

from datetime import date
from typing import Literal

from shared.events import EventData


class PersonRegistered(EventData):
    TYPE = "lingju.registry.person.registered"
    # No ID number in events: consumers get the facts they need, not the identifier.
    person_id: str
    name: str
    sex: Literal["male", "female"]
    birth_date: date
    region_code: str
    residency: str
    household_type: str
    # Sealed (shared.crypto.EVENT_PHONE_CONTEXT): notify texts the resident and opens it;
    # benefits and visits neither need nor read it. Version 1 carried ``phone`` in clear.
    phone_enc: str | None = None
    VERSION = 2


class PersonUpdated(EventData):
    """A resident's facts changed; carries the whole current picture and what changed."""

    TYPE = "lingju.registry.person.updated"
    person_id: str
    changed: list[str]
    name: str
    sex: Literal["male", "female"]
    birth_date: date
    region_code: str
    residency: str
    household_type: str
    marital_status: str
    phone_enc: str | None = None  # sealed, for notify (see PersonRegistered)
    version: int
    VERSION = 2


class ApplicationMaterialsRequested(EventData):
    """The one-time notice (一次性告知): every missing material at once."""

    TYPE = "lingju.registry.application.materials_requested"
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str  # zh, for messages: 独生子女父母光荣证
    applicant_id: str
    submitted_by: str
    missing: list[dict[str, str]]  # [{"code", "name"}]
    region_code: str


class ApplicationDecided(EventData):
    """Every review decision: approve (a level passed, or issued), return or reject."""

    TYPE = "lingju.registry.application.decided"
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str  # zh, for messages: 独生子女父母光荣证
    applicant_id: str
    submitted_by: str
    decision: Literal["approve", "return", "reject"]
    decision_name: str  # zh, for messages: 审核通过 / 退回补正 / 不予批准
    level: str
    status: str
    comment: str | None = None
    decided_by_role: str
    region_code: str


class ApplicationOverdue(EventData):
    """Announced once, when an open application passes its statutory due date."""

    TYPE = "lingju.registry.application.overdue"
    application_id: str
    application_no: str
    certificate_type: str
    certificate_type_name: str  # zh, for messages: 独生子女父母光荣证
    status: str
    level: str | None = None
    due_date: date
    region_code: str


class CertificateIssued(EventData):
    TYPE = "lingju.registry.certificate.issued"
    certificate_id: str
    certificate_no: str
    certificate_type: str
    certificate_type_name: str  # zh, for messages: 独生子女父母光荣证
    application_id: str
    holder_ids: list[str]
    child_id: str | None = None
    child_birth_date: date | None = None
    region_code: str
    issued_on: date
    valid_until: date | None = None
    submitted_by: str


class CertificateRevoked(EventData):
    """Enrollments founded on the certificate end from the next period."""

    TYPE = "lingju.registry.certificate.revoked"
    certificate_id: str
    certificate_no: str
    certificate_type: str
    certificate_type_name: str  # zh, for messages: 独生子女父母光荣证
    holder_ids: list[str]
    region_code: str
    revoked_on: date
    reason: str


class FamilyRegistered(EventData):
    """A couple was registered as a family (visits: newly-married counselling, pre-pregnancy
    check offer). Both spouses are "married" from now on. ``children_ids`` are the children
    linked at registration (often none)."""

    TYPE = "lingju.registry.family.registered"
    family_id: str
    wife_id: str
    husband_id: str
    marriage_date: date
    region_code: str
    children_ids: list[str]


class FamilyChildLinked(EventData):
    """A child was linked to a registered family after its registration (a birth links its
    child through ``child.born`` instead). Benefits needs it: who is an only child decides
    the only-child programs."""

    TYPE = "lingju.registry.family.child_linked"
    family_id: str
    child_id: str
    wife_id: str
    husband_id: str
    region_code: str


class ChildBorn(EventData):
    """A child was born and registered (visits: postpartum plan for the mother; benefits:
    childcare subsidy for the child). The child is also announced by ``person.registered``
    (published just before). ``family_id`` is the mother's family the child was linked to, if
    any; ``father_id`` only when reported. ``source``: ``officer`` or ``hospital``."""

    TYPE = "lingju.registry.child.born"
    child_id: str
    mother_id: str
    father_id: str | None = None
    birth_date: date
    sex: Literal["male", "female"]
    region_code: str
    hospital: str
    birth_certificate_no: str
    family_id: str | None = None
    source: Literal["officer", "hospital"] = "officer"


class PersonDied(EventData):
    """A resident's death was recorded, once (benefits: stop payments after the month of
    death; visits: cancel open tasks). ``only_child_of`` lists the parents (wife and husband
    of a family) whose only child the deceased was, for special assistance (特别扶助); it is
    empty when the deceased was no family's only child. The cause of death is not published.
    ``source``: ``officer`` or ``hospital``."""

    TYPE = "lingju.registry.person.died"
    person_id: str
    date_of_death: date
    region_code: str
    only_child_of: list[str]
    source: Literal["officer", "hospital"] = "officer"
