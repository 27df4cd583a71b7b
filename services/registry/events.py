"""Events the registry publishes (versioned schemas). It consumes none yet."""

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
    phone: str | None = None


class CertificateIssued(EventData):
    TYPE = "lingju.registry.certificate.issued"
    certificate_id: str
    certificate_no: str
    certificate_type: str
    application_id: str
    holder_ids: list[str]
    child_id: str | None = None
    region_code: str
    issued_on: date
    submitted_by: str
