"""Request and response shapes of the registry API (DESIGN §4a is the contract)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.registry.domain.identity import parse_id_number
from shared.errors import LocalizedValueError

_PHONE = re.compile(r"^1[3-9]\d{9}$")
_REGION = re.compile(r"^\d{12}$")


def _check_phone(v: str) -> str:
    if not _PHONE.match(v):
        raise LocalizedValueError(
            "手机号应为 11 位大陆手机号", "phone must be an 11-digit mainland mobile"
        )
    return v


def _check_region(v: str) -> str:
    if not _REGION.match(v):
        raise LocalizedValueError("区划代码应为 12 位数字", "region_code must have 12 digits")
    return v


Phone = Annotated[str, AfterValidator(_check_phone), Field(examples=["13800138000"])]
RegionCode = Annotated[
    str,
    AfterValidator(_check_region),
    Field(examples=["330102001001"], description="12-digit division code"),
]


class PersonIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    id_number: str = Field(examples=["11010519491231002X"])
    name: str = Field(min_length=1, max_length=50, examples=["张三"])
    phone: Phone | None = None
    region_code: RegionCode
    residency: Literal["registered", "floating"] = "registered"
    household_type: Literal["rural", "urban"]

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, v: str) -> str:
        return parse_id_number(v).id_number  # raises InvalidIdNumber (zh + en)


MaritalStatus = Literal["unknown", "single", "married", "divorced", "widowed"]


class PersonPatch(BaseModel):
    """Only the fields sent change. Sex and birth date follow the ID number: not editable."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=50)
    phone: Phone | None = None
    region_code: RegionCode | None = None
    residency: Literal["registered", "floating"] | None = None
    household_type: Literal["rural", "urban"] | None = None
    marital_status: MaritalStatus | None = None
    version: int | None = Field(default=None, ge=1, description="Or send If-Match")


class PersonOut(BaseModel):
    """A resident as the caller may see them: identifiers masked by who asks."""

    id: str
    id_number: str | None = Field(
        description="Masked (330102********1234) unless the caller is the person or an admin; "
        "null for a newborn who has none yet"
    )
    name: str
    sex: Literal["male", "female"]
    birth_date: date
    phone: str | None = Field(
        description="Masked (138****8000) for every staff role, admin included; in full only "
        "to the resident it belongs to; null when none is on file",
        examples=["138****8000"],
    )
    region_code: str
    residency: str
    household_type: str
    marital_status: str
    died_on: date | None = None
    version: int


class MaterialIn(BaseModel):
    code: str = Field(min_length=1, max_length=60)
    ref: str = Field(min_length=1, max_length=500, description="Upload reference")


class SubjectsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spouse_id: str | None = None
    child_id: str | None = None


class ApplicationIn(BaseModel):
    type: str = Field(examples=["only_child_honor"])
    applicant_id: str
    subjects: SubjectsIn = Field(default_factory=SubjectsIn)
    materials: list[MaterialIn] = Field(default_factory=list)


class MissingMaterial(BaseModel):
    code: str
    name: str


class ApplicationOut(BaseModel):
    id: str
    application_no: str
    type: str
    applicant_id: str
    status: str
    level: str | None = Field(description="Review level the application waits at")
    due_date: date
    overdue: bool = Field(description="Open and past its statutory due date")
    submitted_via: Literal["self", "agent"]
    submitted_by_role: str
    version: int
    missing_materials: list[MissingMaterial] = []
    certificate_no: str | None = None


class ReviewIn(BaseModel):
    decision: Literal["approve", "return", "reject"]
    comment: str | None = Field(
        default=None, max_length=1000, description="Required to return (what to fix) or reject"
    )
    version: int | None = Field(
        default=None, ge=1, description="The version you read (or send If-Match); stale: 409"
    )


class MaterialsIn(BaseModel):
    materials: list[MaterialIn] = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)


class ActionOut(BaseModel):
    action: str
    actor: str
    actor_role: str
    level: str | None
    from_status: str | None
    to_status: str
    comment: str | None
    at: datetime


class ApplicationDetail(ApplicationOut):
    history: list[ActionOut] = Field(description="Every step: who, role, when, what, why")


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class CollectIn(BaseModel):
    via: Literal["office", "agent", "download"] = Field(
        description="Handed over at the office, to the agent acting for the holder, or downloaded"
    )


class CertificateOut(BaseModel):
    certificate_no: str
    type: str
    holder_ids: list[str]
    child_id: str | None
    region_code: str
    issued_on: date
    valid_until: date | None
    status: str
    revoked_on: date | None
    revoke_reason: str | None
    collected_at: datetime | None
    collected_via: str | None
    verification_code: str = Field(
        description="Printed on the certificate; anyone can check it at the public endpoint"
    )


class ProgressOut(BaseModel):
    """The public progress answer (办件进度): nothing personal."""

    application_no: str
    type: str
    type_name: str
    status: str
    next_step: str
    due_date: date
    overdue: bool


class VerificationOut(BaseModel):
    certificate_no: str
    result: Literal["valid", "expired", "revoked", "unknown"]
    type_name: str | None = None
    issued_on: date | None = None
    valid_until: date | None = None
