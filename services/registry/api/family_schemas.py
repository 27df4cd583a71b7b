"""Request and response shapes of families, births, deaths and the health bureau integration."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.registry.api.schemas import PersonOut
from services.registry.domain.identity import parse_id_number
from shared.errors import LocalizedValueError

PersonId = Annotated[str, Field(min_length=1, max_length=36)]
Sex = Literal["male", "female"]


def _valid_id_number(v: str | None) -> str | None:
    return None if v is None else parse_id_number(v).id_number  # InvalidIdNumber: zh + en


# -- families --------------------------------------------------------------------------------


class FamilyIn(BaseModel):
    wife_id: PersonId
    husband_id: PersonId
    marriage_date: date = Field(examples=["2024-05-20"])
    children_ids: list[PersonId] = Field(default_factory=list, max_length=20)


class ChildLinkIn(BaseModel):
    child_id: PersonId


class MemberOut(BaseModel):
    id: str
    name: str
    sex: Sex
    birth_date: date
    alive: bool
    died_on: date | None = None


class FamilyOut(BaseModel):
    id: str
    wife_id: str
    husband_id: str
    marriage_date: date
    region_code: str
    status: Literal["current", "dissolved"]
    wife: MemberOut
    husband: MemberOut
    children: list[MemberOut] = Field(description="Oldest first")
    children_count: int
    living_children_count: int
    sons: int
    daughters: int
    version: int
    created_at: datetime


# -- births ----------------------------------------------------------------------------------


class NewbornIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=50, examples=["李小宝"])
    sex: Sex
    birth_date: date
    id_number: str | None = Field(
        default=None, description="Usually none yet for a newborn; validated when given"
    )
    hospital: str = Field(min_length=1, max_length=200, examples=["上城区妇幼保健院"])
    birth_certificate_no: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[0-9A-Za-z\-]+$",
        description="出生医学证明编号",
        examples=["Q330012345"],
    )

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, v: str | None) -> str | None:
        return _valid_id_number(v)


class BirthIn(BaseModel):
    mother_id: PersonId
    father_id: PersonId | None = None
    child: NewbornIn


class BirthOut(BaseModel):
    id: str
    child: PersonOut
    mother_id: str
    father_id: str | None
    family_id: str | None = Field(description="The mother's family the child was linked to")
    birth_date: date
    hospital: str
    birth_certificate_no: str


# -- deaths ----------------------------------------------------------------------------------


class DeathIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    date_of_death: date
    cause: str | None = Field(
        default=None, max_length=500, description="Stored encrypted, never published"
    )
    reported_by: str = Field(
        min_length=1, max_length=200, description="Who reported the death (家属, 医院, ...)"
    )


class DeathOut(BaseModel):
    person_id: str
    date_of_death: date
    region_code: str
    reported_by: str
    only_child_of: list[str] = Field(
        description="Parents whose only child the deceased was (special assistance)"
    )


# -- the health bureau's reports ---------------------------------------------------------------

ExternalRef = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]


def _one_of(by_id: str | None, by_number: str | None, zh: str, en: str) -> None:
    if (by_id is None) == (by_number is None):
        raise LocalizedValueError(zh, en)


class HospitalBirthIn(BirthIn):
    """A hospital birth. The bureau may name the parents by registry id or by ID number."""

    external_ref: ExternalRef
    kind: Literal["birth"]
    mother_id: PersonId | None = None  # type: ignore[assignment]
    mother_id_number: str | None = None
    father_id_number: str | None = None

    @field_validator("mother_id_number", "father_id_number")
    @classmethod
    def _id_numbers(cls, v: str | None) -> str | None:
        return _valid_id_number(v)

    @model_validator(mode="after")
    def _parents(self) -> HospitalBirthIn:
        _one_of(
            self.mother_id,
            self.mother_id_number,
            "mother_id 与 mother_id_number 须且只须填写一个",
            "Give exactly one of mother_id and mother_id_number",
        )
        if self.father_id is not None and self.father_id_number is not None:
            raise LocalizedValueError(
                "father_id 与 father_id_number 至多填写一个",
                "Give at most one of father_id and father_id_number",
            )
        return self


class HospitalDeathIn(DeathIn):
    """A death in hospital, naming the deceased by registry id or by ID number."""

    external_ref: ExternalRef
    kind: Literal["death"]
    person_id: PersonId | None = None
    id_number: str | None = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, v: str | None) -> str | None:
        return _valid_id_number(v)

    @model_validator(mode="after")
    def _person(self) -> HospitalDeathIn:
        _one_of(
            self.person_id,
            self.id_number,
            "person_id 与 id_number 须且只须填写一个",
            "Give exactly one of person_id and id_number",
        )
        return self


HospitalEventIn = Annotated[HospitalBirthIn | HospitalDeathIn, Field(discriminator="kind")]


class HospitalReportOut(BaseModel):
    external_ref: str
    kind: Literal["birth", "death"]
    person_id: str = Field(description="The newborn, or the deceased")
    family_id: str | None = None
    birth: BirthOut | None = None
    death: DeathOut | None = None
